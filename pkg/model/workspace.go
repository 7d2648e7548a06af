package model

import (
	"github.com/switchyard-llm/switchyard/pkg/freelist"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// arena hands out slices of one reusable buffer. A pass takes what
// it needs; reset, at the start of the next pass, makes the buffer as large
// as the last pass needed in all, so a steady workload allocates nothing.
type arena[T any] struct {
	buf       []T
	off, need int
	peak      int // the most a rewound stretch of the pass needed
}

func (a *arena[T]) reset() {
	if n := max(a.need, a.peak); n > len(a.buf) {
		a.buf = make([]T, n)
	}
	a.off, a.need, a.peak = 0, 0, 0
}

// rewind starts the buffer afresh within a pass: every slice taken so far
// must be dead.
func (a *arena[T]) rewind() {
	a.peak = max(a.peak, a.need)
	a.off, a.need = 0, 0
}

// take returns n elements, valid until the next reset, holding whatever
// an earlier pass left: the caller writes each before reading it.
func (a *arena[T]) take(n int) []T {
	a.need += n
	if a.off+n > len(a.buf) { // outgrown this pass: earlier slices keep the old buffer
		a.buf, a.off = make([]T, max(n, len(a.buf))), 0
	}
	s := a.buf[a.off : a.off+n : a.off+n]
	a.off += n
	return s
}

// zeros is take with the elements zeroed.
func (a *arena[T]) zeros(n int) []T {
	s := a.take(n)
	clear(s)
	return s
}

// floats is a pass's float32 scratch, in four arenas: one for what lives
// the whole pass (the residual stream, the logits), two that the layers
// use in turn, and one for what is dead before the call that takes it
// returns. A layer's scratch is dead once the layer after the next begins
// (micro-batches overlap a layer with the next, never more), so a pass
// holds two layers' scratch, not every layer's; and of a layer only what
// crosses from its start to its end (the FFN's input, the experts'
// outputs, the routing weights), attention's queries, keys, values and
// outputs and the FFN's sums going to the short-lived arena. For 256 rows
// of width 1,024 in two micro-batches, 8.5 MB instead of 16.
type floats struct {
	pass  arena[float32]
	layer [2]arena[float32]
	tmp   arena[float32]
	owner [2]int // the layer each layer arena holds; -1 for none
	cur   *arena[float32]
}

func (f *floats) reset() {
	f.pass.reset()
	f.layer[0].reset()
	f.layer[1].reset()
	f.tmp.reset()
	f.owner, f.cur = [2]int{-1, -1}, &f.pass
}

// inTemp sends takes to the short-lived arena, rewound, and returns the
// arena to go back to (back) once what was taken there is dead.
func (f *floats) inTemp() *arena[float32] {
	prev := f.cur
	f.tmp.rewind()
	f.cur = &f.tmp
	return prev
}

func (f *floats) back(a *arena[float32]) { f.cur = a }

// inLayer sends takes to layer l's arena, rewound if it held layer l-2.
func (f *floats) inLayer(l int) {
	a := &f.layer[l%2]
	if f.owner[l%2] != l {
		a.rewind()
		f.owner[l%2] = l
	}
	f.cur = a
}

// inPass sends takes to the pass's arena.
func (f *floats) inPass() { f.cur = &f.pass }

func (f *floats) take(n int) []float32  { return f.cur.take(n) }
func (f *floats) zeros(n int) []float32 { return f.cur.zeros(n) }

// workspace is the scratch memory of one forward pass (or one expert
// application), pooled so that passes reuse it.
type workspace struct {
	f      floats
	i      arena[int32]
	rows   arena[rowRef]
	jobs   arena[ffnJob]
	prods  arena[tensor.Product]
	attn   attnLoop
	swiglu swiglu
}

type workspaces struct{ pool freelist.List[workspace] }

// get returns a reset workspace; put it back when the pass is done with
// every slice it handed out.
func (w *workspaces) get() *workspace {
	ws := w.pool.Get()
	ws.f.reset()
	ws.i.reset()
	ws.rows.reset()
	ws.jobs.reset()
	ws.prods.reset()
	return ws
}

func (w *workspaces) put(ws *workspace) {
	clear(ws.jobs.buf) // drop references to weights and buffers
	clear(ws.prods.buf)
	ws.attn = attnLoop{}
	w.pool.Put(ws)
}

// scores is a pool of attention score buffers, one per loop chunk.
var scores freelist.List[[]float32]
