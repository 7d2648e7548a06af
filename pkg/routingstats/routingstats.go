// Package routingstats records where a Mixture-of-Experts model routes its
// tokens — per (layer, expert) tokens and gate mass, expert pairs chosen
// together, per-node dispatch figures — over sliding windows, and turns
// those counts into the report operators read (load imbalance, routing
// entropy, shares, latency percentiles). Counts are additive, so the
// figures of several coordinators merge exactly.
package routingstats

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// LatencyBounds are the upper bounds, in milliseconds, of the dispatch
// latency histogram; a last bucket holds everything slower.
var LatencyBounds = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// Windows are kept in buckets of this many seconds, for five minutes.
const (
	BucketSeconds = 5
	ringBuckets   = 300 / BucketSeconds
)

// Pair is two experts (A < B) chosen together for one token in a layer.
type Pair struct{ Layer, A, B int }

// PairKey packs a pair into a map key (a scalar key keeps the map fast).
func PairKey(layer, a, b int) uint64 { return uint64(layer)<<40 | uint64(a)<<20 | uint64(b) }

// PairOf unpacks a key of Counts.Pairs.
func PairOf(k uint64) Pair {
	return Pair{int(k >> 40), int(k >> 20 & (1<<20 - 1)), int(k & (1<<20 - 1))}
}

// NodeCounts are one expert node's dispatch figures.
type NodeCounts struct {
	Calls, Rows, BytesSent, BytesReceived, Errors, Retries uint64
	Latency                                                []uint64 // per LatencyBounds bucket, plus one
}

// Counts is an additive summary of routing over some time.
type Counts struct {
	Layers, Experts int
	Tokens          []uint64   // per layer: token positions routed
	ExpertTokens    [][]uint64 // [layer][expert]: routing slots taken
	GateMass        [][]float64
	Pairs           map[uint64]uint64 // PairKey → tokens
	Nodes           map[string]*NodeCounts
	Generated       uint64 // tokens generated (sampled)
	Steps           uint64 // forward passes
	// MoELayers lists, in order, the layers with routed experts (nil:
	// every layer); a dense layer's rows stay zero. Merge keeps the
	// receiver's.
	MoELayers []int
}

// NewCounts returns empty counts for a layers × experts model.
func NewCounts(layers, experts int) Counts {
	c := Counts{Layers: layers, Experts: experts, Tokens: make([]uint64, layers), ExpertTokens: make([][]uint64, layers),
		GateMass: make([][]float64, layers), Pairs: map[uint64]uint64{}, Nodes: map[string]*NodeCounts{}}
	for l := range layers {
		c.ExpertTokens[l] = make([]uint64, experts)
		c.GateMass[l] = make([]float64, experts)
	}
	return c
}

// MoELayer reports whether layer l has routed experts.
func (c Counts) MoELayer(l int) bool {
	return l >= 0 && l < c.Layers && (c.MoELayers == nil || slices.Contains(c.MoELayers, l))
}

func (c *Counts) node(id string) *NodeCounts {
	n := c.Nodes[id]
	if n == nil {
		n = &NodeCounts{Latency: make([]uint64, len(LatencyBounds)+1)}
		c.Nodes[id] = n
	}
	return n
}

// Merge adds o into c; both must be of the same shape.
func (c *Counts) Merge(o Counts) {
	for l := range min(c.Layers, o.Layers) {
		c.Tokens[l] += o.Tokens[l]
		for e := range min(c.Experts, o.Experts) {
			c.ExpertTokens[l][e] += o.ExpertTokens[l][e]
			c.GateMass[l][e] += o.GateMass[l][e]
		}
	}
	for p, n := range o.Pairs {
		c.Pairs[p] += n
	}
	for id, on := range o.Nodes {
		n := c.node(id)
		n.Calls += on.Calls
		n.Rows += on.Rows
		n.BytesSent += on.BytesSent
		n.BytesReceived += on.BytesReceived
		n.Errors += on.Errors
		n.Retries += on.Retries
		for i := range min(len(n.Latency), len(on.Latency)) {
			n.Latency[i] += on.Latency[i]
		}
	}
	c.Generated += o.Generated
	c.Steps += o.Steps
}

func (c *Counts) observe(layer int, choices []int32, weights []float32, k int) {
	if !c.MoELayer(layer) || k == 0 {
		return
	}
	et, gm := c.ExpertTokens[layer], c.GateMass[layer]
	c.Tokens[layer] += uint64(len(choices) / k)
	for i, e := range choices {
		if int(e) < c.Experts {
			et[e]++
			gm[e] += float64(weights[i])
		}
	}
	for row := 0; row+k <= len(choices); row += k {
		for a := row; a < row+k; a++ {
			for b := a + 1; b < row+k; b++ {
				x, y := int(choices[a]), int(choices[b])
				if x > y {
					x, y = y, x
				}
				c.Pairs[PairKey(layer, x, y)]++
			}
		}
	}
}

// Recorder accumulates counts over time. Safe for concurrent use; each
// call holds one mutex briefly.
type Recorder struct {
	layers, experts, k int
	moe                []int
	now                func() time.Time

	mu    sync.Mutex
	ring  [ringBuckets]*bucket
	all   Counts
	start time.Time
}

type bucket struct {
	slot int64
	c    Counts
}

// New returns a recorder for a model of layers × experts with k experts
// used per token, of which moe lists the layers with routed experts (nil:
// every layer).
func New(layers, experts, k int, moe []int) *Recorder {
	r := &Recorder{layers: layers, experts: experts, k: k, moe: moe, now: time.Now}
	r.all = r.newCounts()
	r.start = r.now()
	return r
}

