package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

// DeepSeek-V3 (58 MoE layers × 256 experts, top-8 of 4 groups of 8) under
// Zipf-skewed load: the real controller reaches a steady state with the
// node-load imbalance at or below the 1.10 target, using at most the
// redundant slots given; the placement goes through a real etcd with its
// default request limit (sharded where it must be); and the prediction
// from routed tokens agrees with the closed form within 10%.
func TestSimDeepSeekV3(t *testing.T) {
	cases := []struct {
		name            string
		nodes, replicas int
		batch           int
		sharded         bool
	}{
		{"256 nodes", 256, 1, 256, false},
		// Three replicas split each unit's tokens three ways: the closed
		// form, which takes the slowest node's expected time rather than
		// the expected slowest time, needs a batch large enough for every
		// replica to see several tokens (at 256 it is 9% off here).
		{"64 nodes, 3 replicas", 64, 3, 1024, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Nodes, cfg.Replicas, cfg.Batch, cfg.Etcd = c.nodes, c.replicas, c.batch, true
			rep, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(rep)
			t.Logf("%s", b)
			if rep.Units != 14848 || !rep.Settled {
				t.Fatalf("%d units, settled %v: want 14848, settled", rep.Units, rep.Settled)
			}
			if rep.ImbalanceAfter > 1.10 || rep.ImbalanceAfter >= rep.ImbalanceBefore {
				t.Errorf("node-load imbalance %.3f → %.3f, want it down to ≤ 1.10", rep.ImbalanceBefore, rep.ImbalanceAfter)
			}
			if rep.ExtraReplicas > cfg.Redundant*cfg.Layers || rep.Moves < rep.ExtraReplicas {
				t.Errorf("%d extra replicas from %d moves, budget %d", rep.ExtraReplicas, rep.Moves, cfg.Redundant*cfg.Layers)
			}
			if rep.MaxRequestBytes > rep.EtcdLimitBytes || !rep.EtcdPublished || (rep.PlacementShards > 0) != c.sharded {
				t.Errorf("placement of %d bytes in %d shards (largest write %d), published %v; want sharded %v, each write under %d",
					rep.PlacementBytes, rep.PlacementShards, rep.MaxRequestBytes, rep.EtcdPublished, c.sharded, rep.EtcdLimitBytes)
			}
			if rep.ModelError > 0.10 {
				t.Errorf("predicted %.0f tok/s, closed form %.0f: %.1f%% apart, want ≤ 10%%", rep.PredictedTokS, rep.ModelTokS, 100*rep.ModelError)
			}
		})
	}
}

// The closed form on a case small enough to work out by hand: one MoE
// layer of two experts, top-1, each expert on a node of its own, expert 0
// routed 3 of 4 measured tokens, a batch of 2.
func TestClosedFormByHand(t *testing.T) {
	cfg := Config{Layers: 1, Experts: 2, TopK: 1, Embd: 4, ExpertFF: 8, BitsPerWeight: 8, SharedBytes: 1000,
		Batch: 2, MicroBatches: 1, NodeBandwidth: 100, CoordBandwidth: 10, LinkRate: 64, RTT: time.Second, WireBytes: 2}
	m := newMachine(cfg)
	reps := [][][]int{{{0}, {1}}}
	got := closedForm(m, reps, 2, [][]float64{{3, 1}}, 2, 1, 4)
	// An expert is 3×4×8 one-byte weights = 96 bytes; a row is 4×2 bytes
	// = 64 bits. Node 0: E[units] = 1 − 0.25² = 0.9375, E[rows] =
	// E[pairs] = 2 × 0.75 = 1.5. Node 1: 1 − 0.75² = 0.4375, 0.5, 0.5.
	node0 := 0.9375*96/100 + (1.5+1.5)*64/64.0
	node1 := 0.4375*96/100 + (0.5+0.5)*64/64.0
	shared := 1000 / 10.0 // one layer: the whole pass
	want := max(shared, shared+max(node0, node1)+1)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("step time %.12f s, want %.12f", got, want)
	}
	// Two micro-batches of one token: the layer takes the longer of two
	// shared passes and one pass plus its experts.
	got = closedForm(m, reps, 2, [][]float64{{3, 1}}, 2, 2, 4)
	node0 = 0.75*96/100 + (0.75+0.75)*64/64.0
	want = max(2*shared, shared+node0+1)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("with 2 micro-batches: step time %.12f s, want %.12f", got, want)
	}
}

