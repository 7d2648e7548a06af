package model

import (
	"context"
	"fmt"
	"math"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Model runs the forward pass: the shared part here, routed experts
// through Experts.
type Model struct {
	Hyper
	Arch    *Arch
	Shared  *Shared
	Experts Experts
	Pool    *tensor.Pool // nil: tensor.Default()
	// Observer, when set, sees every routing decision.
	Observer RouteObserver
	// KV is the pool of the sequences' KV caches; nil: a pool without
	// budget or prefix caching, made on first use.
	KV *KVCache

	ws workspaces
}

// RouteObserver sees the gate's decisions. Observe is called once per MoE
// layer per forward pass (per micro-batch, when a step is cut in two), on
// the goroutine running Forward, with the top-k
// choices (highest probability first) and weights of each of the n rows,
// row-major n × k. It must not keep the slices.
type RouteObserver interface {
	Observe(layer int, choices []int32, weights []float32)
}

// LoadLocal loads a whole model into this process.
func LoadLocal(f *File, p *tensor.Pool) (*Model, error) {
	s, err := f.LoadShared()
	if err != nil {
		return nil, err
	}
	m := &Model{Hyper: f.Hyper, Arch: f.Arch, Shared: s, Pool: p}
	if f.MoE() {
		if m.Experts, err = LoadAll(f, p); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Chunk is a run of tokens appended to one sequence in a forward pass.
type Chunk struct {
	Seq    *Sequence
	Tokens []int32
	// AllLogits asks for logits at every position of the chunk; otherwise
	// only at its last position.
	AllLogits bool
	// WantRouting asks Forward to fill Routing with the experts chosen at
	// every position: positions × layers × k, row-major; -1 in the
	// slots of dense layers.
	WantRouting bool
	Routing     []int32
	// Logits receives the chunk's logits; Forward reuses its capacity, so
	// a caller that keeps its chunks between steps allocates nothing.
	Logits []float32
}

// Forward runs the chunks (of any number of sequences) through the model
// as one batch, appends them to their caches and returns, per chunk, the
// requested logits (positions × vocabulary, row-major), which are also
// left in each chunk's Logits.
func (m *Model) Forward(ctx context.Context, chunks []Chunk) ([][]float32, error) {
	if err := m.Step(ctx, chunks); err != nil {
		return nil, err
	}
	out := make([][]float32, len(chunks))
	for c := range chunks {
		out[c] = chunks[c].Logits
	}
	return out, nil
}

// Step is Forward leaving the logits only in the chunks: with chunks that
// keep their Logits buffers from step to step (as the coordinator's
// scheduler does), it allocates nothing in steady state.
func (m *Model) Step(ctx context.Context, chunks []Chunk) error {
	h := m.Hyper
	E := h.Embd
	n := 0
	for i, ch := range chunks {
		if ch.Seq.inBatch {
			for _, c := range chunks[:i] {
				c.Seq.inBatch = false
			}
			return fmt.Errorf("model: sequence appears twice in one batch")
		}
		ch.Seq.inBatch = true
		n += len(ch.Tokens)
	}
	defer func() {
		for _, ch := range chunks {
			ch.Seq.inBatch = false
		}
	}()
	ws := m.ws.get()
	defer m.ws.put(ws)
	rows := ws.rows.take(n)[:0]
	for c, ch := range chunks {
		if len(ch.Tokens) == 0 {
			return fmt.Errorf("%w: empty prompt", ErrToken)
		}
		if ch.Seq.n+len(ch.Tokens) > h.Context {
			return fmt.Errorf("%w: %d positions cached plus %d new exceed the context of %d", ErrContext, ch.Seq.n, len(ch.Tokens), h.Context)
		}
		for i, t := range ch.Tokens {
			if t < 0 || int(t) >= h.Vocab {
				return fmt.Errorf("%w: token %d at position %d is outside the vocabulary of %d", ErrToken, t, ch.Seq.n+i, h.Vocab)
			}
			rows = append(rows, rowRef{chunk: c, pos: ch.Seq.n + i})
		}
	}
	for _, ch := range chunks {
		if err := ch.Seq.prepare(len(ch.Tokens)); err != nil {
			return err
		}
	}
	x := ws.f.take(n * E)
	for i, r := range rows {
		m.Shared.Embd.DequantizeRow(x[i*E:(i+1)*E], int(chunks[r.chunk].Tokens[r.pos-chunks[r.chunk].Seq.n]))
	}
	for c := range chunks {
		if chunks[c].WantRouting && m.MoE() { // dense layers' slots stay -1
			chunks[c].Routing = make([]int32, len(chunks[c].Tokens)*h.Layers*h.ExpertsUsed)
			if h.DenseLeading > 0 {
				for i := range chunks[c].Routing {
					chunks[c].Routing[i] = -1
				}
			}
		}
	}
	if err := m.layers(ctx, ws, x, rows, chunks); err != nil {
		return err // what the layers wrote past each Len is overwritten next time
	}
	for _, ch := range chunks {
		ch.Seq.advance(ch.Tokens)
	}

	// Logits only for the rows asked for.
	want := ws.i.take(n)[:0]
	for i, r := range rows {
		ch := chunks[r.chunk]
		if ch.AllLogits || r.pos == ch.Seq.n-1 {
			want = append(want, int32(i))
		}
	}
	xs := ws.f.take(len(want) * E)
	for j, i := range want {
		rmsNorm(xs[j*E:(j+1)*E], x[int(i)*E:(int(i)+1)*E], m.Shared.OutputNorm, h.RMSEps)
	}
	logits := ws.f.take(len(want) * h.Vocab)
	m.Shared.Output.MatMul(m.Pool, logits, xs, len(want))
	for c := range chunks {
		chunks[c].Logits = chunks[c].Logits[:0]
	}
	for j, i := range want {
		ch := &chunks[rows[i].chunk]
		ch.Logits = append(ch.Logits, logits[j*h.Vocab:(j+1)*h.Vocab]...)
	}
	return nil
}

type rowRef struct{ chunk, pos int }

// microBatchRows is the smallest step that layers cuts in two when the
// experts are remote and do not choose (MicroBatcher). Decode steps of
// fewer streams stay whole: on two cores, halving every expert's batch
// costs more than the overlap gains (16 streams: 262 tok/s whole, 244
// cut); steps with prompt chunks gain (TTFT at 8 streams 1.72 → 1.63 s).
const microBatchRows = 32

// MicroBatcher is implemented by AsyncExperts that choose how many
// micro-batches a step is cut into: enough to keep the coordinator busy
// while the others' experts are out, which depends on the round trip to
// the nodes. MicroBatches is called once per step, on the forward pass's
// goroutine, with the step's rows; results below 1 mean 1, above rows
// mean rows.
type MicroBatcher interface {
	MicroBatches(rows int) int
}

// layers runs every layer over the rows. With remote experts it cuts the
// rows into micro-batches (two for a step of at least microBatchRows rows,
// or as many as a MicroBatcher asks) and runs them in turn: while some
// micro-batches' experts are out, the next one runs its attention. Rows of
// one sequence may fall in several micro-batches: they run each layer's
// attention in order, so an earlier one's keys are cached before a later
// one attends.
func (m *Model) layers(ctx context.Context, ws *workspace, x []float32, rows []rowRef, chunks []Chunk) error {
	E, n := m.Embd, len(rows)
	k := 1
	if a, ok := m.Experts.(AsyncExperts); ok {
		if n >= microBatchRows {
			k = 2
		}
		if mb, ok := a.(MicroBatcher); ok {
			k = mb.MicroBatches(n)
		}
		k = max(1, min(k, n))
	}
	var partsBuf [8][2]int // no allocation for up to 8 micro-batches
	var stBuf [8]layerStep
	parts, st := partsBuf[:0], stBuf[:0]
	for j := range k {
		parts = append(parts, [2]int{j * n / k, (j + 1) * n / k})
		st = append(st, layerStep{})
	}
	defer ws.f.inPass()
	ws.f.inLayer(0)
	for j, p := range parts {
		st[j] = m.begin(ctx, ws, 0, x[p[0]*E:p[1]*E], rows[p[0]:p[1]], chunks)
	}
	for l := range m.Shared.Layers {
		for j, p := range parts {
			ws.f.inLayer(l)
			if err := m.end(ws, &st[j]); err != nil {
				for k := range parts {
					st[k].wait() // nothing may still write into ws
				}
				return err
			}
			if l+1 < len(m.Shared.Layers) {
				ws.f.inLayer(l + 1)
				st[j] = m.begin(ctx, ws, l+1, x[p[0]*E:p[1]*E], rows[p[0]:p[1]], chunks)
			}
		}
	}
	return nil
}

// layerStep is one layer for a group of rows between begin, which runs
// attention and sends the rows to their experts, and end, which combines
// the experts' outputs.
type layerStep struct {
	l       int
	x, xn   []float32 // the rows' residual stream; the FFN's input
	weights []float32 // routing weights, rows × k
	out     []float32 // the routed experts' outputs, rows × k rows
	pending Pending   // the experts call in flight, if any
	err     error     // of a call already finished
}

func (st *layerStep) wait() error {
	if st.pending != nil {
		st.err, st.pending = st.pending.Wait(), nil
	}
	return st.err
}

// begin runs layer l's attention over the rows and starts its
// feed-forward part.
func (m *Model) begin(ctx context.Context, ws *workspace, l int, x []float32, rows []rowRef, chunks []Chunk) layerStep {
	h, ly := m.Hyper, &m.Shared.Layers[l]
	E, n := h.Embd, len(rows)
	xn := ws.f.take(n * E)
	for i := range n {
		rmsNorm(xn[i*E:(i+1)*E], x[i*E:(i+1)*E], ly.AttnNorm, h.RMSEps)
	}
	layer := ws.f.inTemp()
	o := ws.f.take(n * E)
	ly.Attn.attend(m, ws, l, xn, o, rows, chunks)
	for i := range x {
		x[i] += o[i]
	}
	ws.f.back(layer)
	for i := range n {
		rmsNorm(xn[i*E:(i+1)*E], x[i*E:(i+1)*E], ly.FFNNorm, h.RMSEps)
	}
	st := layerStep{l: l, x: x, xn: xn}
	ly.FFN.start(ctx, m, ws, &st, rows, chunks)
	return st
}

// end completes the step's feed-forward part.
func (m *Model) end(ws *workspace, st *layerStep) error {
	return m.Shared.Layers[st.l].FFN.finish(m, ws, st)
}

// rmsNorm writes x / rms(x) ⊙ w into dst (which may be x); the sum of
// squares is kept in float64 as ggml does.
func rmsNorm(dst, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	scale := float32(1 / math.Sqrt(float64(float32(sum/float64(len(x)))+eps)))
	for i, v := range x {
		dst[i] = v * scale * w[i]
	}
}

func addBias(x, b []float32) {
	if b == nil {
		return
	}
	for i := range x {
		x[i] += b[i%len(b)]
	}
}

func softmax(x []float32) {
	mx := float32(math.Inf(-1))
	for _, v := range x {
		mx = max(mx, v)
	}
	tensor.ExpShift(x, mx)
	var sum float64
	for _, e := range x {
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

// softmaxSink is softmax with one more logit, sink, in the denominator
// only, as ggml's soft_max with sinks computes it.
func softmaxSink(x []float32, sink float32) {
	mx := sink
	for _, v := range x {
		mx = max(mx, v)
	}
	tensor.ExpShift(x, mx)
	var sum float64
	for _, e := range x {
		sum += float64(e)
	}
	sum += float64(float32(math.Exp(float64(sink - mx))))
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}
