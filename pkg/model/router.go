package model

import (
	"math"
	"slices"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// router is an MoE layer's gate: it picks each row's experts.
type router interface {
	// route runs the gate on n normalised rows and returns, per row, the
	// k chosen experts (best first) and their weights, from ws.
	route(m *Model, ws *workspace, xn []float32, n int) (choices []int32, weights []float32)
}

// scoreRouter scores every expert (softmax or sigmoid of the gate's
// logits) and takes the top k, as llama.cpp's build_moe_ffn does:
//   - softmax, then top-k: Mixtral, Qwen-MoE, OLMoE, DeepSeek-V2;
//   - sigmoid, plus a bias used for the selection only, within the best
//     groups (a group's score is the sum of its two best biased scores):
//     DeepSeek-V3, Kimi-K2.
//
// The weights are the chosen experts' unbiased scores, renormalised to
// sum to 1 when norm is set, then multiplied by scale (when not 0).
type scoreRouter struct {
	W    tensor.Matrix `gguf:"ffn_gate_inp"`
	Bias []float32     `gguf:"exp_probs_b.bias,optional"`

	gating             Gating
	groups, groupsUsed int
	norm               bool
	scale              float32
}

// newScoreRouter is the router h describes.
func newScoreRouter(h Hyper) *scoreRouter {
	return &scoreRouter{gating: h.Gating, groups: h.Groups, groupsUsed: h.GroupsUsed, norm: h.WeightsNorm, scale: h.WeightsScale}
}

func (r *scoreRouter) route(m *Model, ws *workspace, xn []float32, n int) (choices []int32, weights []float32) {
	ne, k := m.Hyper.Experts, m.ExpertsUsed
	logits := ws.f.take(n * ne)
	r.W.MatMul(m.Pool, logits, xn, n)
	choices, weights = ws.i.take(n*k), ws.f.take(n*k)
	idx := ws.i.take(ne)
	sel := logits[:0] // selection scores, when they differ from the weights
	grouped := r.groups > 1 && r.groupsUsed < r.groups
	if r.Bias != nil || grouped {
		sel = ws.f.take(ne)
	}
	var gidx []int32
	var gscore []float32
	if grouped {
		gidx, gscore = ws.i.take(r.groups), ws.f.take(r.groups)
	}
	for i := range n {
		p := logits[i*ne : (i+1)*ne]
		if r.gating == GatingSigmoid {
			for e, x := range p {
				p[e] = float32(1 / (1 + math.Exp(-float64(x))))
			}
		} else {
			softmax(p)
		}
		s := p
		if len(sel) > 0 {
			s = sel
			copy(s, p)
			for e := range r.Bias {
				s[e] += r.Bias[e]
			}
		}
		if grouped {
			r.maskGroups(s, gidx, gscore)
		}
		for e := range idx {
			idx[e] = int32(e)
		}
		sortDesc(idx, s)
		var sum float32
		for j := range k {
			choices[i*k+j], weights[i*k+j] = idx[j], p[idx[j]]
			sum += p[idx[j]]
		}
		if r.norm {
			for j := range k {
				weights[i*k+j] /= sum
			}
		}
		if r.scale != 0 {
			for j := range k {
				weights[i*k+j] *= r.scale
			}
		}
	}
	return choices, weights
}

// maskGroups keeps the groupsUsed groups of s with the best scores (the
// sum of each group's two best values) and sets the rest to -∞.
func (r *scoreRouter) maskGroups(s []float32, gidx []int32, gscore []float32) {
	per := len(s) / r.groups
	for g := range r.groups {
		a, b := float32(math.Inf(-1)), float32(math.Inf(-1))
		for _, v := range s[g*per : (g+1)*per] {
			switch {
			case v > a:
				a, b = v, a
			case v > b:
				b = v
			}
		}
		if per == 1 {
			b = 0
		}
		gscore[g], gidx[g] = a+b, int32(g)
	}
	sortDesc(gidx, gscore)
	for _, g := range gidx[r.groupsUsed:] {
		for e := int(g) * per; e < int(g+1)*per; e++ {
			s[e] = float32(math.Inf(-1))
		}
	}
}

// sortDesc orders idx by score, highest first, ties in index order.
func sortDesc(idx []int32, score []float32) {
	slices.SortStableFunc(idx, func(a, b int32) int {
		switch {
		case score[a] > score[b]:
			return -1
		case score[a] < score[b]:
			return 1
		}
		return 0
	})
}

// topKSoftmax takes the top k of the raw gate logits (plus the gate's
// bias) and weighs them by a softmax over those k alone: gpt-oss.
type topKSoftmax struct {
	W    tensor.Matrix `gguf:"ffn_gate_inp"`
	Bias []float32     `gguf:"ffn_gate_inp.bias,optional"`
}

func (r *topKSoftmax) route(m *Model, ws *workspace, xn []float32, n int) (choices []int32, weights []float32) {
	ne, k := m.Hyper.Experts, m.ExpertsUsed
	logits := ws.f.take(n * ne)
	r.W.MatMul(m.Pool, logits, xn, n)
	addBias(logits, r.Bias)
	choices, weights = ws.i.take(n*k), ws.f.take(n*k)
	idx := ws.i.take(ne)
	for i := range n {
		z := logits[i*ne : (i+1)*ne]
		for e := range idx {
			idx[e] = int32(e)
		}
		sortDesc(idx, z)
		w := weights[i*k : (i+1)*k]
		for j := range k {
			choices[i*k+j], w[j] = idx[j], z[idx[j]]
		}
		softmax(w)
	}
	return choices, weights
}
