package coordinator

import (
	"context"
	"log/slog"
	"slices"

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
	topLogprobs int
	maxTokens   int
	// reserve is how many positions the KV cache is sized for up front:
	// the prompt plus a max_tokens the client set, or 0 (a request without
	// one may run to the context length, but most end far sooner; its cache
	// grows as it goes).
	reserve int
	stop    []string
	routing bool // return the experts chosen
	// events receives one event per generated token and a final one (with
	// a finish reason or an error). It is buffered for all of them, so the
	// scheduler never waits for a slow client.
	events chan genEvent
}

type genEvent struct {
	token   sampling.Result // when sampled
	sampled bool
	routing []int32 // layers × k, with returnRouting
	// promptRouting (positions × layers × k) comes with the first token.
	promptRouting []int32
	text          string
	finish        pb.FinishReason
	eos           bool // the finish came from sampling the end-of-sequence token
	err           error
}

// seqState is a running sequence.
type seqState struct {
	req       *genRequest
	seq       *model.Sequence
	pending   []int32   // tokens to feed next: the rest of the prompt, or next
	next      [1]int32  // the last sampled token
	logits    []float32 // the buffer Forward writes this sequence's logits into
	prefilled bool      // the whole prompt is in the cache
	generated int
	dec       *tokenizer.Decoder
	stop      *sampling.Stopper
	// routing of the prompt so far (with req.routing), and of the last
	// position fed
	promptRouting, lastRouting []int32
	sentPrompt                 bool
}

// scheduler runs continuous batching: every step advances each running
// sequence by one token and feeds prompt chunks of new ones, under a token
// budget, as one forward pass. One goroutine (run) owns all sequences.
type scheduler struct {
	m         *model.Model
	tok       *tokenizer.Tokenizer
	maxTokens int // per step
	maxSeqs   int
	submit    chan *genRequest
	log       *slog.Logger
	onStep    func(generated int) // stats hook, may be nil

	// A step's batch, kept for the next step.
	chunks []model.Chunk
	owners []*seqState
	done   []*seqState
}

func (s *scheduler) run(ctx context.Context) {
	var active []*seqState
	for {
		if len(active) == 0 {
			select {
			case r := <-s.submit:
				active = append(active, s.start(r))
			case <-ctx.Done():
				return
			}
		}
	admit:
		for len(active) < s.maxSeqs {
			select {
			case r := <-s.submit:
				active = append(active, s.start(r))
			default:
				break admit
			}
		}
		active = slices.DeleteFunc(active, func(st *seqState) bool {
			if err := st.req.ctx.Err(); err != nil {
				st.finish(genEvent{err: err})
				return true
			}
			return false
		})
		if len(active) == 0 {
			continue
		}
		if ctx.Err() != nil {
			for _, st := range active {
				st.finish(genEvent{err: ctx.Err()})
			}
			return
		}
		active = s.step(ctx, active)
	}
}

func (s *scheduler) start(r *genRequest) *seqState {
	st := &seqState{req: r, seq: s.m.NewSequence(), pending: slices.Clone(r.prompt),
		dec: s.tok.NewDecoder(), stop: sampling.NewStopper(r.stop)}
	st.seq.Reserve(r.reserve)
	// Resumed tokens' text was sent by the coordinator that died: bring the
	// decoder and the stop matcher to where it left them.
	for _, t := range r.resumed {
		st.stop.Push(st.dec.Next(t))
	}
	return st
}

// step runs one forward pass and returns the sequences still running.
func (s *scheduler) step(ctx context.Context, active []*seqState) []*seqState {
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
		s.log.Warn("step failed", "sequences", len(owners), "err", err)
		for _, st := range owners {
			st.finish(genEvent{err: err})
		}
		return slices.DeleteFunc(active, func(st *seqState) bool { return slices.Contains(owners, st) })
	}
	done := s.done[:0]
	defer func() { clear(done); s.done = done }()
	generated := 0
	for i, st := range owners {
		st.logits = chunks[i].Logits // its buffer, for the next step
		if r := chunks[i].Routing; r != nil {
			per := len(r) / len(chunks[i].Tokens)
			if !st.prefilled {
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
		if s.sample(st, st.logits) {
			done = append(done, st)
		}
	}
	if s.onStep != nil {
		s.onStep(generated)
	}
	return slices.DeleteFunc(active, func(st *seqState) bool { return slices.Contains(done, st) })
}

// sample picks the next token of st and reports whether st has finished.
func (s *scheduler) sample(st *seqState, logits []float32) bool {
	r := st.req.sampler.Sample(logits)
	st.generated++
	if r.Token == s.tok.EOS {
		st.finish(genEvent{text: st.rest(), finish: pb.FinishReason_FINISH_REASON_STOP, eos: true})
		return true
	}
	st.req.sampler.Accept(r.Token)
	text, stopped := st.stop.Push(st.dec.Next(r.Token))
	ev := genEvent{token: r, sampled: true, text: text, routing: st.lastRouting}
	if !st.sentPrompt {
		ev.promptRouting, st.sentPrompt = st.promptRouting, true
	}
	st.req.events <- ev
	switch {
	case stopped:
		st.finish(genEvent{finish: pb.FinishReason_FINISH_REASON_STOP})
		return true
	case st.generated >= st.req.maxTokens || st.seq.Len()+1 > s.m.Context:
		st.finish(genEvent{text: st.rest(), finish: pb.FinishReason_FINISH_REASON_LENGTH})
		return true
	}
	st.next[0] = r.Token
	st.pending = st.next[:]
	return false
}

func (st *seqState) finish(ev genEvent) {
	st.req.events <- ev
	close(st.req.events)
}

// rest is the text still held back by the decoder and the stop matcher.
func (st *seqState) rest() string {
	text, stopped := st.stop.Push(st.dec.Flush())
	if stopped {
		return text
	}
	return text + st.stop.Flush()
}
