package model

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Experts applies routed experts. It is the seam between the shared part
// and wherever the experts live: in this process (Local) or on expert nodes.
type Experts interface {
	// Forward applies, for each of the n rows of x (n × n_embd), the k
	// experts experts[i*k:(i+1)*k] of layer, and returns n*k output rows
	// (unweighted), row i*k+j being expert experts[i*k+j] applied to x_i.
	// It may block; it is called from one goroutine at a time per model.
	Forward(ctx context.Context, layer int, x []float32, n int, experts []int32) ([]float32, error)
}

// Apply runs the FFN over m rows of x (m × Cols of Gate) into dst (m × Rows
// of Down).
func (f *FFN) Apply(p *tensor.Pool, dst, x []float32, m int) {
	applyAll(p, []ffnJob{{f, dst, x, m}})
}

// ffnJob is one FFN over some rows.
type ffnJob struct {
	f      *FFN
	dst, x []float32
	m      int
}

// applyAll runs several FFNs (the experts of a layer) with two parallel
// loops in all: every gate and up product, then every down product.
func applyAll(p *tensor.Pool, jobs []ffnJob) {
	gs := make([][]float32, len(jobs))
	var first []tensor.Product
	for i, j := range jobs {
		ff := j.f.Gate.Rows
		g, u := make([]float32, j.m*ff), make([]float32, j.m*ff)
		gs[i] = g
		first = append(first, tensor.Product{M: j.f.Gate, Dst: g, X: j.x, N: j.m}, tensor.Product{M: j.f.Up, Dst: u, X: j.x, N: j.m})
	}
	tensor.MatMulAll(p, first)
	second := make([]tensor.Product, len(jobs))
	for i, j := range jobs {
		g, u := gs[i], first[2*i+1].Dst
		for c := range g {
			g[c] = silu(g[c]) * u[c]
		}
		second[i] = tensor.Product{M: j.f.Down, Dst: j.dst, X: g, N: j.m}
	}
	tensor.MatMulAll(p, second)
}

func silu(x float32) float32 { return x / (1 + float32(math.Exp(float64(-x)))) }

// Local holds expert units in this process.
type Local struct {
	Pool  *tensor.Pool // nil: tensor.Default()
	Embd  int
	units map[Unit]*Expert
}

// NewLocal returns an empty set of local experts for rows of embd values.
func NewLocal(embd int, p *tensor.Pool) *Local {
	return &Local{Pool: p, Embd: embd, units: map[Unit]*Expert{}}
}

// Add makes e available.
func (l *Local) Add(e *Expert) { l.units[e.Unit] = e }

// Has reports whether unit u is held.
func (l *Local) Has(u Unit) bool { _, ok := l.units[u]; return ok }

// LoadAll loads every unit of f.
func LoadAll(f *File, p *tensor.Pool) (*Local, error) {
	l := NewLocal(f.Embd, p)
	for layer := range f.Layers {
		for e := range f.Experts {
			x, err := f.LoadExpert(Unit{layer, e})
			if err != nil {
				return nil, err
			}
			l.Add(x)
		}
	}
	return l, nil
}

// Forward implements Experts by applying every (row, slot) pair here.
func (l *Local) Forward(ctx context.Context, layer int, x []float32, n int, experts []int32) ([]float32, error) {
	if n == 0 {
		return nil, nil
	}
	k := len(experts) / n
	if len(x) != n*l.Embd || k*n != len(experts) {
		return nil, fmt.Errorf("model: expert forward of %d values for %d rows of %d with %d choices", len(x), n, l.Embd, len(experts))
	}
	rows := make([]int32, len(experts))
	for s := range rows {
		rows[s] = int32(s / k)
	}
	return l.Apply(ctx, layer, x, rows, experts)
}

// Remove drops unit u.
func (l *Local) Remove(u Unit) { delete(l.units, u) }

// Units lists the units held.
func (l *Local) Units() []Unit {
	out := make([]Unit, 0, len(l.units))
	for u := range l.units {
		out = append(out, u)
	}
	return out
}

// ErrNotHeld is returned (wrapped) for a unit that is not loaded here.
var ErrNotHeld = errors.New("model: unit not held")

// Apply computes, for every pair i, expert experts[i] of layer applied to
// row rows[i] of x (rows of Embd values), and returns one output row per
// pair. Each expert runs once over all its rows as one matrix product.
// The caller must not Add or Remove units concurrently.
func (l *Local) Apply(ctx context.Context, layer int, x []float32, rows, experts []int32) ([]float32, error) {
	E := l.Embd
	out := make([]float32, len(experts)*E)
	slots := map[int32][]int{}
	var order []int32
	for s, e := range experts {
		if _, ok := slots[e]; !ok {
			order = append(order, e)
		}
		slots[e] = append(slots[e], s)
	}
	for _, e := range order {
		if _, ok := l.units[Unit{layer, int(e)}]; !ok {
			return nil, fmt.Errorf("%w: %v", ErrNotHeld, Unit{layer, int(e)})
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	jobs := make([]ffnJob, len(order))
	for i, e := range order {
		ss := slots[e]
		xs := make([]float32, len(ss)*E)
		for j, s := range ss {
			r := int(rows[s])
			copy(xs[j*E:(j+1)*E], x[r*E:(r+1)*E])
		}
		jobs[i] = ffnJob{f: &l.units[Unit{layer, int(e)}].FFN, dst: make([]float32, len(ss)*E), x: xs, m: len(ss)}
	}
	applyAll(l.Pool, jobs)
	for i, e := range order {
		for j, s := range slots[e] {
			copy(out[s*E:(s+1)*E], jobs[i].dst[j*E:(j+1)*E])
		}
	}
	return out, nil
}