// Without group limits and with top-1, Gumbel noise on log weights picks
// expert e with probability w_e / Σw (the Gumbel-max theorem): the
// router's frequencies must match, within 4 standard deviations.
func TestRouterPicksByWeight(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	w := [][]float64{{8, 4, 2, 1, 1}}
	rt, err := newRouter(r, w, 1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100000
	got := rt.counts(n)[0]
	for e, x := range w[0] {
		p := x / 16
		sd := math.Sqrt(n * p * (1 - p))
		if math.Abs(got[e]-n*p) > 4*sd {
			t.Errorf("expert %d picked %.0f times of %d, want %.0f ± %.0f", e, got[e], n, n*p, 4*sd)
		}
	}
}

// With DeepSeek-V3's gate shape every token gets 8 distinct experts from
// at most 4 of the 8 groups.
func TestRouterGroupLimits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	rt, err := newRouter(r, zipfWeights(r, 1, 256, 1), 8, 8, 4)
	if err != nil {
		t.Fatal(err)
	}
	var picks []int
	for range 2000 {
		picks = rt.route(picks[:0], 0)
		groups := map[int]bool{}
		for _, e := range picks {
			groups[e/32] = true
		}
		sorted := slices.Sorted(slices.Values(picks))
		if len(picks) != 8 || len(slices.Compact(sorted)) != 8 || len(groups) > 4 {
			t.Fatalf("token routed to %v: want 8 distinct experts from at most 4 groups", picks)
		}
	}
	if _, err := newRouter(r, zipfWeights(r, 1, 256, 1), 8, 8, 0); err == nil {
		t.Error("a gate with no groups used was accepted")
	}
}

// A recorded /v1/routing/stats report replays as weights: each MoE
// layer's experts get their tokens (plus a half), dense layers are
// skipped, and reports of another shape are refused.
func TestReplayWeights(t *testing.T) {
	rep := routingstats.Report{Layers: []routingstats.LayerReport{
		{Layer: 0, Dense: true},
		{Layer: 1, Experts: []routingstats.ExpertReport{{Expert: 0, Tokens: 10}, {Expert: 2, Tokens: 4}}},
		{Layer: 2, Experts: []routingstats.ExpertReport{{Expert: 1, Tokens: 7}}},
	}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	w, err := replayWeights(bytes.NewReader(b), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{{10.5, 0.5, 4.5}, {0.5, 7.5, 0.5}}
	for l := range want {
		if !slices.Equal(w[l], want[l]) {
			t.Errorf("layer %d weights %v, want %v", l, w[l], want[l])
		}
	}
	if _, err := replayWeights(bytes.NewReader(b), 3, 3); err == nil || !strings.Contains(err.Error(), "MoE layers") {
		t.Errorf("a report of 2 MoE layers replayed for 3: %v", err)
	}
	if _, err := replayWeights(bytes.NewReader(b), 2, 2); err == nil || !strings.Contains(err.Error(), "expert 2") {
		t.Errorf("a report naming expert 2 replayed for 2 experts: %v", err)
	}
}

// Spread is what both the dispatcher and the prediction route by: a hot
// unit's rows split evenly over its replicas.
func TestSpreadEvenly(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		got := make([]int, n)
		for row := range 6 * n {
			got[placement.Spread(uint64(7+n), row, n)]++
		}
		for i, c := range got {
			if c != 6 {
				t.Errorf("%d replicas: replica %d got %d of %d rows, want 6", n, i, c, 6*n)
			}
		}
	}
}
