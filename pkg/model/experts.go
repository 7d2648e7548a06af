package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Experts applies routed experts. It is the seam between the shared part
// and wherever the experts live: in this process (Local) or on expert nodes.
type Experts interface {
	// Forward applies, for each of the n rows of x (n × n_embd), the k
	// experts experts[i*k:(i+1)*k] of layer, and writes n*k output rows
	// (unweighted) into out, row i*k+j being expert experts[i*k+j] applied
	// to x_i. It may block; it is called from one goroutine at a time per
	// model.
	Forward(ctx context.Context, layer int, x []float32, n int, experts []int32, out []float32) error
}

// Pending is an experts call in flight.
type Pending interface {
	// Wait returns once the call has written its outputs, or failed.
	Wait() error
}

// AsyncExperts are Experts that can have a call in flight while the caller
// computes: experts on other machines. Forward then cuts large steps in
// two micro-batches and overlaps one's attention with the other's experts.
type AsyncExperts interface {
	Experts
	// Start begins what Forward does; out must not be read before Wait.
	Start(ctx context.Context, layer int, x []float32, n int, experts []int32, out []float32) Pending
}

// ffnJob is one FFN over some rows.
type ffnJob struct {
	f      *FFN
	dst, x []float32
	m      int
}

// ffnChunkRows and ffnChunks bound the rows applyAll runs through the
// gate and up products at once: 64, or a quarter of them when there are
// more. Their outputs, two rows of the FFN's width each, are the largest
// scratch of a layer's experts: for 512 rows of medium's 2,816-wide
// experts 11.5 MB, which every pooled workspace then keeps; in quarters,
// 2.9 MB, and 1.4 MB for the up to 256 rows an expert node is usually
// sent. Each chunk costs three parallel loops; chunks of 64 whatever the
// rows cost 512-row prefill 4% (the loops' synchronisation on two cores).
// The weights are not read from memory again per chunk in any way that
// matters: a product walks them 16 rows at a time for every 8 tokens.
const (
	ffnChunkRows = 64
	ffnChunks    = 4
)

// applyAll runs several FFNs (the experts of a layer) over their rows in
// chunks (ffnChunkRows), with two parallel loops a chunk: every gate and
// up product, then every down product. A job of more rows than a chunk's
// room is split over chunks.
func applyAll(p *tensor.Pool, ws *workspace, jobs []ffnJob) {
	rows, ff := 0, 0
	for _, j := range jobs {
		rows += j.m
		ff = max(ff, j.f.Gate.Rows)
	}
	if rows == 0 {
		return
	}
	room := min(rows, max(ffnChunkRows, (rows+ffnChunks-1)/ffnChunks))
	g, u := ws.f.take(room*ff), ws.f.take(room*ff)
	chunk := ws.jobs.take(min(len(jobs), room))
	ps := ws.prods.take(2 * len(chunk))
	for i, r := 0, 0; i < len(jobs); {
		chunk = chunk[:0]
		for n := 0; n < room && i < len(jobs); {
			j := jobs[i]
			if j.m == 0 {
				i++
				continue
			}
			m := min(j.m-r, room-n)
			in, out := len(j.x)/j.m, len(j.dst)/j.m
			chunk = append(chunk, ffnJob{f: j.f, x: j.x[r*in : (r+m)*in], dst: j.dst[r*out : (r+m)*out], m: m})
			n, r = n+m, r+m
			if r == j.m {
				i, r = i+1, 0
			}
		}
		if len(chunk) > 0 {
			applyChunk(p, ws, chunk, g, u, ps)
		}
	}
}

// applyChunk runs applyAll's FFNs over one chunk of rows, writing the
// gate and up outputs into g and u.
func applyChunk(p *tensor.Pool, ws *workspace, jobs []ffnJob, g, u []float32, ps []tensor.Product) {
	ps = ps[:0]
	for _, j := range jobs {
		n := j.m * j.f.Gate.Rows
		ps = append(ps, tensor.Product{M: j.f.Gate, Dst: g[:n], X: j.x, N: j.m}, tensor.Product{M: j.f.Up, Dst: u[:n], X: j.x, N: j.m})
		g, u = g[n:], u[n:]
	}
	tensor.MatMulAll(p, ps)
	ws.swiglu = swiglu{ps: ps, jobs: jobs}
	for i := range jobs {
		ws.swiglu.n += len(ps[2*i].Dst)
	}
	p.Run(ws.swiglu.n, 4096, &ws.swiglu)
	ws.swiglu = swiglu{}
	for i, j := range jobs {
		ps[i] = tensor.Product{M: j.f.Down, Dst: j.dst, X: ps[2*i].Dst, N: j.m}
	}
	tensor.MatMulAll(p, ps[:len(jobs)])
	for _, j := range jobs {
		addBias(j.dst, j.f.DownBias)
	}
}

// swiglu sets g = act(g, u) over the gate and up outputs of applyAll's
// products (gate, up, gate, up, ...), as one parallel loop over all their
// elements.
type swiglu struct {
	ps   []tensor.Product
	jobs []ffnJob
	n    int
}

