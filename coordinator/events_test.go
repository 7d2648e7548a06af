package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/sampling"
)

// The event queue hands events over in order, without ever blocking the
// pusher; pop waits for a push or the close, and stops with its context.
func TestEventQueue(t *testing.T) {
	q := newEventQueue()
	for i := range 1000 { // far more than any buffer: push never blocks
		q.push(genEvent{token: sampling.Result{Token: int32(i)}, sampled: true})
	}
	if q.len() != 1000 {
		t.Fatalf("len %d, want 1000", q.len())
	}
	for i := range 1000 {
		ev, ok := q.pop(t.Context())
		if !ok || ev.token.Token != int32(i) {
			t.Fatalf("event %d: %+v, %v", i, ev, ok)
		}
	}
	if _, got, open := q.tryPop(); got || !open {
		t.Fatalf("empty and open: got %v, open %v", got, open)
	}

	// A waiting pop wakes for a push from another goroutine, then for the
	// close, after which the queue reports its end.
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.push(genEvent{finish: 1})
		q.close()
	}()
	if ev, ok := q.pop(t.Context()); !ok || ev.finish != 1 {
		t.Fatalf("after a push: %+v, %v", ev, ok)
	}
	if _, ok := q.pop(t.Context()); ok {
		t.Fatal("pop after the close and the last event returned one")
	}
	if _, got, open := q.tryPop(); got || open {
		t.Fatalf("closed and drained: got %v, open %v", got, open)
	}

	// A pop with nothing coming ends with its context.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, ok := newEventQueue().pop(ctx); ok || ctx.Err() == nil {
		t.Fatalf("pop returned %v before its context ended", ok)
	}
}
