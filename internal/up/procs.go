package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is a role running as a child process.
type proc struct {
	id   string
	args []string
	bin  string
	log  io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newProc(bin, id string, log io.Writer, args []string) (*proc, error) {
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("up: finding the switchyard binary: %w", err)
		}
	}
	return &proc{id: id, bin: bin, args: args, log: log}, nil
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("up: starting %s: %w", p.id, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig and waits up to wait for the process to exit.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return errors.New("not running")
	}
	select {
	case <-done:
		return nil // already gone
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("up: %s did not exit within %v after %v", p.id, wait, sig)
	}
}

func (p *proc) stop() { p.signal(syscall.SIGINT, 10*time.Second) }

func (c *Cluster) proc(i int) (*proc, error) {
	if i < 0 || i >= len(c.procs) {
		return nil, fmt.Errorf("up: no expert node process %d (process mode has %d)", i, len(c.procs))
	}
	return c.procs[i], nil
}

// KillNode kills expert node i (0-based) with SIGKILL, as a crash would.
func (c *Cluster) KillNode(i int) error {
	p, err := c.proc(i)
	if err != nil {
		return err
	}
	return p.signal(syscall.SIGKILL, 5*time.Second)
}

// DrainNode stops expert node i with SIGTERM: it drains, then exits.
func (c *Cluster) DrainNode(i int, wait time.Duration) error {
	p, err := c.proc(i)
	if err != nil {
		return err
	}
	return p.signal(syscall.SIGTERM, wait)
}

// StartNode starts expert node i again (after KillNode or DrainNode).
func (c *Cluster) StartNode(i int) error {
	p, err := c.proc(i)
	if err != nil {
		return err
	}
	return p.start()
}

// KillCoordinator kills coordinator i (0-based, process mode) with SIGKILL.
func (c *Cluster) KillCoordinator(i int) error {
	if i < 0 || i >= len(c.coords) {
		return fmt.Errorf("up: no coordinator process %d (process mode has %d)", i, len(c.coords))
	}
	return c.coords[i].signal(syscall.SIGKILL, 5*time.Second)
}

// StopEtcd stops the embedded etcd (an outage); StartEtcd brings it back
// with the same data on the same port, StartEtcdEmpty without its data.
// They do nothing to an etcd of one's own (Config.Etcd).
func (c *Cluster) StopEtcd() {
	if c.etcd != nil {
		c.etcd.Close()
	}
}

// StartEtcd restarts the embedded etcd after StopEtcd.
func (c *Cluster) StartEtcd(ctx context.Context) error {
	if c.etcd == nil {
		return errors.New("up: no embedded etcd to start (Config.Etcd is set)")
	}
	return c.etcd.Restart(ctx)
}

// StartEtcdEmpty restarts the embedded etcd after StopEtcd with its data
// removed, as a disaster recovery would.
func (c *Cluster) StartEtcdEmpty(ctx context.Context) error {
	if c.etcd == nil {
		return errors.New("up: no embedded etcd to start (Config.Etcd is set)")
	}
	return c.etcd.RestartEmpty(ctx)
}