func (s *swiglu) Range(lo, hi int) {
	start := 0
	for i := 0; i < len(s.ps) && start < hi; i += 2 {
		g, u := s.ps[i].Dst, s.ps[i+1].Dst
		if a, b := max(lo, start), min(hi, start+len(g)); a < b {
			if f := s.jobs[i/2].f; f.OAI || f.GateBias != nil || f.UpBias != nil {
				biasedGLU(f, g, u, a-start, b-start)
			} else {
				tensor.SwiGLU(g[a-start:b-start], u[a-start:b-start])
			}
		}
		start += len(g)
	}
}

// biasedGLU sets g[i] = act(g[i]+gate bias, u[i]+up bias) for i in
// [a, b), the biases indexed by column, act being f's: SwiGLU or, for
// gpt-oss, SwiGLU-OAI as ggml computes it.
func biasedGLU(f *FFN, g, u []float32, a, b int) {
	const alpha, limit = 1.702, 7
	ff := f.Gate.Rows
	for i := a; i < b; i++ {
		x, y := g[i], u[i]
		if f.GateBias != nil {
			x += f.GateBias[i%ff]
		}
		if f.UpBias != nil {
			y += f.UpBias[i%ff]
		}
		if f.OAI {
			x = min(x, limit)
			y = min(max(y, -limit), limit)
			g[i] = x / (1 + float32(math.Exp(float64(alpha*-x)))) * (y + 1)
			continue
		}
		g[i] = x / (1 + float32(math.Exp(float64(-x)))) * y
	}
}

// Local holds expert units in this process.
type Local struct {
	Pool  *tensor.Pool // nil: tensor.Default()
	Embd  int
	units map[Unit]*Expert
	ws    workspaces
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
	for _, layer := range f.MoELayers() {
		for e := range f.Experts {
			x, err := f.LoadExpert(Unit{layer, e})
			if err != nil {
				return nil, err
			}
			l.Add(x)
		}
	}
	debug.FreeOSMemory() // the unpacked copies of packed weights are garbage now
	return l, nil
}

// Forward implements Experts by applying every (row, slot) pair here.
func (l *Local) Forward(ctx context.Context, layer int, x []float32, n int, experts []int32, out []float32) error {
	if n == 0 {
		return nil
	}
	k := len(experts) / n
	if len(x) != n*l.Embd || k*n != len(experts) {
		return fmt.Errorf("model: expert forward of %d values for %d rows of %d with %d choices", len(x), n, l.Embd, len(experts))
	}
	var small [64]int32
	rows := small[:0]
	if len(experts) > len(small) {
		rows = make([]int32, 0, len(experts))
	}
	for s := range experts {
		rows = append(rows, int32(s/k))
	}
	return l.Apply(ctx, layer, x, rows, experts, out)
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
// row rows[i] of x (rows of Embd values), and writes one output row per
// pair into out. Each expert runs once over all its rows as one matrix
// product. The caller must not Add or Remove units concurrently.
func (l *Local) Apply(ctx context.Context, layer int, x []float32, rows, experts []int32, out []float32) error {
	E := l.Embd
	if len(rows) != len(experts) || len(out) != len(experts)*E {
		return fmt.Errorf("model: %d pair rows, %d pair experts and %d output values for rows of %d", len(rows), len(experts), len(out), E)
	}
	ws := l.ws.get()
	defer l.ws.put(ws)
	// Every expert must be held; the largest sizes the per-expert tables.
	hi := int32(0)
	for _, e := range experts {
		if _, ok := l.units[Unit{layer, int(e)}]; !ok {
			return fmt.Errorf("%w: %v", ErrNotHeld, Unit{layer, int(e)})
		}
		hi = max(hi, e)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Group the pairs by expert, experts in order of first appearance:
	// expert e's count[e] pairs end at end[e] in slots.
	count, end := ws.i.zeros(int(hi)+1), ws.i.take(int(hi)+1)
	order := ws.i.take(len(experts))[:0]
	for _, e := range experts {
		if count[e] == 0 {
			order = append(order, e)
		}
		count[e]++
	}
	next := int32(0)
	for _, e := range order {
		end[e], next = next, next+count[e] // the group's start, until filled
	}
	slots := ws.i.take(len(experts))
	for s, e := range experts {
		slots[end[e]] = int32(s)
		end[e]++
	}
	jobs := ws.jobs.take(len(order))
	for i, e := range order {
		ss := slots[end[e]-count[e] : end[e]]
		xs := ws.f.take(len(ss) * E)
		for j, s := range ss {
			r := int(rows[s])
			copy(xs[j*E:(j+1)*E], x[r*E:(r+1)*E])
		}
		jobs[i] = ffnJob{f: &l.units[Unit{layer, int(e)}].FFN, dst: ws.f.take(len(ss) * E), x: xs, m: len(ss)}
	}
	applyAll(l.Pool, ws, jobs)
	for i, e := range order {
		for j, s := range slots[end[e]-count[e] : end[e]] {
			copy(out[int(s)*E:(int(s)+1)*E], jobs[i].dst[j*E:(j+1)*E])
		}
	}
	return nil
}
