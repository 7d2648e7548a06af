package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/switchyard-llm/switchyard/internal/embedetcd"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

const tinyModel = "../testdata/models/tiny-mixtral-q8_0.gguf"

// testLogger sends logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// controlFixture is a real etcd and coordinators opened on the tiny model,
// without their servers: the tests drive their controllers' rounds.
type controlFixture struct {
	t    *testing.T
	etcd *embedetcd.Server
}

func newControlFixture(t *testing.T) *controlFixture {
	srv, err := embedetcd.Start(t.Context(), t.TempDir(), "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &controlFixture{t: t, etcd: srv}
}

func (f *controlFixture) store() *placement.Store {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{f.etcd.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	return placement.NewStore(c, "test")
}

// coordinator opens a coordinator (model, dispatcher, statistics) that
// does not serve.
func (f *controlFixture) coordinator(id string) *Coordinator {
	cfg := Config{ID: id, Etcd: []string{f.etcd.Endpoint}, Listen: "127.0.0.1:0", ModelPath: tinyModel, MinNodes: 2, Logger: testLogger(f.t)}
	if err := cfg.Validate(); err != nil {
		f.t.Fatal(err)
	}
	c, err := open(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.file.Close() })
	c.metrics = newMetrics(prometheus.NewRegistry(), c.stats, false)
	c.dispatch = newDispatcher(c.model.Pool, nil, c.info.Digest, c.model.Hyper, c.cfg.Encoding, time.Second, time.Second, nil, c.stats, c.metrics, c.log)
	return c
}

// elect wins the election for c on a session of its own and returns its
// controller, with the session.
func (f *controlFixture) elect(c *Coordinator, s *placement.Store) (*controller, *concurrency.Session) {
	sess, err := concurrency.NewSession(s.C, concurrency.WithTTL(5))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { sess.Close() })
	el := concurrency.NewElection(sess, s.Election())
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	defer cancel()
	if err := el.Campaign(ctx, c.cfg.ID); err != nil {
		f.t.Fatal(err)
	}
	return &controller{c: c, store: s, fence: placement.Fence{Key: el.Key(), Rev: el.Rev()},
		absence: placement.Absence{Grace: c.cfg.ReregisterGrace, Hold: c.cfg.MassLossHold}}, sess
}

