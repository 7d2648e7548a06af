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
// thread costs tens to hundreds of microseconds (more on virtual machines),
// as much as a loop over a 1 MiB matrix takes. So an idle worker keeps
// polling for the next loop, and a caller for its workers to finish, before
// parking; it yields the processor between polls, so other goroutines
// still run. How long suits how the process uses the machine: see
// ShareCores.
type Pool struct {
	workers int
	tasks   chan task
	close   sync.Once
	joins   sync.Pool    // *join
	poll    atomic.Int64 // how long an idle worker polls, in nanoseconds
	shared  atomic.Bool  // see ShareCores
	resting atomic.Bool
}

const (
	// pollDedicated and pollShared are how long idle workers poll for
	// the next loop when the process has the cores to itself and when it
	// shares them with other busy processes.
	pollDedicated = time.Millisecond
	pollShared    = 50 * time.Microsecond
	// spinBetweenYields is how long an idle worker watches for a task
	// between yields of the processor.
	spinBetweenYields = 2 * time.Microsecond
	// chunksPerWorker is how many chunks a loop is cut into per
	// participant, so that the chunks balance unequal cores.
	chunksPerWorker = 4
)

// task asks a worker to help with one loop.
type task struct{ j *join }

// join is one loop in flight: its range is cut into chunks that the caller
// and its helpers claim in turn, so a helper that starts late or runs slow
// (the cores are shared) takes fewer chunks instead of holding up the loop.
// A helper that has not started when the caller runs out of chunks is not
// waited for: the caller closes the loop, and a helper that comes to it
// later leaves it alone. (Waiting for it would tie the loop to whatever
// the worker is busy with: another role's loop in the same process.)
type join struct {
	body     Loop
	n, chunk int
	next     atomic.Int64
	// state counts the helpers running chunks, with the joinClosed and
	// joinParked flags; done wakes a parked caller.
	state atomic.Int64
	done  chan struct{}
}

const (
	joinClosed  = 1 << 62 // the caller has run out of chunks
	joinParked  = 1 << 61 // the caller sleeps until the last helper leaves
	joinHelpers = joinParked - 1
)

// enter registers a helper, unless the loop is closed. A task can outlive
// its loop, and its join be reused for the next: then it helps with that.
func (j *join) enter() bool {
	for {
		s := j.state.Load()
		if s&joinClosed != 0 {
			return false
		}
		if j.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// leave unregisters a helper, waking the caller if it sleeps until the
// last one leaves.
func (j *join) leave() {
	if s := j.state.Add(-1); s&joinHelpers == 0 && s&joinParked != 0 {
		j.done <- struct{}{}
	}
}

// close ends the loop for helpers yet to come and waits for those running
// its last chunks: polling for poll, then asleep.
func (j *join) close(poll time.Duration) {
	if j.state.Or(joinClosed)&joinHelpers == 0 {
		return
	}
	deadline := time.Now().Add(poll)
	for j.state.Load()&joinHelpers != 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	for {
		s := j.state.Load()
		if s&joinHelpers == 0 {
			return
		}
		if j.state.CompareAndSwap(s, s|joinParked) {
			<-j.done
			return
		}
	}
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
	p.joins.New = func() any { return &join{done: make(chan struct{}, 1)} }
	p.poll.Store(int64(pollDedicated))
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
		if t.j.enter() {
			t.j.run()
			t.j.leave()
		}
	}
}

// next polls for a task for the pool's poll time, then waits for one; ok is false
// once the pool is closed.
func (p *Pool) next() (t task, ok bool) {
	deadline := time.Now().Add(time.Duration(p.poll.Load()))
	for {
		select {
		case t, ok = <-p.tasks:
			return t, ok
		default:
		}
		if p.resting.Load() || time.Now().After(deadline) {
			break
		}
		// Watch the queue a moment before yielding. A yield goes through
		// the scheduler's global run queue, whose lock the other cores'
		// scheduling takes too; where cores are far apart (see
		// BenchmarkCoreRoundTrip), that lock bouncing between them slows
		// everything that schedules, such as a cluster's network path.
		for spin := time.Now().Add(spinBetweenYields); len(p.tasks) == 0 && time.Now().Before(spin); {
		}
		if len(p.tasks) == 0 {
			runtime.Gosched()
		}
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

// ShareCores tunes the pool for how the process uses the machine. By
// default it has the cores to itself (the roles of a cluster in one
// process, or one role per machine): idle workers poll for a millisecond,
// through the gaps of a step and the network round trips to expert nodes.
// A process that shares the cores with other busy processes (up
// --processes on one machine) would take them from the processes it waits
// for: with shared set, workers poll only 50 µs and Rest parks them.
func (p *Pool) ShareCores(shared bool) {
	if p == nil {
		p = Default()
	}
	p.shared.Store(shared)
	if shared {
		p.poll.Store(int64(pollShared))
	} else {
		p.poll.Store(int64(pollDedicated))
	}
}

// Rest, in a pool that shares the cores (ShareCores), tells idle workers
// to park now instead of polling for the next loop: the caller is about to
// wait on another process, which needs the processor. The next loop ends
// the rest. In a pool with the cores to itself it does nothing.
func (p *Pool) Rest() {
	if p == nil {
		p = Default()
	}
	if p.shared.Load() {
		p.resting.Store(true)
	}
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
	j.state.Store(0) // open: the fields above are set
	for range parts - 1 {
		select {
		case p.tasks <- task{j}:
		default: // every worker is busy with other loops: go without
		}
	}
	j.run()
	j.close(time.Duration(p.poll.Load()))
	j.body = nil
	p.joins.Put(j)
}
