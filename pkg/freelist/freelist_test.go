package freelist

import (
	"runtime"
	"testing"
)

// TestSurvivesCollection checks what sync.Pool does not promise: an
// object put back is the one Get returns, after collections.
func TestSurvivesCollection(t *testing.T) {
	var l List[[]byte]
	b := l.Get()
	if b == nil || *b != nil {
		t.Fatalf("Get on an empty list = %v, want a new zero object", b)
	}
	*b = make([]byte, 1<<20)
	l.Put(b)
	runtime.GC()
	runtime.GC()
	if got := l.Get(); got != b {
		t.Error("after two collections Get returned another object than the one put back")
	}
	if got := l.Get(); got == b || *got != nil {
		t.Error("a second Get returned the same object again, or a used one")
	}
}
