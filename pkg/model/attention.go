package model

import (
	"math"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// attention is a layer's self-attention: grouped-query (gqa) or
// multi-head latent (mla).
type attention interface {
	// cacheWidths is what the KV cache holds per token: key and value
	// values (a value width of 0: values are read from the keys).
	cacheWidths(h Hyper) (k, v int)
	// window is how many positions a token attends to, itself included:
	// 0 for all of them.
	window() int
	// attend reads the normalised rows xn (rows × n_embd), appends their
	// keys and values to their sequences' caches, attends causally, and
	// writes the output, projected back to n_embd, into out.
	attend(m *Model, ws *workspace, l int, xn, out []float32, rows []rowRef, chunks []Chunk)
}

// QKNorm says where an attention applies RMSNorm to queries and keys.
type QKNorm int

// Where q/k norms sit.
const (
	QKNormNone    QKNorm = iota
	QKNormPerHead        // over each head (size head_dim), Qwen3-MoE
	QKNormFull           // over the whole projection, before the head split, OLMoE
)

// gqa is grouped-query attention (multi-head when KV heads = heads), with
// optional q/k/v/output biases, q/k norms, a sliding window and per-head
// attention sinks.
type gqa struct {
	Q     tensor.Matrix `gguf:"attn_q"`
	K     tensor.Matrix `gguf:"attn_k"`
	V     tensor.Matrix `gguf:"attn_v"`
	O     tensor.Matrix `gguf:"attn_output"`
	QBias []float32     `gguf:"attn_q.bias,optional"`
	KBias []float32     `gguf:"attn_k.bias,optional"`
	VBias []float32     `gguf:"attn_v.bias,optional"`
	QNorm []float32     `gguf:"attn_q_norm,optional"`
	KNorm []float32     `gguf:"attn_k_norm,optional"`
	OBias []float32     `gguf:"attn_output.bias,optional"`
	// Sinks are per-head logits that join every softmax's denominator
	// (gpt-oss), letting a head attend to nothing.
	Sinks []float32 `gguf:"attn_sinks,optional"`

	qkNorm QKNorm
	win    int // sliding window, 0: none
}

func (a *gqa) window() int { return a.win }

func (a *gqa) cacheWidths(h Hyper) (k, v int) { return h.KVHeads * h.HeadDim, h.KVHeads * h.ValueDim }

func (a *gqa) check(_ *loader, _ Hyper, prefix string) error {
	if a.qkNorm != QKNormNone && (a.QNorm == nil || a.KNorm == nil) {
		return missingTensor(prefix, "attn_q_norm", "this architecture normalises queries and keys")
	}
	return nil
}

func (a *gqa) attend(m *Model, ws *workspace, l int, xn, out []float32, rows []rowRef, chunks []Chunk) {
	h, p := m.Hyper, m.Pool
	n := len(rows)
	qd, kd, vd := h.Heads*h.HeadDim, h.KVHeads*h.HeadDim, h.KVHeads*h.ValueDim
	q, k, v := ws.f.take(n*qd), ws.f.take(n*kd), ws.f.take(n*vd)
	tensor.MatMulAll(p, []tensor.Product{{M: a.Q, Dst: q, X: xn, N: n}, {M: a.K, Dst: k, X: xn, N: n}, {M: a.V, Dst: v, X: xn, N: n}})
	addBias(q, a.QBias)
	addBias(k, a.KBias)
	addBias(v, a.VBias)
	rp := &m.Shared.rope
	cs := ws.f.take(rp.dims)
	for i, r := range rows {
		qi, ki := q[i*qd:(i+1)*qd], k[i*kd:(i+1)*kd]
		switch a.qkNorm {
		case QKNormFull:
			rmsNorm(qi, qi, a.QNorm, h.RMSEps)
			rmsNorm(ki, ki, a.KNorm, h.RMSEps)
		case QKNormPerHead:
			for hd := 0; hd < qd; hd += h.HeadDim {
				rmsNorm(qi[hd:hd+h.HeadDim], qi[hd:hd+h.HeadDim], a.QNorm, h.RMSEps)
			}
			for hd := 0; hd < kd; hd += h.HeadDim {
				rmsNorm(ki[hd:hd+h.HeadDim], ki[hd:hd+h.HeadDim], a.KNorm, h.RMSEps)
			}
		}
		rp.table(cs, r.pos)
		rp.rotate(qi, h.HeadDim, cs)
		rp.rotate(ki, h.HeadDim, cs)
	}
	appendCache(l, rows, chunks, k, v)
	att := ws.f.take(n * h.Heads * h.ValueDim)
	ws.attn = attnLoop{m: m, dst: att, q: q, rows: rows, chunks: chunks, l: l,
		group: h.Heads / h.KVHeads, dq: h.HeadDim, dv: h.ValueDim,
		scale: float32(1 / math.Sqrt(float64(h.HeadDim))), window: a.win, sinks: a.Sinks}
	p.Run(n*h.Heads, 4, &ws.attn)
	a.O.MatMul(p, out, att, n)
	addBias(out, a.OBias)
}

// appendCache writes the rows' keys k and values v (v may be empty) into
// their sequences' caches of layer l, at the rows' positions.
func appendCache(l int, rows []rowRef, chunks []Chunk, k, v []float32) {
	n := len(rows)
	kd, vd := len(k)/n, len(v)/n
	for i, r := range rows {
		chunks[r.chunk].Seq.put(l, r.pos, k[i*kd:(i+1)*kd], v[i*vd:(i+1)*vd])
	}
}

// attnLoop is one layer's causal attention over a batch: a loop over
// (row, head) pairs. Queries are rows × heads × dq; the cache holds one
// key of dq values per token and KV head (heads/group of them), and one
// value of dv values, or, with an empty value cache, the first dv values
// of the key. Outputs are rows × heads × dv.
type attnLoop struct {
	m      *Model
	dst, q []float32
	rows   []rowRef
	chunks []Chunk
	l      int
	group  int // query heads per KV head
	dq, dv int
	scale  float32
	window int       // attend to this many positions, 0: all
	sinks  []float32 // per head, or nil
}

func (a *attnLoop) Range(lo, hi int) {
	heads, l := a.m.Heads, a.l
	buf, tmp := scores.Get(), scores.Get()
	defer scores.Put(buf)
	defer scores.Put(tmp)
	if len(*buf) < a.m.Context {
		*buf = make([]float32, a.m.Context)
	}
	if n := BlockTokens * max(a.dq, a.dv); len(*tmp) < n {
		*tmp = make([]float32, n)
	}
	for t := lo; t < hi; t++ {
		i, hd := t/heads, t%heads
		r := a.rows[i]
		s := a.chunks[r.chunk].Seq
		kv := hd / a.group
		from := 0 // the first position attended to
		if a.window > 0 {
			from = max(0, r.pos-a.window+1)
		}
		qi := a.q[(i*heads+hd)*a.dq : (i*heads+hd+1)*a.dq]
		sc := (*buf)[:r.pos+1-from]
		pool := s.pool
		// Scores block by block: positions [p0, p1) of block b.
		for p0 := from; p0 <= r.pos; {
			b := s.t[l][(p0-s.off[l])/BlockTokens]
			p1 := min(r.pos+1, (p0/BlockTokens+1)*BlockTokens)
			if pool.typ == tensor.F32 {
				tensor.DotRows(sc[p0-from:p1-from], qi, b.k[(p0%BlockTokens)*s.kd+kv*a.dq:], s.kd)
			} else {
				keys := pool.rows(*tmp, b.kb, pool.kRow, p0%BlockTokens, p1-p0, kv*a.dq, a.dq)
				tensor.DotRows(sc[p0-from:p1-from], qi, keys, a.dq)
			}
			p0 = p1
		}
		for j := range sc {
			sc[j] *= a.scale
		}
		if a.sinks != nil {
			softmaxSink(sc, a.sinks[hd])
		} else {
			softmax(sc)
		}
		out := a.dst[(i*heads+hd)*a.dv : (i*heads+hd+1)*a.dv]
		clear(out)
		for p0 := from; p0 <= r.pos; {
			b := s.t[l][(p0-s.off[l])/BlockTokens]
			p1 := min(r.pos+1, (p0/BlockTokens+1)*BlockTokens)
			at := p0 % BlockTokens
			switch {
			case pool.typ != tensor.F32 && s.vd == 0:
				tensor.AxpyRows(out, pool.rows(*tmp, b.kb, pool.kRow, at, p1-p0, kv*a.dq, a.dv), a.dv, sc[p0-from:p1-from])
			case pool.typ != tensor.F32:
				tensor.AxpyRows(out, pool.rows(*tmp, b.vb, pool.vRow, at, p1-p0, kv*a.dv, a.dv), a.dv, sc[p0-from:p1-from])
			case s.vd == 0:
				tensor.AxpyRows(out, b.k[at*s.kd+kv*a.dq:], s.kd, sc[p0-from:p1-from])
			default:
				tensor.AxpyRows(out, b.v[at*s.vd+kv*a.dv:], s.vd, sc[p0-from:p1-from])
			}
			p0 = p1
		}
	}
}