func (r *Recorder) newCounts() Counts {
	c := NewCounts(r.layers, r.experts)
	c.MoELayers = r.moe
	return c
}

// current returns the bucket for now. Must hold r.mu.
func (r *Recorder) current() *Counts {
	slot := r.now().Unix() / BucketSeconds
	b := r.ring[slot%ringBuckets]
	if b == nil || b.slot != slot {
		b = &bucket{slot: slot, c: r.newCounts()}
		r.ring[slot%ringBuckets] = b
	}
	return &b.c
}

// Observe records one layer's routing of n rows (model.RouteObserver).
func (r *Recorder) Observe(layer int, choices []int32, weights []float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current().observe(layer, choices, weights, r.k)
	r.all.observe(layer, choices, weights, r.k)
}

// RecordStep counts a forward pass that generated `generated` tokens.
func (r *Recorder) RecordStep(generated int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range []*Counts{r.current(), &r.all} {
		c.Steps++
		c.Generated += uint64(generated)
	}
}

// RecordCall counts one dispatch to an expert node.
func (r *Recorder) RecordCall(node string, rows, sent, received int, latency time.Duration, failed bool) {
	ms := float64(latency) / float64(time.Millisecond)
	i := sort.SearchFloat64s(LatencyBounds, ms)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range []*Counts{r.current(), &r.all} {
		n := c.node(node)
		n.Calls++
		n.Rows += uint64(rows)
		n.BytesSent += uint64(sent)
		n.BytesReceived += uint64(received)
		n.Latency[i]++
		if failed {
			n.Errors++
		}
	}
}

// RecordRetry counts a dispatch resent after node failed.
func (r *Recorder) RecordRetry(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current().node(node).Retries++
	r.all.node(node).Retries++
}

// Window returns the counts of the last d (rounded up to whole buckets);
// d <= 0 means since the recorder started.
func (r *Recorder) Window(d time.Duration) Counts {
	out := r.newCounts()
	r.mu.Lock()
	defer r.mu.Unlock()
	if d <= 0 {
		out.Merge(r.all)
		return out
	}
	now := r.now().Unix() / BucketSeconds
	first := now - int64(math.Ceil(d.Seconds()/BucketSeconds)) + 1
	for _, b := range r.ring {
		if b != nil && b.slot >= first && b.slot <= now {
			out.Merge(b.c)
		}
	}
	return out
}

// Point is the tokens generated in one bucket.
type Point struct {
	Unix      int64  `json:"t"`
	Generated uint64 `json:"generated"`
}

// Series returns tokens generated per bucket over the last five minutes,
// oldest first, empty buckets included.
func (r *Recorder) Series() []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().Unix() / BucketSeconds
	out := make([]Point, 0, ringBuckets)
	for s := now - ringBuckets + 1; s <= now; s++ {
		p := Point{Unix: s * BucketSeconds}
		if b := r.ring[s%ringBuckets]; b != nil && b.slot == s {
			p.Generated = b.c.Generated
		}
		out = append(out, p)
	}
	return out
}

// Since is when the recorder started.
func (r *Recorder) Since() time.Time { return r.start }

// Imbalance is max over mean of the loads (0 when there is no load).
func Imbalance(loads []uint64) float64 {
	var sum, mx uint64
	for _, v := range loads {
		sum += v
		mx = max(mx, v)
	}
	if sum == 0 {
		return 0
	}
	return float64(mx) / (float64(sum) / float64(len(loads)))
}

// Entropy is the Shannon entropy, in bits, of the distribution of loads
// (log2 of the number of experts when uniform, 0 when one expert takes all).
func Entropy(loads []uint64) float64 {
	var sum uint64
	for _, v := range loads {
		sum += v
	}
	var h float64
	for _, v := range loads {
		if v > 0 {
			p := float64(v) / float64(sum)
			h -= p * math.Log2(p)
		}
	}
	return h + 0 // normalise -0
}

// Percentile estimates the q-quantile (0–1) of a latency histogram in
// milliseconds, interpolating within the bucket.
func Percentile(hist []uint64, q float64) float64 {
	var total uint64
	for _, v := range hist {
		total += v
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, v := range hist {
		if seen+float64(v) >= rank && v > 0 {
			lo := 0.0
			if i > 0 {
				lo = LatencyBounds[i-1]
			}
			if i >= len(LatencyBounds) {
				return lo
			}
			return lo + (LatencyBounds[i]-lo)*(rank-seen)/float64(v)
		}
		seen += float64(v)
	}
	return LatencyBounds[len(LatencyBounds)-1]
}

// TopPairs returns the n most frequent pairs, most frequent first.
func (c Counts) TopPairs(n int) []PairCount {
	out := make([]PairCount, 0, len(c.Pairs))
	for k, v := range c.Pairs {
		p := PairOf(k)
		out = append(out, PairCount{Layer: p.Layer, Experts: [2]int{p.A, p.B}, Tokens: v})
	}
	slices.SortFunc(out, func(a, b PairCount) int {
		switch {
		case a.Tokens != b.Tokens:
			if a.Tokens > b.Tokens {
				return -1
			}
			return 1
		case a.Layer != b.Layer:
			return a.Layer - b.Layer
		case a.Experts[0] != b.Experts[0]:
			return a.Experts[0] - b.Experts[0]
		}
		return a.Experts[1] - b.Experts[1]
	})
	return out[:min(n, len(out))]
}
