package model

import (
	"sync"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// arena hands out slices of one reusable buffer. A pass takes what
// it needs; reset, at the start of the next pass, makes the buffer as large
// as the last pass needed in all, so a steady workload allocates nothing.
type arena[T any] struct {
	buf       []T
	off, need int
}

func (a *arena[T]) reset() {
	if a.need > len(a.buf) {
		a.buf = make([]T, a.need)
	}
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

// workspace is the scratch memory of one forward pass (or one expert
// application), pooled so that passes reuse it.
type workspace struct {
	f      arena[float32]
	i      arena[int32]
	rows   arena[rowRef]
	jobs   arena[ffnJob]
	prods  arena[tensor.Product]
	attn   attnLoop
	swiglu swiglu
}

type workspaces struct{ pool sync.Pool }

// get returns a reset workspace; put it back when the pass is done with
// every slice it handed out.
func (w *workspaces) get() *workspace {
	ws, _ := w.pool.Get().(*workspace)
	if ws == nil {
		ws = new(workspace)
	}
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
var scores = sync.Pool{New: func() any { return new([]float32) }}
