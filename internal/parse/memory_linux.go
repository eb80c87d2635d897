//go:build linux

package parse

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// maxReserve bounds the address space reserved per pdfium instance. The
// bundled module declares a 2 GiB maximum.
const maxReserve = 4 << 30

// linearMemoryAllocator backs each WebAssembly linear memory with one
// anonymous mapping of the module's maximum size, outside the Go heap.
//
// wazero's default memory is a Go []byte that is re-appended (copied) on
// every memory.grow; pdfium grows its heap in many small steps while reading
// a large PDF, and that copying plus the GC work it triggers made the first
// document on a fresh instance 2-5x slower (profiled: ~75% of CPU in
// MemoryInstance.Grow). A reserved mapping grows in place: the kernel commits
// pages only when touched (MAP_NORESERVE), and Free (on instance close)
// returns them to the OS at once.
func linearMemoryAllocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
		if maxBytes > 0 && maxBytes <= maxReserve {
			b, err := syscall.Mmap(-1, 0, int(maxBytes),
				syscall.PROT_READ|syscall.PROT_WRITE,
				syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
			if err == nil {
				return &mmapMemory{buf: b}
			}
		}
		return &sliceMemory{buf: make([]byte, 0, capBytes), max: maxBytes}
	})
}

type mmapMemory struct{ buf []byte }

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if m.buf == nil || size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}
