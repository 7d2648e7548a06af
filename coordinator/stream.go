package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-llm/switchyard/pkg/freelist"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// nodeStream multiplexes Forward calls to one node over a long-lived
// ForwardStream, opened on first use and opened again after it breaks. A
// call is started (sent) and finished (its answer awaited) separately, so
// that one goroutine can have calls out to every node at once.
type nodeStream struct {
	client pb.ExpertServiceClient

	sendMu sync.Mutex // serialises opening and Send

	mu      sync.Mutex // guards the fields below
	stream  pb.ExpertService_ForwardStreamClient
	cancel  context.CancelFunc
	next    uint64
	waiting map[uint64]chan streamResult

	// answers are messages to receive into, with their buffers; a
	// caller done with an answer's outputs puts it back (release).
	answers freelist.List[pb.ForwardStreamResponse]
}

type streamResult struct {
	resp *pb.ForwardResponse
	err  error
	at   time.Time                 // when the answer arrived
	msg  *pb.ForwardStreamResponse // holds resp; for release
}

// release returns r's message, and the buffers of its outputs, for the
// stream to receive into again.
func (s *nodeStream) release(r streamResult) {
	if r.msg != nil {
		s.answers.Put(r.msg)
	}
}

// streamCall is a call in flight. Its channel and timer are kept for the
// next call it is used for, so that a call allocates nothing of its own.
type streamCall struct {
	s      *nodeStream
	stream pb.ExpertService_ForwardStreamClient
	id     uint64
	ch     chan streamResult // nil: make a new one (an answer may still come to the old)
	timer  *time.Timer
}

func newNodeStream(client pb.ExpertServiceClient) *nodeStream {
	return &nodeStream{client: client, waiting: map[uint64]chan streamResult{}}
}

// start sends req as call c, opening the stream if need be; ctx and
// deadline bound only the opening.
func (s *nodeStream) start(ctx context.Context, deadline time.Time, c *streamCall, req *pb.ForwardStreamRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	st, err := s.open(ctx, deadline)
	if err != nil {
		return err
	}
	if c.ch == nil {
		c.ch = make(chan streamResult, 1)
	}
	c.s, c.stream = s, st
	s.mu.Lock()
	s.next++
	c.id = s.next
	s.waiting[c.id] = c.ch
	s.mu.Unlock()
	req.CallId = c.id
	if err := st.Send(req); err != nil {
		err = fmt.Errorf("sending on the forward stream: %w", err)
		s.broken(st, err)
		s.mu.Lock()
		delete(s.waiting, c.id)
		s.mu.Unlock()
		c.ch = nil // broken may have answered it
		return err
	}
	return nil
}

// open returns the current stream or opens one. Must hold sendMu.
func (s *nodeStream) open(ctx context.Context, deadline time.Time) (pb.ExpertService_ForwardStreamClient, error) {
	s.mu.Lock()
	st := s.stream
	s.mu.Unlock()
	if st != nil {
		return st, nil
	}
	ctx, cancelOpen := context.WithDeadline(ctx, deadline)
	defer cancelOpen()
	// The stream outlives this call, but opening it must not outlast ctx.
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	st, err := s.client.ForwardStream(sctx)
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("opening the forward stream: %w", err)
	}
	s.mu.Lock()
	s.stream, s.cancel = st, cancel
	s.mu.Unlock()
	go s.receive(st)
	return st, nil
}

// receive hands each answer on st to its call until st breaks.
func (s *nodeStream) receive(st pb.ExpertService_ForwardStreamClient) {
	for {
		r := s.answers.Get()
		if err := st.RecvMsg(r); err != nil { // into r's buffers: see pb's codec
			s.broken(st, fmt.Errorf("forward stream: %w", err))
			return
		}
		res := streamResult{resp: r.Response, at: time.Now(), msg: r}
		switch {
		case r.Code != 0:
			res.resp, res.err = nil, status.Error(codes.Code(r.Code), r.Message)
		case r.Response == nil:
			res.err = errors.New("empty answer on the forward stream")
		}
		s.mu.Lock()
		ch := s.waiting[r.CallId]
		delete(s.waiting, r.CallId)
		s.mu.Unlock()
		if ch != nil {
			ch <- res
		} else {
			s.release(res)
		}
	}
}

// broken closes st, if it is still the current stream, and fails every
// call waiting on it; the next call opens a new one.
func (s *nodeStream) broken(st pb.ExpertService_ForwardStreamClient, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream != st {
		return
	}
	s.cancel()
	s.stream, s.cancel = nil, nil
	for id, ch := range s.waiting {
		ch <- streamResult{err: err, at: time.Now()}
		delete(s.waiting, id)
	}
}

// close ends the stream and fails its calls.
func (s *nodeStream) close() {
	s.mu.Lock()
	st := s.stream
	s.mu.Unlock()
	if st != nil {
		s.broken(st, errors.New("connection to the node closed"))
	}
}

// wait returns the call's answer. If the caller gives up (ctx) the answer
// is dropped when it comes; if the node is declared down (down) or does
// not answer by deadline, the stream is closed, since a node that stalls
// one call stalls every call behind it.
func (c *streamCall) wait(ctx, down context.Context, deadline time.Time) streamResult {
	if c.timer == nil {
		c.timer = time.NewTimer(time.Until(deadline))
	} else {
		c.timer.Reset(time.Until(deadline))
	}
	defer c.timer.Stop()
	select {
	case r := <-c.ch:
		return r
	case <-ctx.Done():
		c.s.mu.Lock()
		delete(c.s.waiting, c.id)
		c.s.mu.Unlock()
		c.ch = nil // the answer may be on its way to it
		return streamResult{err: ctx.Err(), at: time.Now()}
	case <-down.Done():
		c.s.broken(c.stream, errors.New("node declared dead by gossip"))
	case <-c.timer.C:
		c.s.broken(c.stream, fmt.Errorf("no answer within the forward timeout: %w", context.DeadlineExceeded))
	}
	return <-c.ch // broken answered it, unless the answer came first
}
