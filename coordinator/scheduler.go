package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// genRequest is an admitted request: validated, tokenized, with its
// sampler. The scheduler owns it from submission on.
type genRequest struct {
	ctx         context.Context
	prompt      []int32 // the prompt, plus resumed tokens
	promptLen   int     // of the prompt alone
	resumed     []int32 // tokens generated before a resume (text already sent)
	sampler     *sampling.Sampler
	constraint  *constraint // the grammar its output must follow, or nil
	topLogprobs int
	maxTokens   int
	// reserve is how many positions the KV cache is sized for up front:
	// the prompt plus a max_tokens the client set, or 0 (a request without
	// one may run to the context length, but most end far sooner; its cache
	// grows as it goes).
	reserve int
	stop    []string
	routing bool // return the experts chosen
	noCache bool // compute the whole prompt even when its prefix is cached
	// parse says how a chat reply is cut into typed deltas (reply.go).
	parse replyParsing
	// events receives one event per generated token and a final one (with
	// a finish reason or an error), without bound, so the scheduler never
	// waits for a slow client.
	events *eventQueue
	// forks are the other choices of an n > 1 request, with this one's
	// prompt and samplers of their own. They are not submitted: when this
	// one's prompt is computed, each starts from a fork of its sequence
	// and samples from its logits (see fork), so the prompt is computed
	// once. If this one fails first, they fail with it.
	forks []*genRequest
}

type genEvent struct {
	token   sampling.Result // when sampled
	sampled bool
	routing []int32 // layers × k, with returnRouting
	// promptRouting (positions × layers × k) comes with the first token.
	promptRouting []int32
	deltas        []*pb.Delta // what the token completed, typed
	finish        pb.FinishReason
	eos           bool   // the finish came from sampling the end-of-sequence token
	stopSequence  string // the stop string that ended the choice, on the last event
	// cached is how many prompt tokens came from the prefix cache, on the
	// first event.
	cached int
	err    error
}

// seqState is a request's sequence: waiting for KV-cache blocks (seq
// nil), or running.
type seqState struct {
	req       *genRequest
	seq       *model.Sequence
	history   []int32   // every token of the sequence: prompt, then sampled
	queued    time.Time // when it began waiting
	cached    int       // prompt tokens the prefix cache served, at first admission
	admitted  bool      // it ran before (a preempted sequence waits again)
	pending   []int32   // tokens to feed next: the rest of the prompt, or next
	next      [1]int32  // the last sampled token
	logits    []float32 // the buffer Forward writes this sequence's logits into
	prefilled bool      // the whole prompt is in the cache
	generated int
	dec       *tokenizer.Decoder
	stop      *sampling.Stopper
	parser    *chat.Parser // nil: the reply is plain text
	// routing of the prompt so far (with req.routing), and of the last
	// position fed
	promptRouting, lastRouting []int32
	sentPrompt                 bool
}

// scheduler runs continuous batching: every step advances each running
// sequence by one token and feeds prompt chunks of new ones, under a token
// budget, as one forward pass. One goroutine (run) owns all sequences and
// the model's KV-cache pool.
//
// A request runs once its KV-cache blocks fit the pool's budget (its
// prompt, less a cached prefix, plus its max_tokens when set); until then
// it waits in a FIFO queue, for at most queueTimeout. A running sequence
// that needs a block the pool cannot give is preempted: its blocks go back
// and it waits again at the front of the queue, to be recomputed (its
// prompt and the tokens generated so far, mostly from the prefix cache).
type scheduler struct {
	m            *model.Model
	tok          *tokenizer.Tokenizer
	maxTokens    int // per step
	maxSeqs      int
	queueTimeout time.Duration
	submit       chan *genRequest
	log          *slog.Logger
	onStep       func(generated int) // stats hook, may be nil

	waiting []*seqState
	stats   atomic.Pointer[kvStats] // a snapshot after every step, for metrics

	// A step's batch, kept for the next step.
	chunks []model.Chunk
	owners []*seqState
	done   []*seqState
}

// kvStats is what the scheduler publishes about its KV cache.
type kvStats struct {
	model.KVStats
	Queue       int
	Preemptions int64
}

var (
	// errQueueTimeout fails a request that waited too long for KV-cache
	// room; the router tries another coordinator, else answers 503.
	errQueueTimeout = errors.New("KV cache full")
	// errTooLarge fails a request whose blocks exceed the whole budget.
	errTooLarge = errors.New("request needs more KV cache than the budget")
)

