package coordinator

import (
	"context"
	"sync"
)

// eventQueue carries a choice's events from the scheduler to the RPC that
// streams them. The scheduler must never wait for a slow client, so the
// queue has no bound; it holds only what has not been taken yet. (A
// channel buffered for every token a request may generate held about 200
// bytes per allowed token from admission on: 40 KB for 200 tokens, 110 KB
// for the rest of a 2,048-token context.)
type eventQueue struct {
	mu     sync.Mutex
	items  []genEvent
	head   int // items[head:] are waiting
	closed bool
	ready  chan struct{} // signalled (capacity 1) on push and close
}

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

// push adds an event; it never blocks.
func (q *eventQueue) push(ev genEvent) {
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	q.signal()
}

// close says no event follows.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// tryPop takes the next event if there is one (got); open is false once
// the queue is closed and every event taken.
func (q *eventQueue) tryPop() (ev genEvent, got, open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return genEvent{}, false, !q.closed
	}
	ev = q.items[q.head]
	q.items[q.head] = genEvent{}
	if q.head++; q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return ev, true, true
}

// pop waits for the next event: false once the queue is closed and every
// event taken, or when ctx is done.
func (q *eventQueue) pop(ctx context.Context) (genEvent, bool) {
	for {
		ev, got, open := q.tryPop()
		switch {
		case got:
			return ev, true
		case !open:
			return genEvent{}, false
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return genEvent{}, false
		}
	}
}

// len is how many events wait to be taken.
func (q *eventQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
