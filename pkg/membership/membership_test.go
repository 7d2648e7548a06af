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

func TestGossipKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, err := Start(Config{Name: "a", SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	friend, err := Start(Config{Name: "friend", SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer friend.Close()
	if err := friend.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("a member with the key could not join: %v", err)
	}
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
	time.Sleep(300 * time.Millisecond)
	if a.Known("stranger") || a.Known("wrong") || !a.Alive("friend") {
		t.Errorf("a's view: stranger %v, wrong %v, friend %v", a.Known("stranger"), a.Known("wrong"), a.Alive("friend"))
	}
}