func (s *scheduler) run(ctx context.Context) {
	var active []*seqState
	var preemptions int64
	// backedOff: a sequence was preempted for room, and none has finished
	// since. Nothing is admitted then while others run: the preempted
	// sequence would take back the room it gave up, and the step that
	// needed it would preempt it again, for ever.
	backedOff := false
	for {
		if len(active) == 0 && len(s.waiting) == 0 {
			select {
			case r := <-s.submit:
				s.enqueue(r)
			case <-ctx.Done():
				return
			}
		}
	recv:
		for {
			select {
			case r := <-s.submit:
				s.enqueue(r)
			default:
				break recv
			}
		}
		s.expire()
		for len(active) < s.maxSeqs && len(s.waiting) > 0 && !(backedOff && len(active) > 0) {
			st := s.waiting[0]
			if err := s.place(st); err != nil {
				if len(active) > 0 && errors.Is(err, model.ErrKVFull) {
					break // room comes back as sequences finish
				}
				if errors.Is(err, model.ErrKVFull) {
					err = fmt.Errorf("%w: %w", errTooLarge, err)
				}
				st.finish(genEvent{err: err})
			} else {
				active = append(active, st)
			}
			s.waiting = s.waiting[1:]
		}
		active = slices.DeleteFunc(active, func(st *seqState) bool {
			if err := st.req.ctx.Err(); err != nil {
				st.finish(genEvent{err: err})
				return true
			}
			return false
		})
		if ctx.Err() != nil {
			for _, st := range slices.Concat(active, s.waiting) {
				st.finish(genEvent{err: ctx.Err()})
			}
			return
		}
		if len(active) == 0 {
			continue
		}
		var preempted *seqState
		before := len(active)
		active, preempted = s.step(ctx, active)
		if preempted != nil {
			preemptions++
			backedOff = true
			s.waiting = append([]*seqState{preempted}, s.waiting...)
		} else if len(active) < before {
			backedOff = false // a sequence ended: its room is free
		}
		s.stats.Store(&kvStats{KVStats: s.m.KV.Stats(), Queue: len(s.waiting), Preemptions: preemptions})
	}
}

// enqueue makes r wait for KV-cache room.
func (s *scheduler) enqueue(r *genRequest) {
	s.waiting = append(s.waiting, s.newState(r))
}

func (s *scheduler) newState(r *genRequest) *seqState {
	st := &seqState{req: r, pending: slices.Clone(r.prompt), history: slices.Clone(r.prompt), queued: time.Now(),
		dec: s.tok.NewDecoder(), stop: sampling.NewStopper(r.stop)}
	if r.parse.cfg != nil {
		st.parser, _ = chat.NewParser(*r.parse.cfg) // admit validated the config
	}
	// Resumed tokens' text was sent by the coordinator that died: bring the
	// decoder, the stop matcher and the parser to where it left them.
	for _, t := range r.resumed {
		text, _ := st.stop.Push(s.piece(st, t))
		st.emit(text)
	}
	return st
}

// fork starts the forks of st, whose prompt is now computed: each gets a
// fork of its sequence (the prompt's blocks shared) and samples from its
// logits. One the pool or maxSeqs has no room for waits in the queue like
// any request, and finds the prompt's full blocks in the prefix cache. It
// returns the forks still running after sampling, and how many sampled.
func (s *scheduler) fork(st *seqState, running int) (started []*seqState, sampled int) {
	for _, r := range st.req.forks {
		f := s.newState(r)
		if running+len(started) < s.maxSeqs {
			f.seq = st.seq.Fork()
			if err := f.seq.Reserve(min(max(r.reserve, len(r.prompt)+1), s.m.Context)); err != nil {
				f.seq.Release()
				f.seq = nil
			}
		}
		if f.seq == nil {
			s.waiting = append(s.waiting, f)
			continue
		}
		f.cached, f.admitted, f.prefilled, f.pending = st.cached, true, true, nil
		f.logits = slices.Clone(st.logits)
		sampled++
		if !s.sample(f, f.logits) {
			started = append(started, f)
		}
	}
	st.req.forks = nil
	return started, sampled
}

// expire fails waiting requests whose client has gone or that waited past
// the queue timeout.
func (s *scheduler) expire() {
	s.waiting = slices.DeleteFunc(s.waiting, func(st *seqState) bool {
		switch {
		case st.req.ctx.Err() != nil:
			st.finish(genEvent{err: st.req.ctx.Err()})
		case time.Since(st.queued) > s.queueTimeout:
			st.finish(genEvent{err: fmt.Errorf("%w: waited %s in the queue", errQueueTimeout, s.queueTimeout)})
		default:
			return false
		}
		return true
	})
}

// place gives st a sequence: the longest cached prefix of what it must
// feed, and blocks for the rest and its max_tokens.
func (s *scheduler) place(st *seqState) error {
	seq := s.m.NewSequence()
	n := 0
	if !st.req.noCache {
		n = seq.Reuse(st.pending)
	}
	need := max(st.req.reserve, len(st.pending)+1)
	if err := seq.Reserve(min(need, s.m.Context)); err != nil {
		seq.Release()
		return err
	}
	if !st.admitted {
		st.cached, st.admitted = n, true
	}
	st.seq, st.pending = seq, st.pending[n:]
	return nil
}

