package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one docpipe process the run started.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string // its stderr
	exited chan struct{}

	mu      sync.Mutex
	stopped bool // the run killed or stopped it: its exit is expected
}

// fleet starts docpipe processes and notices the ones that exit on their own.
type fleet struct {
	bin    string
	env    []string
	logDir string

	mu    sync.Mutex
	seq   map[string]int
	procs []*process
	exits []string // unexpected exits, with the end of their log
}

func newFleet(bin string, env []string, logDir string) *fleet {
	return &fleet{bin: bin, env: env, logDir: logDir, seq: map[string]int{}}
}

// start runs `docpipe args…` as name-N, its stderr (and stdout) in logDir/name-N.log.
func (f *fleet) start(name string, args ...string) (*process, error) {
	f.mu.Lock()
	f.seq[name]++
	id := fmt.Sprintf("%s-%d", name, f.seq[name])
	f.mu.Unlock()
	path := filepath.Join(f.logDir, id+".log")
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(f.bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = f.env, out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	p := &process{name: id, cmd: cmd, log: path, exited: make(chan struct{})}
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	go func() {
		err := cmd.Wait()
		out.Close()
		p.mu.Lock()
		expected := p.stopped
		p.mu.Unlock()
		if !expected {
			f.mu.Lock()
			f.exits = append(f.exits, fmt.Sprintf("%s (pid %d) exited on its own: %v; end of %s:\n%s",
				id, cmd.Process.Pid, err, path, indent(tailFile(path, 12))))
			f.mu.Unlock()
		}
		close(p.exited)
	}()
	return p, nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits up to grace, then kills.
func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stopAll stops every process still running (SIGTERM, then SIGKILL), in parallel.
func (f *fleet) stopAll(grace time.Duration) {
	f.mu.Lock()
	procs := append([]*process(nil), f.procs...)
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(grace) }()
	}
	wg.Wait()
}

// unexpectedExits are the processes that exited without the run stopping them.
func (f *fleet) unexpectedExits() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.exits...)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
