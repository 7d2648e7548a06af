package model

import (
	"fmt"
	"math"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// mla is DeepSeek's multi-head latent attention in the absorbed form, as
// llama.cpp computes it: the KV cache holds, per token, one latent vector
// c (kv_lora values, normalised) and one rotated key k_pe (rope values)
// shared by every head. Each head's query is absorbed into the latent
// space (q_abs = k_bᵀ·q_nope) and attends over [c ; k_pe] with
// [q_abs ; q_pe]; its output, a latent vector, is expanded by v_b.
type mla struct {
	Q       tensor.Matrix   `gguf:"attn_q,optional"`   // q_lora_rank 0
	QA      tensor.Matrix   `gguf:"attn_q_a,optional"` // q_lora_rank > 0
	QANorm  []float32       `gguf:"attn_q_a_norm,optional"`
	QB      tensor.Matrix   `gguf:"attn_q_b,optional"`
	KVA     tensor.Matrix   `gguf:"attn_kv_a_mqa"`
	KVANorm []float32       `gguf:"attn_kv_a_norm"`
	KB      []tensor.Matrix `gguf:"attn_k_b,optional"` // per head: kv_lora rows of nope values
	VB      []tensor.Matrix `gguf:"attn_v_b,optional"` // per head: v rows of kv_lora values
	O       tensor.Matrix   `gguf:"attn_output"`
}

// mlaShapes adds MLA's tensors to s.
func mlaShapes(h Hyper, s map[string][]int) {
	E, H, lora, rope := h.Embd, h.Heads, h.KVLoRA, h.RopeDims
	nope, v := h.HeadDim-rope, h.ValueDim
	s["attn_q"] = []int{E, H * h.HeadDim}
	s["attn_q_a"] = []int{E, h.QLoRA}
	s["attn_q_a_norm"] = []int{h.QLoRA}
	s["attn_q_b"] = []int{h.QLoRA, H * h.HeadDim}
	s["attn_kv_a_mqa"] = []int{E, lora + rope}
	s["attn_kv_a_norm"] = []int{lora}
	s["attn_k_b"] = []int{nope, lora, H}
	s["attn_v_b"] = []int{lora, v, H}
	s["attn_kv_b"] = []int{lora, H * (nope + v)}
}

func (a *mla) cacheWidths(h Hyper) (k, v int) { return h.KVLoRA + h.RopeDims, 0 }

func (a *mla) window() int { return 0 }

func (a *mla) check(l *loader, h Hyper, prefix string) error {
	switch {
	case h.QLoRA == 0 && a.Q.Rows == 0:
		return missingTensor(prefix, "attn_q", "q_lora_rank is 0")
	case h.QLoRA > 0 && (a.QA.Rows == 0 || a.QANorm == nil || a.QB.Rows == 0):
		return missingTensor(prefix, "attn_q_a", fmt.Sprintf("q_lora_rank is %d: attn_q_a, attn_q_a_norm and attn_q_b", h.QLoRA))
	}
	if a.KB == nil && a.VB == nil {
		return a.splitKVB(l, h, prefix)
	}
	if a.KB == nil || a.VB == nil {
		return missingTensor(prefix, "attn_v_b", "MLA needs both attn_k_b and attn_v_b")
	}
	return nil
}

// splitKVB reads an older file's attn_kv_b [kv_lora, H·(nope+v)], whose
// head h holds nope key rows then v value rows of kv_lora values each,
// into the split form: k_b per head transposed (kv_lora rows of nope), v_b
// per head as is. The products then run in F32.
func (a *mla) splitKVB(l *loader, h Hyper, prefix string) error {
	name := prefix + "attn_kv_b.weight"
	ti, ok := l.f.Tensor(name)
	if !ok {
		return missingTensor(prefix, "attn_k_b", "MLA needs attn_k_b and attn_v_b, or attn_kv_b")
	}
	H, lora, nope, v := h.Heads, h.KVLoRA, h.HeadDim-h.RopeDims, h.ValueDim
	if want := []int{lora, H * (nope + v)}; !shapeIs(ti.Dims, want) || !ti.Type.Supported() {
		return fmt.Errorf("%w: tensor %q is %s %v, want a supported type of shape %v", ErrTensor, name, ti.Type, ti.Dims, want)
	}
	data, err := l.f.TensorData(name)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	kvb := make([]float32, lora*H*(nope+v))
	tensor.Dequantize(ti.Type, kvb, data, len(kvb))
	a.KB, a.VB = make([]tensor.Matrix, H), make([]tensor.Matrix, H)
	kb, vb := make([]float32, lora*nope), make([]float32, v*lora)
	for hd := range H {
		rows := kvb[hd*(nope+v)*lora : (hd+1)*(nope+v)*lora]
		for j := range nope {
			for c := range lora {
				kb[c*nope+j] = rows[j*lora+c]
			}
		}
		copy(vb, rows[nope*lora:])
		if a.KB[hd], err = f32Matrix(lora, nope, kb); err != nil {
			return err
		}
		if a.VB[hd], err = f32Matrix(v, lora, vb); err != nil {
			return err
		}
	}
	return nil
}

// f32Matrix is a packed F32 matrix holding a copy of x.
func f32Matrix(rows, cols int, x []float32) (tensor.Matrix, error) {
	m, err := tensor.NewMatrix(tensor.F32, rows, cols, append([]byte(nil), tensor.F32Bytes(x)...))
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrTensor, err)
	}
	return m.Pack(), nil
}

