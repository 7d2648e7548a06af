package membership

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// aliveCount is how many members m sees alive.
func aliveCount(m *Members) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range m.alive {
		if a {
			n++
		}
	}
	return n
}

// TestMembersAtScale runs many members in one process on loopback, as
// memberlist's own tests do, with Switchyard's configuration: they all
// find each other, and a member killed without leaving is declared dead
// by every other member. It logs the figures (gossip bytes per member per
// second; the time from the kill until the first and until the last member
// saw it dead; live members falsely declared dead, which a starved process
// can cause) and asserts no timing. 64 members by default, which two
// shared cores carry; SWITCHYARD_MEMBERS=256 runs the size of a large
// cluster (docs/performance.md has its figures).
func TestMembersAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("many members: a minute of two cores")
	}
	before := runtime.NumGoroutine()
	n := 64
	if s := os.Getenv("SWITCHYARD_MEMBERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 3 || n > 1024 {
			t.Fatalf("SWITCHYARD_MEMBERS=%q: want a count from 3 to 1024", s)
		}
	}
	ms := make([]*Members, n)
	for i := range ms {
		m, err := Start(Config{Name: fmt.Sprintf("m%03d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = m
	}
	defer func() {
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Go(func() { m.Close() }) // each waits up to 500 ms for its leave to spread
		}
		wg.Wait()
		waitFor(t, "memberlist's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	}()
	joined := time.Now()
	for i, m := range ms[1:] {
		// Join the first and the one before: a chain as well as a star;
		// one every 10 ms, as nodes of a cluster start.
		var err error
		for try := 0; try < 5; try++ { // as a node's joinGossip tries again
			if err = m.Join([]string{ms[0].Addr(), ms[i].Addr()}); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("joins took %.1f s", time.Since(joined).Seconds())
	converged := time.Now()
	lastLog := time.Now()
	waitLong(t, "every member to see all the others", 3*time.Minute, func() bool {
		time.Sleep(90 * time.Millisecond) // the view is read less often than the kill's
		lo := n
		for _, m := range ms {
			lo = min(lo, aliveCount(m))
		}
		if time.Since(lastLog) > 5*time.Second {
			t.Logf("converging: the member seeing fewest sees %d of %d", lo, n)
			lastLog = time.Now()
		}
		return lo == n
	})
	t.Logf("%d members converged %.1f s after the last join", n, time.Since(converged).Seconds())

	// Steady state: what gossip costs, and no false deaths.
	const window = 5 * time.Second
	var sent0 uint64
	for _, m := range ms {
		sent0 += m.SentBytes()
	}
	time.Sleep(window)
	var sent1 uint64
	for _, m := range ms {
		sent1 += m.SentBytes()
	}
	falseDeaths := 0
	for _, m := range ms {
		falseDeaths += n - aliveCount(m)
	}
	t.Logf("gossip: %.0f bytes per member per second (probes, gossip and state exchanges sent, %d members, %v); %d live members seen dead meanwhile",
		float64(sent1-sent0)/float64(n)/window.Seconds(), n, window, falseDeaths)

	// Kill one without a leave message.
	victim := ms[n/2]
	name := victim.ml.LocalNode().Name
	killed := time.Now()
	crash(victim)
	var first time.Duration
	waitLong(t, "every member to declare the killed one dead", 2*time.Minute, func() bool {
		all := true
		for _, m := range ms {
			if m == victim {
				continue
			}
			if m.Alive(name) {
				all = false
			} else if first == 0 {
				first = time.Since(killed)
			}
		}
		return all
	})
	last := time.Since(killed)
	t.Logf("killed member %s: first declared dead after %.2f s, by all %d others after %.2f s", name, first.Seconds(), n-1, last.Seconds())
}

func waitLong(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
