// Package membership tracks which cluster members are alive through
// memberlist gossip: failure detection in about a second, faster than an
// etcd lease expires. It does not decide placement; it only answers
// "is this member alive now?" and reports changes.
package membership

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config of a member.
type Config struct {
	Name     string // unique member name (node or coordinator ID)
	BindAddr string // IP to bind; "" means 127.0.0.1; "::" means all
	// Advertise is the host (IP or DNS name) others reach this member at;
	// "" means BindAddr.
	Advertise string
	BindPort  int          // 0 picks a free port
	Logger    *slog.Logger // nil discards
	// SecretKey (16, 24 or 32 bytes) encrypts gossip; members without it
	// cannot join. nil means plaintext gossip.
	SecretKey []byte
}

// Members is this process's view of the cluster. Safe for concurrent use.
//
// memberlist reports joins, leaves and deaths through a channel
// (memberlist.ChannelEventDelegate) that one goroutine of Members reads:
// no lock of the caller's is ever taken on memberlist's goroutines.
type Members struct {
	ml      *memberlist.Memberlist
	tr      *countingTransport
	events  chan memberlist.NodeEvent
	changed chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once

	mu    sync.Mutex
	alive map[string]bool
}

// eventBuffer is how many memberlist events may wait for Members' reader;
// memberlist blocks when it is full.
const eventBuffer = 256

// Start joins no one yet: it starts gossiping on the configured address.
func Start(c Config) (*Members, error) {
	conf := memberlist.DefaultLocalConfig()
	conf.Name = c.Name
	conf.BindAddr = c.BindAddr
	if conf.BindAddr == "" {
		conf.BindAddr = "127.0.0.1"
	}
	if conf.BindAddr == "::" {
		conf.BindAddr = "0.0.0.0"
	}
	conf.BindPort = c.BindPort
	if c.Advertise != "" && c.Advertise != conf.BindAddr {
		ip := net.ParseIP(c.Advertise)
		if ip == nil {
			ips, err := net.LookupIP(c.Advertise)
			if err != nil || len(ips) == 0 {
				return nil, fmt.Errorf("membership: resolve %s: %v", c.Advertise, err)
			}
			ip = ips[0]
		}
		conf.AdvertiseAddr = ip.String()
	}
	// Detect a failure in one to three seconds on a LAN or loopback, up to
	// 256 members (TestMembers256): a member is probed about every 200 ms,
	// a missed ack is checked through 3 others before suspicion, and a
	// suspect has SuspicionMult × log10(members) probe intervals to refute
	// (1.4 s at 256), cut short once others confirm. Every message is
	// retransmitted 4 × log10(members + 1) times, as memberlist's LAN
	// defaults do: with its local ones (2×), joins reached everyone only
	// by the next state exchange and a suspect did not always hear it was
	// suspected, so live members were declared dead at 64 members.
	conf.ProbeInterval = 200 * time.Millisecond
	conf.ProbeTimeout = 100 * time.Millisecond
	conf.IndirectChecks = 3
	conf.SuspicionMult = 3
	conf.RetransmitMult = 4
	conf.GossipInterval = 50 * time.Millisecond
	// Gossip packets are small and go over a LAN: memberlist's LZW
	// compression of each one made a fresh compressor (700 MB of garbage
	// in a one-process cluster's five loaded minutes, the most of
	// anything) for bytes that do not matter.
	conf.EnableCompression = false
	// Full state exchanges, scaled up by memberlist past 32 members (×4 at
	// 256), repair what gossip missed.
	conf.PushPullInterval = 10 * time.Second
	// A join or state exchange carries every member's state (about 20 KB
	// at 256): the local config's 1 s timed out in a busy process.
	conf.TCPTimeout = 3 * time.Second
	// A node that restarts (same name, new port) may take its name back
	// as soon as it was declared dead, instead of after the dead are reaped.
	conf.DeadNodeReclaimTime = time.Millisecond
	var w io.Writer = io.Discard
	if c.Logger != nil {
		w = slogWriter{c.Logger}
	}
	conf.Logger = log.New(w, "", 0)
	if c.SecretKey != nil {
		conf.SecretKey = c.SecretKey
		conf.GossipVerifyIncoming, conf.GossipVerifyOutgoing = true, true
	}
	tr, err := newTransport(conf.BindAddr, conf.BindPort, conf)
	if err != nil {
		return nil, err
	}
	if conf.BindPort == 0 {
		conf.BindPort = tr.GetAutoBindPort()
	}
	conf.AdvertisePort = conf.BindPort // not memberlist's default 7946
	conf.Transport = tr
	m := &Members{tr: tr, alive: map[string]bool{}, events: make(chan memberlist.NodeEvent, eventBuffer),
		changed: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	conf.Events = &memberlist.ChannelEventDelegate{Ch: m.events}
	go m.run()
	ml, err := memberlist.Create(conf)
	if err != nil {
		tr.Shutdown()
		close(m.stop)
		<-m.done
		return nil, fmt.Errorf("membership: start %s: %w", c.Name, err)
	}
	m.ml = ml
	return m, nil
}

// SentBytes is how many bytes this member has sent: probes, gossip and
// state exchanges, over UDP and TCP.
func (m *Members) SentBytes() uint64 { return m.tr.sent.Load() }

// run applies memberlist's events to the view until Close, and signals
// Changed after each.
func (m *Members) run() {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		case ev := <-m.events:
			switch ev.Event {
			case memberlist.NodeJoin:
				m.set(ev.Node.Name, true)
			case memberlist.NodeLeave:
				m.set(ev.Node.Name, false)
			default:
				continue
			}
			select {
			case m.changed <- struct{}{}:
			default: // a change is already pending: the reader sees this one too
			}
		}
	}
}

// Changed receives a value after members joined, left or were declared
// dead. Changes are coalesced: one value may stand for several, so the
// receiver reads the view (Alive, Known) when it gets one. It never
// blocks memberlist; it has one reader.
func (m *Members) Changed() <-chan struct{} { return m.changed }

// Addr is the host:port this member gossips on.
func (m *Members) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Join contacts members at addrs (host:port); it succeeds if any answers.
func (m *Members) Join(addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	if _, err := m.ml.Join(addrs); err != nil {
		return fmt.Errorf("membership: join %v: %w", addrs, err)
	}
	return nil
}

// Alive reports whether the named member is currently alive.
func (m *Members) Alive(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alive[name]
}

// Known reports whether the named member has ever been seen.
func (m *Members) Known(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.alive[name]
	return ok
}

// Close leaves the cluster gracefully, stops gossiping and stops the
// event reader. It may be called more than once.
func (m *Members) Close() error {
	var err error
	m.closing.Do(func() {
		m.ml.Leave(500 * time.Millisecond)
		if err = m.ml.Shutdown(); err != nil {
			err = fmt.Errorf("membership: shutdown: %w", err)
		}
		close(m.stop)
		<-m.done
	})
	return err
}

func (m *Members) set(name string, alive bool) {
	m.mu.Lock()
	m.alive[name] = alive
	m.mu.Unlock()
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("memberlist", "msg", string(p))
	return len(p), nil
}
