package tensor

import (
	"runtime"
	"sync"
)

// Pool splits loops over a fixed set of worker goroutines that live as long
// as the pool. The zero Pool is not usable; use NewPool or Default.
type Pool struct {
	workers int
	tasks   chan task
	close   sync.Once
}

type task struct {
	fn     func(lo, hi int)
	lo, hi int
	wg     *sync.WaitGroup
}

// NewPool starts a pool that runs loops on n goroutines (the caller's
// included); n < 1 means GOMAXPROCS.
func NewPool(n int) *Pool {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Pool{workers: n, tasks: make(chan task, n)}
	for range n - 1 {
		go func() {
			for t := range p.tasks {
				t.fn(t.lo, t.hi)
				t.wg.Done()
			}
		}()
	}
	return p
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

// Workers is the number of goroutines a loop is split over.
func (p *Pool) Workers() int { return p.workers }

// Close stops the workers; the pool must not be used afterwards.
func (p *Pool) Close() { p.close.Do(func() { close(p.tasks) }) }

// For calls fn over [0, n) split into contiguous ranges, one per worker,
// and returns when all have finished. Ranges smaller than grain are not
// split further. fn must be safe to call concurrently on disjoint ranges.
func (p *Pool) For(n, grain int, fn func(lo, hi int)) {
	if p == nil {
		p = Default()
	}
	parts := min(p.workers, (n+grain-1)/max(grain, 1))
	if parts <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(parts - 1)
	chunk := (n + parts - 1) / parts
	for i := 1; i < parts; i++ {
		lo, hi := i*chunk, min(n, (i+1)*chunk)
		if lo >= hi {
			wg.Done()
			continue
		}
		p.tasks <- task{fn, lo, hi, &wg}
	}
	fn(0, min(n, chunk))
	wg.Wait()
}
