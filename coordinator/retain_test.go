package coordinator

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-llm/switchyard/pkg/membership"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// A node whose registration and status lapse (etcd was away, or lost its
// data) keeps serving while gossip sees it alive; once gossip declares it
// gone too, membership's event — read from Members.Changed, not on
// memberlist's goroutines — drops it and closes its connection.
func TestDispatcherKeepsNodesAliveInGossip(t *testing.T) {
	self, err := membership.Start(membership.Config{Name: "coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	node, err := membership.Start(membership.Config{Name: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	nodeUp := true
	defer func() {
		if nodeUp {
			node.Close()
		}
	}()
	if err := node.Join([]string{self.Addr()}); err != nil {
		t.Fatal(err)
	}
	h := model.Hyper{Embd: 4, ExpertsUsed: 1, Layers: 1, Experts: 2}
	stats := routingstats.New(h.Layers, h.Experts, h.ExpertsUsed, h.MoELayers())
	d := newDispatcher(nil, grpc.WithTransportCredentials(insecure.NewCredentials()), "sha256:x", h, pb.Encoding_ENCODING_F32, time.Second, time.Second,
		self, stats, newMetrics(prometheus.NewRegistry(), stats, false), slog.New(slog.DiscardHandler))
	defer d.close()
	waitUntil(t, "gossip to see node-1", func() bool { return self.Alive("node-1") })
	d.setNodes(map[string]placement.Node{"node-1": {ID: "node-1", Addr: "127.0.0.1:1"}})
	d.setStatus(map[string]placement.Status{"node-1": {NodeID: "node-1", Digest: "sha256:x", Ready: []string{"0/0", "0/1"}}})
	d.setPlacement(placement.Map{Epoch: 3, Units: map[string][]string{"0/0": {"node-1"}, "0/1": {"node-1"}}})
	if m := d.missing(); len(m) != 0 {
		t.Fatalf("missing %v with node-1 ready", m)
	}
	d.mu.RLock()
	conn := d.conns["node-1"].conn
	d.mu.RUnlock()

	// etcd lost everything: registrations, status and the placement.
	d.setNodes(map[string]placement.Node{})
	d.setStatus(map[string]placement.Status{})
	d.setPlacement(placement.Map{})
	if m := d.missing(); len(m) != 0 {
		t.Errorf("with node-1's registration lapsed but alive in gossip: missing %v, want none", m)
	}
	if got := d.lastPlacement().Epoch; got != 3 {
		t.Errorf("placement in use after etcd lost it: epoch %d, want 3", got)
	}
	d.setPlacement(placement.Map{Epoch: 2, Units: map[string][]string{"0/0": {"node-9"}}})
	if got := d.lastPlacement().Epoch; got != 3 {
		t.Errorf("an older placement replaced the one in use: epoch %d", got)
	}
	if conn.GetState() == connectivity.Shutdown {
		t.Error("node-1's connection was closed while it is alive")
	}

	// node-1 leaves gossip: the event arrives on Changed.
	node.Close()
	nodeUp = false
	deadline := time.After(20 * time.Second)
	for {
		if _, _, ok := d.view("node-1"); !ok {
			break
		}
		select {
		case <-self.Changed():
			d.membershipChanged()
		case <-deadline:
			t.Fatal("node-1 was not dropped after it left gossip")
		}
	}
	if m := d.missing(); len(m) != 2 {
		t.Errorf("missing %v after node-1 left, want both units", m)
	}
	if conn.GetState() != connectivity.Shutdown {
		t.Errorf("node-1's connection is %v after it was dropped, want shut down", conn.GetState())
	}
}