// kqScale is llama.cpp's attention scale for MLA: mscale²/√(nope+rope),
// mscale = 1 + yarn_log_multiplier·ln(factor) under YaRN.
func mlaScale(h Hyper) float32 {
	mscale := float32(1)
	if h.Rope.Type == "yarn" {
		mscale += h.Rope.LogMul * float32(math.Log(float64(h.Rope.Factor)))
	}
	return mscale * mscale / float32(math.Sqrt(float64(h.HeadDim)))
}

func (a *mla) attend(m *Model, ws *workspace, l int, xn, out []float32, rows []rowRef, chunks []Chunk) {
	h, p := m.Hyper, m.Pool
	n, H := len(rows), h.Heads
	lora, rope, dk, v := h.KVLoRA, h.RopeDims, h.HeadDim, h.ValueDim
	nope, kw, qd := dk-rope, lora+rope, H*dk

	q, kv := ws.f.take(n*qd), ws.f.take(n*kw)
	if h.QLoRA == 0 {
		tensor.MatMulAll(p, []tensor.Product{{M: a.Q, Dst: q, X: xn, N: n}, {M: a.KVA, Dst: kv, X: xn, N: n}})
	} else {
		qa := ws.f.take(n * h.QLoRA)
		tensor.MatMulAll(p, []tensor.Product{{M: a.QA, Dst: qa, X: xn, N: n}, {M: a.KVA, Dst: kv, X: xn, N: n}})
		for i := range n {
			r := qa[i*h.QLoRA : (i+1)*h.QLoRA]
			rmsNorm(r, r, a.QANorm, h.RMSEps)
		}
		a.QB.MatMul(p, q, qa, n)
	}
	rp := &m.Shared.rope
	cs := ws.f.take(rope)
	for i, r := range rows {
		c := kv[i*kw : (i+1)*kw]
		rmsNorm(c[:lora], c[:lora], a.KVANorm, h.RMSEps)
		rp.table(cs, r.pos)
		rp.rotate(c[lora:], rope, cs)
		rp.rotate(q[i*qd+nope:(i+1)*qd], dk, cs)
	}
	appendCache(l, rows, chunks, kv, nil)

	// Absorb each head's q_nope into the latent space: qm, rows × heads ×
	// [q_abs ; q_pe].
	qm := ws.f.take(n * H * kw)
	ps := ws.prods.take(H)
	for hd := range H {
		qn := ws.f.take(n * nope)
		for i := range n {
			copy(qn[i*nope:(i+1)*nope], q[i*qd+hd*dk:])
		}
		ps[hd] = tensor.Product{M: a.KB[hd], Dst: ws.f.take(n * lora), X: qn, N: n}
	}
	tensor.MatMulAll(p, ps)
	for hd := range H {
		for i := range n {
			row := qm[(i*H+hd)*kw : (i*H+hd+1)*kw]
			copy(row[:lora], ps[hd].Dst[i*lora:(i+1)*lora])
			copy(row[lora:], q[i*qd+hd*dk+nope:i*qd+(hd+1)*dk])
		}
	}

	// Attend in the latent space, one KV head for all.
	lat := ws.f.take(n * H * lora)
	ws.attn = attnLoop{m: m, dst: lat, q: qm, rows: rows, chunks: chunks, l: l,
		group: H, dq: kw, dv: lora, scale: mlaScale(h)}
	p.Run(n*H, 4, &ws.attn)

	// Expand each head's latent output by v_b into att, rows × heads × v.
	for hd := range H {
		x := ws.f.take(n * lora)
		for i := range n {
			copy(x[i*lora:(i+1)*lora], lat[(i*H+hd)*lora:])
		}
		ps[hd] = tensor.Product{M: a.VB[hd], Dst: ws.f.take(n * v), X: x, N: n}
	}
	tensor.MatMulAll(p, ps)
	att := ws.f.take(n * H * v)
	for hd := range H {
		for i := range n {
			copy(att[(i*H+hd)*v:(i*H+hd+1)*v], ps[hd].Dst[i*v:(i+1)*v])
		}
	}
	a.O.MatMul(p, out, att, n)
}