// register writes node records (as nodes do, here without leases) and
// a status saying each has loaded what pm places on it.
func register(t *testing.T, s *placement.Store, digest string, pm placement.Map, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Put(t.Context(), s.Node(id), placement.Node{ID: id, Addr: "127.0.0.1:1"}, 0); err != nil {
			t.Fatal(err)
		}
		st := placement.Status{NodeID: id, Digest: digest, Epoch: pm.Epoch}
		for _, u := range pm.UnitsOf(id) {
			st.Ready = append(st.Ready, placement.UnitKey(u))
		}
		if err := s.Put(t.Context(), s.Status(id), st, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func history(t *testing.T, s *placement.Store) []placement.Change {
	t.Helper()
	h, err := placement.List[placement.Change](t.Context(), s, s.HistoryPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []placement.Change
	for _, c := range h {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b placement.Change) int { return int(a.Epoch - b.Epoch) })
	return out
}

func current(t *testing.T, s *placement.Store) placement.Map {
	t.Helper()
	var m placement.Map
	if err := s.Get(t.Context(), s.Placement(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Two coordinators both believe they lead: a was elected and placed the
// units, then its session lapsed without its controller noticing, and b
// was elected. Both run rounds while a node joins (so there is something
// to write); a's writes are refused, and one placement history results.
func TestTwoLeadersOneHistory(t *testing.T) {
	f := newControlFixture(t)
	s := f.store()
	a, b := f.coordinator("coordinator-a"), f.coordinator("coordinator-b")
	register(t, s, a.info.Digest, placement.Map{}, "node-1", "node-2")
	ctlA, sessA := f.elect(a, f.store())
	if err := ctlA.round(t.Context()); err != nil {
		t.Fatalf("a's first round: %v", err)
	}
	first := current(t, s)
	if first.Epoch != 1 || len(first.Units) != len(a.info.Units()) {
		t.Fatalf("initial placement: epoch %d with %d units, want epoch 1 with %d", first.Epoch, len(first.Units), len(a.info.Units()))
	}
	register(t, s, a.info.Digest, first, "node-1", "node-2") // they loaded it
	if _, err := sessA.Client().Revoke(t.Context(), sessA.Lease()); err != nil {
		t.Fatal(err)
	}
	ctlB, _ := f.elect(b, f.store())
	register(t, s, a.info.Digest, placement.Map{}, "node-3") // a node joins: rebalancing to do
	var errsA []error
	for range 6 {
		errsA = append(errsA, ctlA.round(t.Context()))
		if err := ctlB.round(t.Context()); err != nil {
			t.Fatalf("the leader's round: %v", err)
		}
		register(t, s, a.info.Digest, current(t, s), "node-1", "node-2", "node-3")
	}
	refused := 0
	for i, err := range errsA {
		switch {
		case errors.Is(err, placement.ErrNotLeader):
			refused++
		case err != nil:
			t.Errorf("deposed leader's round %d: got %v, want ErrNotLeader or nothing to write", i, err)
		}
	}
	if refused == 0 {
		t.Error("the deposed leader never tried to write: the test shows nothing")
	}
	h := history(t, s)
	var lines []string
	for i, c := range h {
		lines = append(lines, fmt.Sprintf("epoch %d by %s: %s", c.Epoch, c.By, c.Reasons[0]))
		if c.Epoch != int64(i+1) {
			t.Errorf("history epoch %d at position %d: one sequence has no gaps", c.Epoch, i)
		}
		if want := "coordinator-b"; c.Epoch > 1 && c.By != want {
			t.Errorf("epoch %d written by %s, want %s", c.Epoch, c.By, want)
		}
	}
	if len(h) < 2 {
		t.Errorf("the leader wrote nothing after the node joined: %v", lines)
	}
	if cur := current(t, s); cur.Epoch != h[len(h)-1].Epoch {
		t.Errorf("placement epoch %d, last history epoch %d", cur.Epoch, h[len(h)-1].Epoch)
	}
	t.Logf("history:\n%s", strings.Join(lines, "\n"))
}

// A new leader adopts the placement it finds for its model, whatever the
// epoch and whoever wrote it, even one that lost units: it repairs what is
// missing instead of placing afresh. Another model's placement is
// replaced.
func TestNewLeaderAdopts(t *testing.T) {
	f := newControlFixture(t)
	s := f.store()
	a := f.coordinator("coordinator-a")
	register(t, s, a.info.Digest, placement.Map{}, "node-1", "node-2")
	ctlA, sessA := f.elect(a, s)
	if err := ctlA.round(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := current(t, s)
	register(t, s, a.info.Digest, first, "node-1", "node-2")
	sessA.Close()

	// Stable: the next leader writes nothing.
	b := f.coordinator("coordinator-b")
	ctlB, sessB := f.elect(b, s)
	if err := ctlB.round(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cur := current(t, s); cur.Epoch != first.Epoch {
		t.Errorf("a new leader changed a settled placement: epoch %d → %d: %v", first.Epoch, cur.Epoch, history(t, s))
	}
	sessB.Close()

	// A placement that lost one unit (written at a high epoch by someone
	// else): adopted, the unit repaired, everything else where it was.
	lost := placement.Map{Epoch: 40, Digest: first.Digest, Units: map[string][]string{}}
	var gone string
	for k, on := range first.Units {
		if gone == "" {
			gone = k
			continue
		}
		lost.Units[k] = on
	}
	if err := s.Put(t.Context(), s.Placement(), lost, 0); err != nil {
		t.Fatal(err)
	}
	c := f.coordinator("coordinator-c")
	ctlC, sessC := f.elect(c, s)
	if err := ctlC.round(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := current(t, s)
	if got.Epoch != 41 || len(got.Units[gone]) != 1 {
		t.Errorf("after adopting epoch 40 without %s: epoch %d, %s on %v", gone, got.Epoch, gone, got.Units[gone])
	}
	for k, on := range lost.Units {
		if !slices.Equal(got.Units[k], on) {
			t.Errorf("unit %s moved from %v to %v on adoption", k, on, got.Units[k])
		}
	}
	for _, ch := range history(t, s) {
		for _, r := range ch.Reasons {
			if strings.Contains(r, "afresh") || (ch.Epoch > 1 && strings.Contains(r, "initial placement")) {
				t.Errorf("epoch %d: %q", ch.Epoch, r)
			}
		}
	}
	sessC.Close()

	// Another model's placement is replaced.
	other := placement.Map{Epoch: 50, Digest: "sha256:another", Units: first.Units}
	if err := s.Put(t.Context(), s.Placement(), other, 0); err != nil {
		t.Fatal(err)
	}
	d := f.coordinator("coordinator-d")
	ctlD, _ := f.elect(d, s)
	if err := ctlD.round(t.Context()); err != nil {
		t.Fatal(err)
	}
	h := history(t, s)
	if last := h[len(h)-1]; last.Epoch != 51 || !strings.Contains(strings.Join(last.Reasons, "\n"), "placing afresh: epoch 50 was for model sha256:another") {
		t.Errorf("replacing another model's placement: %+v", last)
	}
}

// etcd lost its data (the placement, history and model record are gone)
// while the nodes kept serving: the leader writes the model record and a
// placement equal to what the nodes report loaded, at an epoch above
// every epoch seen, instead of a fresh one.
func TestRebuildAfterDataLoss(t *testing.T) {
	f := newControlFixture(t)
	s := f.store()
	a := f.coordinator("coordinator-a")
	// What the cluster served on before etcd lost everything.
	before := placement.Map{Epoch: 17, Digest: a.info.Digest, Units: map[string][]string{}}
	for i, u := range a.info.Units() {
		before.Units[placement.UnitKey(u)] = []string{fmt.Sprintf("node-%d", 1+i%2)}
	}
	a.dispatch.setPlacement(before)
	// The nodes registered again; node-2 reports an older epoch.
	register(t, s, a.info.Digest, before, "node-1")
	b2 := before
	b2.Epoch = 12
	register(t, s, a.info.Digest, b2, "node-2")
	ctl, _ := f.elect(a, s)
	if err := ctl.round(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := current(t, s)
	if got.Epoch != 18 {
		t.Errorf("rebuilt placement at epoch %d, want 18 (above the 17 seen)", got.Epoch)
	}
	if len(got.Units) != len(before.Units) {
		t.Errorf("rebuilt placement has %d units, want %d", len(got.Units), len(before.Units))
	}
	for k, on := range before.Units {
		if !slices.Equal(got.Units[k], on) {
			t.Errorf("unit %s rebuilt on %v, want %v (where it is loaded)", k, got.Units[k], on)
		}
	}
	h := history(t, s)
	if len(h) != 1 || !strings.Contains(h[0].Reasons[0], "recovered: etcd had no placement") {
		t.Errorf("history after the rebuild: %+v", h)
	}
	var m placement.ModelInfo
	if err := s.Get(t.Context(), s.Model(), &m); err != nil || m.Digest != a.info.Digest {
		t.Errorf("model record after the rebuild: %+v, %v", m, err)
	}
}

// While a node of the last placement has not reported again and the
// grace after etcd's return runs, the rebuild waits rather than writing a
// placement without that node's units.
func TestRebuildWaitsForNodes(t *testing.T) {
	f := newControlFixture(t)
	s := f.store()
	a := f.coordinator("coordinator-a")
	before := placement.Map{Epoch: 5, Digest: a.info.Digest, Units: map[string][]string{}}
	for i, u := range a.info.Units() {
		before.Units[placement.UnitKey(u)] = []string{fmt.Sprintf("node-%d", 1+i%2)}
	}
	a.dispatch.setPlacement(before)
	register(t, s, a.info.Digest, before, "node-1")
	// The store watched etcd go away and come back just now.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		placement.Watch(ctx, s, s.DrainPrefix(), func(map[string]bool) {})
	}()
	defer func() { cancel(); <-done }()
	waitUntil(t, "the store to read etcd", func() bool { return s.EtcdState().Revision > 0 })
	f.etcd.Close()
	waitUntil(t, "the store to see etcd away", func() bool { return !s.EtcdState().Reachable })
	if err := f.etcd.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the store to see etcd back", func() bool { return s.EtcdState().Reachable })
	if _, err := s.C.Delete(t.Context(), s.Placement()); err != nil {
		t.Fatal(err)
	}
	ctl, _ := f.elect(a, s)
	if err := ctl.round(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(t.Context(), s.Placement(), new(placement.Map)); !errors.Is(err, placement.ErrNotFound) {
		t.Errorf("a placement was rebuilt while node-2 had not reported: %v", err)
	}
	register(t, s, a.info.Digest, before, "node-2")
	if err := ctl.round(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := current(t, s); got.Epoch != 6 || len(got.Units) != len(before.Units) {
		t.Errorf("once node-2 reported: epoch %d with %d units, want 6 with %d", got.Epoch, len(got.Units), len(before.Units))
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
