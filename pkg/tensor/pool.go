package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool splits loops over a fixed set of worker goroutines that live as long
// as the pool. The zero Pool is not usable; use NewPool or Default.
//
// A decode step is dozens of short loops back to back, and waking a parked
// thread costs tens of microseconds, about what a loop over a 1 MiB matrix
// takes. So an idle worker keeps polling for the next loop, and a caller
// for its workers to finish, for up to spin before parking; it yields the
// processor between polls, so other goroutines still run.
type Pool struct {
	workers int
	tasks   chan task
	close   sync.Once
	joins   sync.Pool // *join
	resting atomic.Bool
}

const (
	// spin is how long a worker or caller polls before parking.
	spin = 50 * time.Microsecond
	// chunksPerWorker is how many chunks a loop is cut into per
	// participant, so that the chunks balance unequal cores.
	chunksPerWorker = 4
)

// task asks a worker to help with one loop.
type task struct{ j *join }

// join is one loop in flight: its range is cut into chunks that the caller
// and its helpers claim in turn, so a helper that starts late or runs slow
// (the cores are shared) takes fewer chunks instead of holding up the loop.
// left counts helpers not yet finished, for polling; wg is for parking.
type join struct {
	body     Loop
	n, chunk int
	next     atomic.Int64
	left     atomic.Int32
	wg       sync.WaitGroup
}

// run claims and runs chunks until none is left.
func (j *join) run() {
	for {
		lo := int(j.next.Add(int64(j.chunk))) - j.chunk
		if lo >= j.n {
			return
		}
		j.body.Range(lo, min(j.n, lo+j.chunk))
	}
}

// NewPool starts a pool that runs loops on n goroutines (the caller's
// included); n < 1 means GOMAXPROCS.
func NewPool(n int) *Pool {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Pool{workers: n, tasks: make(chan task, n)}
	p.joins.New = func() any { return new(join) }
	for range n - 1 {
		go p.work()
	}
	return p
}

func (p *Pool) work() {
	for {
		t, ok := p.next()
		if !ok {
			return
		}
		t.j.run()
		t.j.left.Add(-1)
		t.j.wg.Done()
	}
}

// next polls for a task for up to spin, then waits for one; ok is false
// once the pool is closed.
func (p *Pool) next() (t task, ok bool) {
	deadline := time.Now().Add(spin)
	for {
		select {
		case t, ok = <-p.tasks:
			return t, ok
		default:
		}
		if p.resting.Load() || time.Now().After(deadline) {
			break
		}
		runtime.Gosched()
	}
	t, ok = <-p.tasks
	return t, ok
}

var (
	defaultPool     *Pool
	defaultPoolOnce sync.Once
)

// Default returns the process-wide pool with GOMAXPROCS workers.
func Default() *Pool {
	defaultPoolOnce.Do(func() { defaultPool = NewPool(0) })
	return defaultPool
}

// Rest tells idle workers to park now instead of polling for the next
// loop: the caller is about to wait on something else (the network), and
// polling would only take the processor from whatever it waits for. The
// next For ends the rest.
func (p *Pool) Rest() {
	if p == nil {
		p = Default()
	}
	p.resting.Store(true)
}

// Workers is the number of goroutines a loop is split over.
func (p *Pool) Workers() int { return p.workers }

// Close stops the workers; the pool must not be used afterwards.
func (p *Pool) Close() { p.close.Do(func() { close(p.tasks) }) }

// Loop is the body of a parallel loop.
type Loop interface {
	// Range runs iterations [lo, hi); it is called concurrently on
	// disjoint ranges.
	Range(lo, hi int)
}

type loopFunc func(lo, hi int)

func (f loopFunc) Range(lo, hi int) { f(lo, hi) }

// For calls fn over [0, n) split into contiguous ranges, run by the
// caller and the workers, and returns when all have finished. Ranges
// smaller than grain are not split further. fn must be safe to call
// concurrently on disjoint ranges.
func (p *Pool) For(n, grain int, fn func(lo, hi int)) { p.Run(n, grain, loopFunc(fn)) }

// Run is For with the body as a Loop: a caller that keeps its loop state
// in a value it reuses makes no closure per loop, so a hot path can run
// without allocating.
func (p *Pool) Run(n, grain int, body Loop) {
	if p == nil {
		p = Default()
	}
	parts := min(p.workers, (n+grain-1)/max(grain, 1))
	if parts <= 1 {
		if n > 0 {
			body.Range(0, n)
		}
		return
	}
	if p.resting.Load() {
		p.resting.Store(false)
	}
	j := p.joins.Get().(*join)
	j.body, j.n = body, n
	j.chunk = max(grain, (n+chunksPerWorker*parts-1)/(chunksPerWorker*parts))
	j.next.Store(0)
	j.left.Store(int32(parts - 1))
	j.wg.Add(parts - 1)
	for range parts - 1 {
		select {
		case p.tasks <- task{j}:
		default: // every worker is busy with other loops: go without
			j.left.Add(-1)
			j.wg.Done()
		}
	}
	j.run()
	if j.left.Load() > 0 {
		deadline := time.Now().Add(spin)
		for j.left.Load() > 0 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
	}
	j.wg.Wait()
	j.body = nil
	p.joins.Put(j)
}
