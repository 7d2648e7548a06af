package membership

import (
	"runtime"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJoinAndFailure(t *testing.T) {
	a, err := Start(Config{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Start(Config{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b", func() bool { return a.Alive("b") })
	waitFor(t, "b to see a", func() bool { return b.Alive("a") }) // events reach the view through a channel
	// Shut b down without leaving, as a crash would: a must declare it dead.
	crash(b)
	waitFor(t, "a to declare b dead", func() bool { return !a.Alive("b") })
	if !a.Known("b") || a.Known("c") {
		t.Error("Known is wrong")
	}
}

func TestGossipKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, err := Start(Config{Name: "a", SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	stranger, err := Start(Config{Name: "stranger"})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if err := stranger.Join([]string{a.Addr()}); err == nil {
		t.Error("a member without the gossip key joined")
	}
	wrong, err := Start(Config{Name: "wrong", SecretKey: []byte("fedcba9876543210fedcba9876543210")})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := wrong.Join([]string{a.Addr()}); err == nil {
		t.Error("a member with another gossip key joined")
	}
	// A member with the key joins after the two refused ones. a applies
	// memberlist's events in the order they come, through one channel: once
	// it sees friend, it has applied anything the refused joins gave it.
	friend, err := Start(Config{Name: "friend", SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer friend.Close()
	if err := friend.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("a member with the key could not join: %v", err)
	}
	waitFor(t, "a to see friend", func() bool { return a.Alive("friend") })
	if a.Known("stranger") || a.Known("wrong") || !a.Alive("friend") {
		t.Errorf("a's view: stranger %v, wrong %v, friend %v", a.Known("stranger"), a.Known("wrong"), a.Alive("friend"))
	}
}

// Changed signals joins and deaths, coalesced, and memberlist never waits
// for its reader: with nobody reading, the view still follows the cluster.
func TestChangedThroughChannel(t *testing.T) {
	before := runtime.NumGoroutine()
	a, err := Start(Config{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads a.Changed() while b and c join and c dies: memberlist
	// must not block on it.
	b, err := Start(Config{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(Config{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Members{b, c} {
		if err := m.Join([]string{a.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a to see b and c", func() bool { return a.Alive("b") && a.Alive("c") })
	crash(c)
	waitFor(t, "a to declare c dead", func() bool { return !a.Alive("c") })
	if !a.Alive("b") {
		t.Error("b is not alive in a's view")
	}
	// The changes above are pending as one signal.
	select {
	case <-a.Changed():
	default:
		t.Fatal("no change signalled after joins and a death")
	}
	select {
	case <-a.Changed():
		t.Fatal("changes were not coalesced: a second signal with nothing new")
	default:
	}
	// A new change is signalled again.
	b.Close()
	select {
	case <-a.Changed():
	case <-time.After(10 * time.Second):
		t.Fatal("b's leave was not signalled")
	}
	if a.Alive("b") {
		t.Error("b left but is alive in a's view")
	}
	for _, m := range []*Members{a, b} {
		m.Close()
		m.Close() // idempotent
	}
	waitFor(t, "memberlist's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// crash stops m as a crash would, without a leave message, and ends its
// event reader.
func crash(m *Members) {
	m.ml.Shutdown()
	m.closing.Do(func() {
		close(m.stop)
		<-m.done
	})
}
