package bench

import (
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkCoreRoundTrip hands a counter back and forth between two
// threads pinned to the first two CPUs the process may use: ns/op is one
// round trip between the cores, the latency every hand-off between
// goroutines on different cores pays. On the development VM it is about
// 85 ns in its slow-memory state and about 400 ns in its fast one, where
// the cluster's dispatch slows (README, Speed).
func BenchmarkCoreRoundTrip(b *testing.B) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		b.Fatal(err)
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 2; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		b.Skip("needs two CPUs")
	}
	var turn atomic.Int64 // even: the first CPU's move; odd: the second's; -1: give up
	n := int64(b.N)
	errs := make(chan error, 2)
	// Each side runs on a locked thread of its own, pinned to its CPU, and
	// ends without unlocking it, so that the pinned thread exits too.
	side := func(cpu int, first int64) {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			turn.Store(-1)
			errs <- err
			return
		}
		for i := range n {
			want := 2*i + first
			for v := turn.Load(); v != want; v = turn.Load() {
				if v < 0 {
					errs <- nil
					return
				}
			}
			turn.Store(want + 1)
		}
		errs <- nil
	}
	b.ResetTimer()
	go side(cpus[1], 1)
	go side(cpus[0], 0)
	for range 2 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
