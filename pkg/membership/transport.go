package membership

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport is memberlist's own UDP/TCP transport with a count of
// the bytes this member sends: probes, gossip and state exchanges, on
// both the streams it dials and those it accepts.
type countingTransport struct {
	*memberlist.NetTransport
	sent    atomic.Uint64
	streams chan net.Conn // accepted streams, counted
	stop    chan struct{} // Shutdown began: hand memberlist nothing more
	down    chan struct{} // the wrapped transport has shut down
	done    chan struct{} // forward has returned
	once    sync.Once
}

// newTransport binds memberlist's transport to addr:port (port 0: a free
// one, retried as memberlist does when UDP and TCP disagree) and wraps it.
func newTransport(addr string, port int, conf *memberlist.Config) (*countingTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{addr}, BindPort: port, Logger: conf.Logger}
	var nt *memberlist.NetTransport
	var err error
	tries := 1
	if port == 0 {
		tries = 10
	}
	for range tries {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("membership: transport on %s:%d: %w", addr, port, err)
	}
	t := &countingTransport{NetTransport: nt, streams: make(chan net.Conn), stop: make(chan struct{}), down: make(chan struct{}), done: make(chan struct{})}
	go t.forward()
	return t, nil
}

// forward hands memberlist the accepted streams, wrapped, until Shutdown;
// then it closes what the listener still accepts until the wrapped
// transport is down (its Shutdown waits for the listener, which would
// wait forever on a stream nobody takes).
func (t *countingTransport) forward() {
	defer close(t.done)
	for {
		select {
		case <-t.stop:
			for {
				select {
				case c := <-t.NetTransport.StreamCh():
					c.Close()
				case <-t.down:
					return
				}
			}
		case c := <-t.NetTransport.StreamCh():
			select {
			case t.streams <- &countingConn{Conn: c, n: &t.sent}:
			case <-t.stop:
				c.Close()
			}
		}
	}
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteToAddress(b, addr)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.sent}, nil
}

func (t *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.sent}, nil
}

// Shutdown stops the forwarder, then the transport. Idempotent.
func (t *countingTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.stop)
		err = t.NetTransport.Shutdown()
		close(t.down)
		<-t.done
	})
	return err
}

type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(uint64(n))
	return n, err
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)
