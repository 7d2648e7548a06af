package placement

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/switchyard-llm/switchyard/internal/embedetcd"
)

// startEtcd runs a real (embedded) etcd for the test and returns a client
// factory for it.
func startEtcd(t *testing.T) (*embedetcd.Server, func() *clientv3.Client) {
	t.Helper()
	srv, err := embedetcd.Start(t.Context(), t.TempDir(), "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, func() *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

// elect campaigns on a session of its own and returns the fence of the
// leadership won.
func elect(t *testing.T, s *Store, id string) (Fence, *concurrency.Session) {
	t.Helper()
	sess, err := concurrency.NewSession(s.C, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	el := concurrency.NewElection(sess, s.Election())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := el.Campaign(ctx, id); err != nil {
		t.Fatalf("%s campaign: %v", id, err)
	}
	return Fence{Key: el.Key(), Rev: el.Rev()}, sess
}

func oneUnitMap(epoch int64, node string) Map {
	return Map{Epoch: epoch, Digest: "sha256:x", Units: map[string][]string{"0/0": {node}}}
}

// Two coordinators both believe they lead: a was elected, then its
// session lapsed without it noticing, and b was elected. Both keep
// publishing epochs; only b's land, and the history is one sequence.
func TestFencedPublishOneHistory(t *testing.T) {
	_, client := startEtcd(t)
	a, b := NewStore(client(), "c"), NewStore(client(), "c")
	fa, sessA := elect(t, a, "a")
	if err := a.Publish(t.Context(), fa, oneUnitMap(1, "a"), Change{Epoch: 1, By: "a", Reasons: []string{"first"}}, 100); err != nil {
		t.Fatalf("the leader's first publish: %v", err)
	}
	// a's session lapses (its lease is revoked, as expiry would), but a is
	// not told: it goes on publishing with its old fence.
	if _, err := a.C.Revoke(t.Context(), sessA.Lease()); err != nil {
		t.Fatal(err)
	}
	fb, _ := elect(t, b, "b")
	var wg sync.WaitGroup
	errsA := make([]error, 10)
	for i := range 10 {
		wg.Go(func() {
			e := int64(2 + i)
			errsA[i] = a.Publish(t.Context(), fa, oneUnitMap(e, "a"), Change{Epoch: e, By: "a", Reasons: []string{"stale"}}, 100)
		})
		wg.Go(func() {
			e := int64(2 + i)
			if err := b.Publish(t.Context(), fb, oneUnitMap(e, "b"), Change{Epoch: e, By: "b", Reasons: []string{"leader"}}, 100); err != nil {
				t.Errorf("the leader's publish of epoch %d: %v", e, err)
			}
		})
	}
	wg.Wait()
	for i, err := range errsA {
		if !errors.Is(err, ErrNotLeader) {
			t.Errorf("deposed leader's publish %d: got %v, want ErrNotLeader", i, err)
		}
	}
	if err := a.PutFenced(t.Context(), fa, a.Model(), ModelInfo{Name: "stale"}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's model write: got %v, want ErrNotLeader", err)
	}
	hist, err := List[Change](t.Context(), a, a.HistoryPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var by []string
	for k, c := range hist {
		by = append(by, fmt.Sprintf("%s:%s", strings.TrimLeft(k, "0"), c.By))
	}
	sort.Strings(by)
	for k, c := range hist {
		if c.Epoch > 1 && c.By != "b" {
			t.Errorf("history %s written by %s after it was deposed", k, c.By)
		}
	}
	if len(hist) != 11 {
		t.Errorf("history has %d epochs, want 11: %v", len(hist), by)
	}
	var m Map
	if err := a.Get(t.Context(), a.Placement(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Units["0/0"][0] != "b" {
		t.Errorf("placement %+v is not the leader's", m)
	}
	// A write without a fence is refused, not let through.
	if err := b.Publish(t.Context(), Fence{}, oneUnitMap(99, "b"), Change{}, 100); err == nil || errors.Is(err, ErrNotLeader) {
		t.Errorf("publish without a fence: %v", err)
	}
}

// A placement with no units is never written, even by the leader.
func TestPublishRefusesEmptyPlacement(t *testing.T) {
	_, client := startEtcd(t)
	s := NewStore(client(), "c")
	f, _ := elect(t, s, "a")
	err := s.Publish(t.Context(), f, Map{Epoch: 3, Units: map[string][]string{}}, Change{Epoch: 3}, 100)
	if err == nil || !strings.Contains(err.Error(), "no units") {
		t.Errorf("publishing an empty placement: %v", err)
	}
	if err := s.Get(t.Context(), s.Placement(), new(Map)); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the refusal the placement key holds something: %v", err)
	}
}

// etcd restarted without its data: a watch notices that the revision went
// back and lists afresh (a watch resumed from the old revision would wait
// for it forever), the store's view reports the outage and the loss, and
// a registration is granted and written again with its latest value.
func TestWatchAndLeaseAfterDataLoss(t *testing.T) {
	srv, client := startEtcd(t)
	cli := client()
	s := NewStore(cli, "c")
	watcher := NewStore(client(), "c")
	for i := range 50 { // a revision the new etcd will not reach soon
		if err := s.Put(t.Context(), s.Model(), ModelInfo{Name: fmt.Sprint(i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	renewed := make(chan clientv3.LeaseID, 4)
	lease, err := s.Register(t.Context(), s.Node("n1"), Node{ID: "n1", Addr: "old"}, 2, func(ctx context.Context, id clientv3.LeaseID) {
		renewed <- id
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Put(t.Context(), Node{ID: "n1", Addr: "new", Draining: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	seen := make(chan map[string]Coordinator, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, watcher, watcher.CoordinatorsPrefix(), func(m map[string]Coordinator) { seen <- m })
	}()
	if m := <-seen; len(m) != 0 {
		t.Fatalf("first listing: %v", m)
	}
	waitFor(t, "the view to read a revision", func() bool { return watcher.EtcdState().Revision > 50 })

	srv.Close()
	waitFor(t, "the view to see etcd unreachable", func() bool { return !watcher.EtcdState().Reachable })
	if err := srv.RestartEmpty(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), s.Coordinator("c1"), Coordinator{ID: "c1"}, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for found := false; !found; {
		select {
		case m := <-seen:
			found = m["c1"].ID == "c1"
		case <-deadline:
			t.Fatal("the watch did not see a key written after etcd restarted empty")
		}
	}
	st := watcher.EtcdState()
	if st.DataLost != 1 || st.Back.IsZero() || !st.Reachable {
		t.Errorf("view after the restart: %+v, want one data loss, reachable, with a return time", st)
	}
	select {
	case id := <-renewed:
		if id == 0 {
			t.Error("renewed with lease 0")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the registration was not renewed after etcd lost it")
	}
	var n Node
	if err := s.Get(t.Context(), s.Node("n1"), &n); err != nil {
		t.Fatal(err)
	}
	if n.Addr != "new" || !n.Draining {
		t.Errorf("renewed registration %+v, want the value of the last Put", n)
	}
	cancel()
	<-done
	// The last Watch stopped the store's monitor and waited for it.
	select {
	case <-watcher.view.done:
	default:
		t.Error("the store's monitor outlived its watches")
	}
	lease.Close(t.Context())
	select {
	case <-lease.done:
	default:
		t.Error("the lease's keep-alive outlived Close")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
