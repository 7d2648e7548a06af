package routingstats

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestImbalanceAndEntropy(t *testing.T) {
	cases := []struct {
		name      string
		loads     []uint64
		imbalance float64
		entropy   float64
	}{
		{"all tokens to one expert", []uint64{0, 0, 40, 0, 0, 0, 0, 0}, 8, 0},
		{"uniform", []uint64{5, 5, 5, 5, 5, 5, 5, 5}, 1, 3},
		{"two of four", []uint64{10, 10, 0, 0}, 2, 1},
		{"no load", []uint64{0, 0, 0}, 0, 0},
	}
	for _, c := range cases {
		if got := Imbalance(c.loads); math.Abs(got-c.imbalance) > 1e-12 {
			t.Errorf("%s: imbalance %g, want %g", c.name, got, c.imbalance)
		}
		if got := Entropy(c.loads); math.Abs(got-c.entropy) > 1e-12 {
			t.Errorf("%s: entropy %g, want %g", c.name, got, c.entropy)
		}
	}
}

func TestCountsExact(t *testing.T) {
	r := New(2, 4, 2, nil)
	// Three tokens in layer 0: experts (1,3), (3,1), (0,2).
	r.Observe(0, []int32{1, 3, 3, 1, 0, 2}, []float32{0.6, 0.4, 0.7, 0.3, 0.5, 0.5})
	r.Observe(1, []int32{2, 2}, []float32{1, 0}) // a degenerate row still counts
	c := r.Window(0)
	if c.Tokens[0] != 3 || c.Tokens[1] != 1 {
		t.Fatalf("tokens %v", c.Tokens)
	}
	want := []uint64{1, 2, 1, 2}
	for e, w := range want {
		if c.ExpertTokens[0][e] != w {
			t.Errorf("layer 0 expert %d: %d tokens, want %d", e, c.ExpertTokens[0][e], w)
		}
	}
	if m := c.GateMass[0][1]; math.Abs(m-0.9) > 1e-6 {
		t.Errorf("gate mass of expert 1: %g, want 0.9", m)
	}
	top := c.TopPairs(1)
	if len(top) != 1 || top[0].Experts != [2]int{1, 3} || top[0].Tokens != 2 {
		t.Errorf("top pair %v, want (1,3) twice", top)
	}
	rep := Build(c, "all", 10)
	var sum float64
	for _, e := range rep.Layers[0].Experts {
		sum += e.Share
	}
	if math.Abs(sum-1) > 1e-12 || len(rep.Layers[1].Experts) != 4 {
		t.Errorf("shares sum to %g; layer 1 lists %d experts", sum, len(rep.Layers[1].Experts))
	}
}

func TestDenseLayers(t *testing.T) {
	// Layer 0 has a dense FFN (deepseek2's leading dense block); 1 and 2
	// route over 2 experts.
	r := New(3, 2, 1, []int{1, 2})
	r.Observe(0, []int32{0, 1}, []float32{1, 1}) // not routing: ignored
	r.Observe(1, []int32{0, 0, 1}, []float32{1, 1, 1})
	c := r.Window(0)
	if c.Tokens[0] != 0 || c.ExpertTokens[0][0] != 0 || c.Tokens[1] != 3 {
		t.Fatalf("tokens %v, expert tokens %v: want layer 0 empty and 3 tokens in layer 1", c.Tokens, c.ExpertTokens)
	}
	// The router merges decoded counts (which carry no layer map) into
	// counts shaped from the model record: the receiver's map holds.
	merged := NewCounts(3, 2)
	merged.MoELayers = []int{1, 2}
	decoded := NewCounts(3, 2)
	decoded.Merge(c)
	merged.Merge(decoded)
	rep := Build(merged, "all", 1)
	want := []struct {
		dense   bool
		tokens  uint64
		experts int
	}{{true, 0, 0}, {false, 3, 2}, {false, 0, 2}}
	if len(rep.Layers) != len(want) {
		t.Fatalf("%d layers in the report, want %d", len(rep.Layers), len(want))
	}
	for l, w := range want {
		lr := rep.Layers[l]
		if lr.Layer != l || lr.Dense != w.dense || lr.Tokens != w.tokens || len(lr.Experts) != w.experts {
			t.Errorf("layer %d: got layer %d dense %v, %d tokens, %d experts; want dense %v, %d tokens, %d experts",
				l, lr.Layer, lr.Dense, lr.Tokens, len(lr.Experts), w.dense, w.tokens, w.experts)
		}
	}
	// 3 slots: expert 0 has 2, expert 1 has 1; mean 1.5, so 2/1.5.
	if got := rep.Layers[1].Imbalance; math.Abs(got-4.0/3) > 1e-12 {
		t.Errorf("layer 1 imbalance %g, want 4/3", got)
	}
	b, err := json.Marshal(rep.Layers[:2])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `[{"layer":0,"dense":true,"tokens":0,"imbalance":0,"entropy":0,"experts":[]},{"layer":1,"tokens":3,`; !strings.HasPrefix(got, want) {
		t.Errorf("JSON %s, want it to start %s", got, want)
	}
}

