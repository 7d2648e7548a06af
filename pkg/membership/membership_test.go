package membership

import (
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
	if !b.Alive("a") {
		t.Error("b does not see a")
	}
	// Shut b down without leaving, as a crash would: a must declare it dead.
	b.ml.Shutdown()
	waitFor(t, "a to declare b dead", func() bool { return !a.Alive("b") })
	if !a.Known("b") || a.Known("c") {
		t.Error("Known is wrong")
	}
}
