package model

import (
	"context"
	"fmt"
	"math"
)

// feedForward is a layer's feed-forward part over the normalised rows
// st.xn: a dense FFN, or routed experts. start begins it; finish, called
// after start on the same step, adds its output to the residual st.x.
// Between the two, a routed layer's experts may be out on other machines.
type feedForward interface {
	start(ctx context.Context, m *Model, ws *workspace, st *layerStep, rows []rowRef, chunks []Chunk)
	finish(m *Model, ws *workspace, st *layerStep) error
}

// dense is a SwiGLU FFN every token goes through.
type dense struct {
	FFN `gguf:""`
}

func (d *dense) start(_ context.Context, m *Model, ws *workspace, st *layerStep, _ []rowRef, _ []Chunk) {
	defer ws.f.back(ws.f.inTemp())
	ffn := ws.f.take(len(st.x))
	applyAll(m.Pool, ws, []ffnJob{{&d.FFN, ffn, st.xn, len(st.x) / m.Embd}})
	for i := range st.x {
		st.x[i] += ffn[i]
	}
}

func (d *dense) finish(*Model, *workspace, *layerStep) error { return nil }

// moe is a layer of routed experts, reached through Model.Experts, with
// optional shared experts run here: ungated (deepseek2) or gated by
// sigmoid(ffn_gate_inp_shexp·h) (qwen2moe).
type moe struct {
	Router     router    `gguf:""`
	Shexp      FFN       `gguf:"_shexp,optional"`
	ShexpGate  []float32 `gguf:"ffn_gate_inp_shexp,optional"`
	gated      bool      // the shared expert has a gate
	sharedNeed bool      // the hyperparameters say there is a shared expert
}

func (f *moe) check(_ *loader, _ Hyper, prefix string) error {
	switch {
	case f.sharedNeed && !f.Shexp.Present():
		return missingTensor(prefix, "ffn_gate_shexp", "the model has shared experts")
	case f.sharedNeed && f.gated && f.ShexpGate == nil:
		return missingTensor(prefix, "ffn_gate_inp_shexp", "the shared expert is gated")
	}
	return nil
}

func (f *moe) start(ctx context.Context, m *Model, ws *workspace, st *layerStep, rows []rowRef, chunks []Chunk) {
	h, l := m.Hyper, st.l
	n, K := len(rows), h.ExpertsUsed
	var choices []int32
	choices, st.weights = f.Router.route(m, ws, st.xn, n)
	if m.Observer != nil {
		m.Observer.Observe(l, choices, st.weights)
	}
	for i, r := range rows {
		if ch := &chunks[r.chunk]; ch.Routing != nil {
			j := r.pos - ch.Seq.n
			copy(ch.Routing[(j*h.Layers+l)*K:(j*h.Layers+l+1)*K], choices[i*K:(i+1)*K])
		}
	}
	st.out = ws.f.take(n * K * h.Embd)
	if a, ok := m.Experts.(AsyncExperts); ok {
		st.pending = a.Start(ctx, l, st.xn, n, choices, st.out)
	} else {
		st.err = m.Experts.Forward(ctx, l, st.xn, n, choices, st.out)
	}
}

// finish waits for the experts and adds their outputs, weighted and in
// top-k order, then the shared experts, to the residual stream.
func (f *moe) finish(m *Model, ws *workspace, st *layerStep) error {
	if err := st.wait(); err != nil {
		return fmt.Errorf("model: layer %d experts: %w", st.l, err)
	}
	E, k := m.Embd, m.ExpertsUsed
	n := len(st.x) / E
	defer ws.f.back(ws.f.inTemp())
	dst := ws.f.zeros(n * E)
	for i := range n {
		d := dst[i*E : (i+1)*E]
		for j := range k {
			w, y := st.weights[i*k+j], st.out[(i*k+j)*E:(i*k+j+1)*E]
			for c := range d {
				d[c] += w * y[c]
			}
		}
	}
	if f.Shexp.Present() {
		xn := st.xn
		sh := ws.f.take(n * E)
		applyAll(m.Pool, ws, []ffnJob{{&f.Shexp, sh, xn, n}})
		for i := range n {
			if !f.gated {
				for c := range E {
					dst[i*E+c] += sh[i*E+c]
				}
				continue
			}
			xi := xn[i*E : (i+1)*E]
			var g float32
			for c := range xi {
				g += f.ShexpGate[c] * xi[c]
			}
			g = 1 / (1 + float32(math.Exp(float64(-g))))
			for c := range E {
				dst[i*E+c] += sh[i*E+c] * g
			}
		}
	}
	for i := range st.x {
		st.x[i] += dst[i]
	}
	return nil
}