func TestWindows(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := New(1, 2, 1, nil)
	r.now = func() time.Time { return now }
	r.Observe(0, []int32{0}, []float32{1})
	now = now.Add(2 * time.Minute)
	r.Observe(0, []int32{1}, []float32{1})
	r.RecordStep(1)
	if c := r.Window(time.Minute); c.ExpertTokens[0][0] != 0 || c.ExpertTokens[0][1] != 1 {
		t.Errorf("1m window: %v", c.ExpertTokens)
	}
	if c := r.Window(5 * time.Minute); c.ExpertTokens[0][0] != 1 || c.ExpertTokens[0][1] != 1 {
		t.Errorf("5m window: %v", c.ExpertTokens)
	}
	now = now.Add(10 * time.Minute)
	if c := r.Window(5 * time.Minute); c.Tokens[0] != 0 {
		t.Errorf("5m window after 10 minutes holds %d tokens", c.Tokens[0])
	}
	if c := r.Window(0); c.Tokens[0] != 2 || c.Generated != 1 {
		t.Errorf("all: %d tokens, %d generated", c.Tokens[0], c.Generated)
	}
	if s := r.Series(); len(s) != 60 {
		t.Errorf("series of %d points, want 60", len(s))
	}
}

func TestNodesAndPercentiles(t *testing.T) {
	r := New(1, 2, 1, nil)
	for range 98 {
		r.RecordCall("n1", 4, 100, 200, 3*time.Millisecond, false)
	}
	r.RecordCall("n1", 4, 100, 200, 400*time.Millisecond, true)
	r.RecordCall("n1", 4, 100, 200, 400*time.Millisecond, false)
	r.RecordRetry("n1")
	a := r.Window(0)
	b := New(1, 2, 1, nil).Window(0)
	b.Merge(a)
	b.Merge(a)
	n := b.Nodes["n1"]
	if n.Calls != 200 || n.Errors != 2 || n.Retries != 2 || n.Rows != 800 || n.BytesReceived != 40000 {
		t.Fatalf("merged node counts %+v", n)
	}
	rep := Build(b, "all", 1)
	if p := rep.Nodes[0].LatencyP50; p < 2.5 || p > 5 {
		t.Errorf("p50 %g ms, want within the 2.5–5 ms bucket", p)
	}
	if p := rep.Nodes[0].LatencyP99; p < 250 || p > 500 {
		t.Errorf("p99 %g ms, want within the 250–500 ms bucket", p)
	}
}

// BenchmarkObserve measures the recording cost of one step of a 32-token
// batch in an 8-layer, 8-expert, top-2 model (what a coordinator adds to
// every step).
func BenchmarkObserve(b *testing.B) {
	r := New(8, 8, 2, nil)
	choices := make([]int32, 64)
	weights := make([]float32, 64)
	for i := range choices {
		choices[i] = int32(i * 7 % 8)
		weights[i] = 0.5
	}
	for b.Loop() {
		for l := range 8 {
			r.Observe(l, choices, weights)
		}
		r.RecordStep(32)
	}
}