// step runs one forward pass and returns the sequences still running,
// and one it preempted to make room, if any.
func (s *scheduler) step(ctx context.Context, active []*seqState) ([]*seqState, *seqState) {
	budget := s.maxTokens
	chunks, owners := s.chunks[:0], s.owners[:0]
	defer func() { // keep the buffers, not the sequences
		clear(chunks)
		clear(owners)
		s.chunks, s.owners = chunks, owners
	}()
	// Decoding sequences first: one token each, so that a long prompt
	// never stalls them; then prompt chunks in arrival order.
	for _, st := range active {
		if st.prefilled && budget > 0 {
			chunks = append(chunks, model.Chunk{Seq: st.seq, Tokens: st.pending, WantRouting: st.req.routing, Logits: st.logits[:0]})
			owners = append(owners, st)
			budget--
		}
	}
	for _, st := range active {
		if !st.prefilled && budget > 0 {
			n := min(len(st.pending), budget)
			chunks = append(chunks, model.Chunk{Seq: st.seq, Tokens: st.pending[:n], WantRouting: st.req.routing, Logits: st.logits[:0]})
			owners = append(owners, st)
			budget -= n
		}
	}
	if err := s.m.Step(ctx, chunks); err != nil {
		if errors.Is(err, model.ErrKVFull) && len(active) > 1 {
			// Make room: the newest sequence steps back and is recomputed
			// later; the others retry at once.
			st := active[len(active)-1]
			s.log.Info("KV cache full: preempting a sequence", "generated", st.generated, "err", err)
			st.seq.Release()
			st.seq, st.pending, st.prefilled = nil, slices.Clone(st.history), false
			st.logits = nil // a vocabulary's worth, not held while it waits
			st.queued = time.Now()
			return active[:len(active)-1], st
		}
		s.log.Warn("step failed", "sequences", len(owners), "err", err)
		for _, st := range owners {
			st.finish(genEvent{err: err})
		}
		return slices.DeleteFunc(active, func(st *seqState) bool { return slices.Contains(owners, st) }), nil
	}
	done := s.done[:0]
	defer func() { clear(done); s.done = done }()
	var forked []*seqState
	generated := 0
	for i, st := range owners {
		st.logits = chunks[i].Logits // its buffer, for the next step
		if r := chunks[i].Routing; r != nil {
			per := len(r) / len(chunks[i].Tokens)
			if !st.prefilled && !st.sentPrompt {
				st.promptRouting = append(st.promptRouting, r...)
			}
			st.lastRouting = r[len(r)-per:]
		}
		st.pending = st.pending[len(chunks[i].Tokens):]
		if len(st.pending) > 0 {
			continue // more prompt to feed
		}
		st.prefilled = true
		generated++
		if len(st.req.forks) > 0 {
			started, sampled := s.fork(st, len(active)+len(forked))
			forked, generated = append(forked, started...), generated+sampled
		}
		if s.sample(st, st.logits) {
			done = append(done, st)
		}
	}
	if s.onStep != nil {
		s.onStep(generated)
	}
	return append(slices.DeleteFunc(active, func(st *seqState) bool { return slices.Contains(done, st) }), forked...), nil
}

// sample picks the next token of st and reports whether st has finished.
func (s *scheduler) sample(st *seqState, logits []float32) bool {
	r, err := st.req.draw(logits)
	if err != nil {
		st.finish(genEvent{err: err})
		return true
	}
	st.generated++
	if r.Token == s.tok.EOS {
		st.end(genEvent{finish: pb.FinishReason_FINISH_REASON_STOP, eos: true}, st.rest())
		return true
	}
	st.req.sampler.Accept(r.Token)
	st.history = append(st.history, r.Token)
	text, stopped := st.stop.Push(s.piece(st, r.Token))
	ev := genEvent{token: r, sampled: true, deltas: st.emit(text), routing: st.lastRouting}
	if !st.sentPrompt {
		ev.promptRouting, ev.cached, st.sentPrompt = st.promptRouting, st.cached, true
	}
	st.req.events.push(ev)
	switch {
	case stopped:
		st.end(genEvent{finish: pb.FinishReason_FINISH_REASON_STOP}, "")
		return true
	case st.ends(r.Token):
		st.end(genEvent{finish: pb.FinishReason_FINISH_REASON_STOP}, st.rest())
		return true
	case st.req.complete(): // the grammar has ended
		st.end(genEvent{finish: pb.FinishReason_FINISH_REASON_STOP}, st.rest())
		return true
	case st.generated >= st.req.maxTokens || st.seq.Len()+1 > s.m.Context:
		st.end(genEvent{finish: pb.FinishReason_FINISH_REASON_LENGTH}, st.rest())
		return true
	}
	st.next[0] = r.Token
	st.pending = st.next[:]
	return false
}

// finish sends the last event and returns the sequence's blocks. Forks
// not yet started (its prompt was never computed) fail with it.
func (st *seqState) finish(ev genEvent) {
	if !st.sentPrompt {
		ev.cached, st.sentPrompt = st.cached, true
	}
	if st.seq != nil {
		st.seq.Release()
		st.seq = nil
	}
	st.logits = nil
	for _, r := range st.req.forks {
		r.events.push(genEvent{err: ev.err})
		r.events.close()
	}
	st.req.forks = nil
	st.req.events.push(ev)
	st.req.events.close()
}

// rest is the text still held back by the decoder and the stop matcher.
func (st *seqState) rest() string {
	text, stopped := st.stop.Push(st.dec.Flush())
	if stopped {
		return text
	}
	return text + st.stop.Flush()
}
