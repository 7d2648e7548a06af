package placement

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// How the store looks at etcd while watches run: a read every
// viewInterval, given up after viewTimeout (etcd counts as unreachable).
const (
	viewInterval = 500 * time.Millisecond
	viewTimeout  = time.Second
)

// EtcdState is a store's view of etcd itself, from a read every half
// second while any Watch runs.
type EtcdState struct {
	// Reachable is false while etcd does not answer (stopped, paused, cut
	// off); DownSince is when it stopped answering.
	Reachable bool
	DownSince time.Time
	// Back is when etcd last answered again after not answering; zero if
	// it never stopped answering since the store started looking.
	Back time.Time
	// DataLost counts the times etcd was found to have lost its data (its
	// revision went back); LostAt is the last.
	DataLost int
	LostAt   time.Time
	// Revision is the last revision read.
	Revision int64
}

// view keeps EtcdState. A monitor goroutine runs while at least one Watch
// does (users), so that no goroutine outlives the watches.
type view struct {
	mu      sync.Mutex
	users   int
	stop    context.CancelFunc
	done    chan struct{}
	state   EtcdState
	started bool
	lost    chan struct{} // closed when data loss is found; then replaced
}

// lostSignal returns a channel closed when etcd is next found to have
// lost its data.
func (v *view) lostSignal() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.lost == nil {
		v.lost = make(chan struct{})
	}
	return v.lost
}

// EtcdState returns the store's current view of etcd. Before any Watch
// has run it reports etcd reachable and nothing else.
func (s *Store) EtcdState() EtcdState {
	s.view.mu.Lock()
	defer s.view.mu.Unlock()
	st := s.view.state
	if !s.view.started {
		st.Reachable = true
	}
	return st
}

// watching registers a Watch: the first starts the monitor. The returned
// function unregisters it; the last stops the monitor and waits for it.
func (s *Store) watching() func() {
	v := &s.view
	v.mu.Lock()
	v.users++
	if v.users == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		v.stop, v.done = cancel, make(chan struct{})
		go s.monitor(ctx, v.done)
	}
	v.mu.Unlock()
	return func() {
		v.mu.Lock()
		v.users--
		var stop context.CancelFunc
		var done chan struct{}
		if v.users == 0 {
			stop, done = v.stop, v.done
		}
		v.mu.Unlock()
		if stop != nil {
			stop()
			<-done
		}
	}
}

// monitor reads etcd's revision every viewInterval until ctx ends. The
// reads are sequential, so in one etcd their revisions never go back: a
// revision below the last one read means etcd lost its data.
func (s *Store) monitor(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(viewInterval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, viewTimeout)
		r, err := s.C.Get(rctx, s.Model(), clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.view.observe(time.Now(), r, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (v *view) observe(now time.Time, r *clientv3.GetResponse, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := &v.state
	if !v.started {
		v.started, st.Reachable = true, true
	}
	if err != nil {
		if st.Reachable {
			st.Reachable, st.DownSince = false, now
		}
		return
	}
	if !st.Reachable {
		st.Reachable, st.Back = true, now
	}
	if rev := r.Header.Revision; rev < st.Revision {
		st.DataLost++
		st.LostAt = now
		if v.lost != nil {
			close(v.lost)
		}
		v.lost = make(chan struct{})
	}
	st.Revision = r.Header.Revision
}
