//go:build !linux

package parse

import "github.com/tetratelabs/wazero/experimental"

// linearMemoryAllocator grows linear memory by doubling (see memory_linux.go
// for the mapping used on Linux).
func linearMemoryAllocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
		return &sliceMemory{buf: make([]byte, 0, capBytes), max: maxBytes}
	})
}
