package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

// router draws the experts a token is routed to, layer by layer: each
// layer's experts have fixed weights (a Zipf law over a random permutation,
// or the shares of a recorded report), and a token picks TopK distinct
// experts as DeepSeek-V3's gate does — the best GroupsUsed of Groups
// groups first (a group scores the sum of its two best experts), then the
// best TopK experts within them — with Gumbel noise on the log weights in
// place of the token's affinities, so that an expert is picked in
// proportion to its weight (sampling without replacement).
type router struct {
	experts, topK, groups, groupsUsed int
	logw                              [][]float64 // layer → expert → log weight
	r                                 *rand.Rand

	keys  []float64 // scratch
	gsc   []float64
	gidx  []int
	order []int
}

// zipfWeights gives each layer's experts the weights 1/rank^s over a
// random permutation of ranks.
func zipfWeights(r *rand.Rand, layers, experts int, s float64) [][]float64 {
	out := make([][]float64, layers)
	for l := range out {
		perm := r.Perm(experts)
		out[l] = make([]float64, experts)
		for e := range experts {
			out[l][e] = math.Pow(float64(perm[e]+1), -s)
		}
	}
	return out
}

// replayWeights reads a recorded /v1/routing/stats report (routingstats.Report)
// and gives each of its MoE layers' experts the tokens they were routed
// (plus a half, so that an expert never seen can still be picked), in the
// report's layer order; it needs layers MoE layers of experts experts.
func replayWeights(rd io.Reader, layers, experts int) ([][]float64, error) {
	var rep routingstats.Report
	if err := json.NewDecoder(io.LimitReader(rd, 256<<20)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("sim: read routing stats: %w", err)
	}
	var out [][]float64
	for _, lr := range rep.Layers {
		if lr.Dense {
			continue
		}
		w := make([]float64, experts)
		for i := range w {
			w[i] = 0.5
		}
		for _, e := range lr.Experts {
			if e.Expert < 0 || e.Expert >= experts {
				return nil, fmt.Errorf("sim: routing stats: layer %d names expert %d of %d", lr.Layer, e.Expert, experts)
			}
			w[e.Expert] += float64(e.Tokens)
		}
		out = append(out, w)
	}
	if len(out) != layers {
		return nil, fmt.Errorf("sim: routing stats have %d MoE layers, the shape has %d", len(out), layers)
	}
	return out, nil
}

func newRouter(r *rand.Rand, weights [][]float64, topK, groups, groupsUsed int) (*router, error) {
	experts := len(weights[0])
	if groups < 1 || experts%groups != 0 || groupsUsed < 1 || groupsUsed > groups || topK > experts/groups*groupsUsed {
		return nil, fmt.Errorf("sim: %d experts in %d groups, %d used, cannot give top-%d", experts, groups, groupsUsed, topK)
	}
	rt := &router{experts: experts, topK: topK, groups: groups, groupsUsed: groupsUsed, r: r,
		keys: make([]float64, experts), gsc: make([]float64, groups), gidx: make([]int, groups), order: make([]int, 0, experts)}
	for _, w := range weights {
		lw := make([]float64, len(w))
		for e, x := range w {
			lw[e] = math.Log(x)
		}
		rt.logw = append(rt.logw, lw)
	}
	return rt, nil
}

// route appends to dst the experts one token picks in layer l.
func (rt *router) route(dst []int, l int) []int {
	per := rt.experts / rt.groups
	for e, lw := range rt.logw[l] {
		rt.keys[e] = lw - math.Log(-math.Log(1-rt.r.Float64())) // + Gumbel(0, 1)
	}
	for g := range rt.groups {
		best, second := math.Inf(-1), math.Inf(-1)
		for _, k := range rt.keys[g*per : (g+1)*per] {
			if k > best {
				best, second = k, best
			} else if k > second {
				second = k
			}
		}
		rt.gsc[g], rt.gidx[g] = best+second, g
	}
	slices.SortFunc(rt.gidx, func(a, b int) int { return cmpDesc(rt.gsc[a], rt.gsc[b]) })
	rt.order = rt.order[:0]
	for _, g := range rt.gidx[:rt.groupsUsed] {
		for e := g * per; e < (g+1)*per; e++ {
			rt.order = append(rt.order, e)
		}
	}
	slices.SortFunc(rt.order, func(a, b int) int { return cmpDesc(rt.keys[a], rt.keys[b]) })
	return append(dst, rt.order[:rt.topK]...)
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// counts routes tokens tokens through every layer and returns how many
// picked each expert, by layer: what the coordinator's routing statistics
// would hold after serving them.
func (rt *router) counts(tokens int) [][]float64 {
	out := make([][]float64, len(rt.logw))
	var picks []int
	for l := range out {
		out[l] = make([]float64, rt.experts)
		for range tokens {
			picks = rt.route(picks[:0], l)
			for _, e := range picks {
				out[l][e]++
			}
		}
	}
	return out
}
