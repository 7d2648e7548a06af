package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// The scheduler's tests run the real engine on llama.cpp's tiny Mixtral
// (2 MoE layers, KV blocks of 32 positions per layer) with its real
// experts behind a wrapper that counts each step's rows and can fail or
// hold a step on demand, which real experts cannot. Greedy outputs are
// checked against llama.cpp's (testdata/golden) or, past its 16 tokens,
// against the engine decoding one sequence alone with no scheduler.

const schedModel = "../testdata/models/tiny-mixtral-f32.gguf"

// goldenRuns are llama.cpp's prompts and 16-token greedy continuations on
// the tiny model: 1, 7 and 33 tokens long.
func goldenRuns(t *testing.T) (prompts, greedy [][]int32) {
	t.Helper()
	b, err := os.ReadFile("../testdata/golden/tiny-mixtral-f32.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Prompts []struct {
			Prompt []int32 `json:"prompt"`
			Greedy []int32 `json:"greedy"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Prompts {
		prompts, greedy = append(prompts, p.Prompt), append(greedy, p.Greedy)
	}
	if len(prompts) != 3 || len(prompts[0]) != 1 || len(prompts[1]) != 7 || len(prompts[2]) != 33 {
		t.Fatalf("golden prompts of %d, want 1, 7 and 33 tokens", len(prompts))
	}
	return prompts, greedy
}

// stepExperts are the real experts, counting the rows of every call for
// the first layer (one call per step: every position the step feeds), and
// failing or holding the call of a chosen step.
type stepExperts struct {
	model.Experts
	mu     sync.Mutex
	rows   []int // per step
	failAt int   // 1-based step that fails; 0: none
	holdAt int   // 1-based step that waits for release
	held   chan struct{}
	resume chan struct{}
}

var errExperts = errors.New("experts unreachable")

func (e *stepExperts) Forward(ctx context.Context, layer int, x []float32, n int, experts []int32, out []float32) error {
	if layer == 0 {
		e.mu.Lock()
		e.rows = append(e.rows, n)
		step := len(e.rows)
		e.mu.Unlock()
		if step == e.holdAt {
			close(e.held)
			<-e.resume
		}
		if step == e.failAt {
			return errExperts
		}
	}
	return e.Experts.Forward(ctx, layer, x, n, experts, out)
}

func (e *stepExperts) stepRows() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.rows)
}

// schedRig is a scheduler on the tiny model, and what it saw after each
// step.
type schedRig struct {
	s    *scheduler
	ex   *stepExperts
	stop func() // ends the scheduler and waits for it; read steps after

	mu    sync.Mutex
	reqs  []*genRequest // in the order added
	taken []int         // events the test has read from each, under mu
	// after step i (0-based), steps[i][j] is how many events request j had
	// been sent, and queued[i] how many requests were waiting
	steps  [][]int
	queued []int
}

type rigConfig struct {
	budget, maxSeqs int
	kvBlocks        int // 0: no bound
	prefix          bool
	queueTimeout    time.Duration
	eos             int32 // -1: the file's
}

func newRig(t *testing.T, c rigConfig) *schedRig {
	t.Helper()
	f, err := model.Open(schedModel, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	ex := &stepExperts{Experts: m.Experts, held: make(chan struct{}), resume: make(chan struct{})}
	m.Experts = ex
	kv, err := model.NewKVCache(m, model.KVCacheConfig{Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	if c.kvBlocks > 0 {
		if kv, err = model.NewKVCache(m, model.KVCacheConfig{Bytes: int64(c.kvBlocks * kv.BlockBytes()), Prefix: c.prefix}); err != nil {
			t.Fatal(err)
		}
	}
	m.KV = kv
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		t.Fatal(err)
	}
	if c.eos != -1 {
		tok.EOS = c.eos
	}
	if c.queueTimeout == 0 {
		c.queueTimeout = time.Hour
	}
	r := &schedRig{ex: ex}
	r.s = &scheduler{m: m, tok: tok, maxTokens: c.budget, maxSeqs: c.maxSeqs, queueTimeout: c.queueTimeout,
		submit: make(chan *genRequest, 16), log: testLogger(t)}
	r.s.onStep = func(int) { // on the scheduler's goroutine
		r.mu.Lock()
		defer r.mu.Unlock()
		counts := make([]int, len(r.reqs))
		for j, q := range r.reqs { // sent: still buffered, or read by the test
			counts[j] = q.events.len() + r.taken[j]
		}
		r.steps = append(r.steps, counts)
		r.queued = append(r.queued, len(r.s.waiting))
	}
	return r
}

// add makes a greedy request for maxTokens tokens of prompt; reserve is
// the KV positions asked for up front (0: the prompt and one more, as for
// a request without max_tokens). It is submitted by start, in order.
func (r *schedRig) add(ctx context.Context, t *testing.T, prompt []int32, maxTokens, reserve int) *genRequest {
	t.Helper()
	sp, err := sampling.New(sampling.Params{TopP: 1, RepeatPenalty: 1}, r.s.m.Vocab) // temperature 0: greedy
	if err != nil {
		t.Fatal(err)
	}
	q := &genRequest{ctx: ctx, prompt: prompt, promptLen: len(prompt), sampler: sp, maxTokens: maxTokens, reserve: reserve,
		events: newEventQueue()}
	r.mu.Lock()
	r.reqs, r.taken = append(r.reqs, q), append(r.taken, 0)
	r.mu.Unlock()
	return q
}

// start submits the requests added so far (all waiting before the first
// step) and runs the scheduler until stop or the end of the test.
func (r *schedRig) start(t *testing.T) {
	for _, q := range r.reqs {
		r.s.submit <- q
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.s.run(ctx) }()
	r.stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(r.stop)
}

// outcome is what a request's events said.
type outcome struct {
	tokens []int32
	last   genEvent // the final event
	events int
}

// wait reads the events of request q until the scheduler closes their
// channel; a token event after the final one, or two final ones, fail the
// test. Each is taken and counted under the rig's lock, so that what a
// step saw as sent does not depend on how far the test has read.
func (r *schedRig) wait(t *testing.T, q *genRequest) outcome {
	t.Helper()
	r.mu.Lock()
	j := slices.Index(r.reqs, q)
	r.mu.Unlock()
	var o outcome
	final := false
	for deadline := time.Now().Add(60 * time.Second); ; {
		r.mu.Lock()
		ev, got, open := q.events.tryPop()
		if got {
			r.taken[j]++
		}
		r.mu.Unlock()
		switch {
		case !open:
			if !final {
				t.Fatal("events closed without a final event")
			}
			return o
		case !got:
			if time.Now().After(deadline) {
				t.Fatalf("no final event within 60 s (%d tokens so far)", len(o.tokens))
			}
			time.Sleep(time.Millisecond) // nothing sent yet
			continue
		}
		o.events++
		if final {
			t.Fatalf("event %+v after the final one", ev)
		}
		if ev.sampled {
			o.tokens = append(o.tokens, ev.token.Token)
		} else {
			o.last, final = ev, true
		}
	}
}

// greedyAlone decodes prompt greedily for n tokens on a model of its own,
// one sequence, no scheduler: the reference past llama.cpp's 16 tokens.
func greedyAlone(t *testing.T, prompt []int32, n int) []int32 {
	t.Helper()
	f, err := model.Open(schedModel, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	seq := m.NewSequence()
	var out []int32
	next := prompt
	for range n {
		l, err := m.Forward(t.Context(), []model.Chunk{{Seq: seq, Tokens: next}})
		if err != nil {
			t.Fatal(err)
		}
		best := 0
		for i, v := range l[0] {
			if v > l[0][best] {
				best = i
			}
		}
		out = append(out, int32(best))
		next = []int32{int32(best)}
	}
	return out
}

func checkRun(t *testing.T, name string, o outcome, want []int32, finish pb.FinishReason) {
	t.Helper()
	if o.last.err != nil || o.last.finish != finish || !slices.Equal(o.tokens, want) {
		t.Errorf("%s: tokens %v, finish %v (%v); want %v, finish %v", name, o.tokens, o.last.finish, o.last.err, want, finish)
	}
}

// firstStep is the 1-based step after which request j had its first event.
func (r *schedRig) firstStep(j int) int {
	for i, c := range r.steps {
		if c[j] > 0 {
			return i + 1
		}
	}
	return 0
}

// TestSchedulerChunksUnderBudget submits the three golden prompts (1, 33
// and 7 tokens, in that order) at once with a budget of 4 tokens a step.
// The documented policy — decoding sequences first, one token each, then
// prompt chunks in arrival order, all under the budget — gives, worked by
// hand: steps 1–11 feed A's token and B's prompt 3 at a time (B's first
// token after step 11) and A decodes from step 2; steps 12–14 feed A, B
// and 2 of C's prompt, step 15 its last token (C's first token after step
// 15); A ends after step 16, B after 26, C after 30. Rows per step:
// 4 × 14, 3, 3, 2 × 10, 1 × 4 — 86 positions, every prompt token and every
// generated token but the last. Every run equals llama.cpp's, and a
// decoding sequence gets exactly one token every step.
func TestSchedulerChunksUnderBudget(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	r := newRig(t, rigConfig{budget: 4, maxSeqs: 8, eos: -1})
	order := []int{0, 2, 1} // A: 1 token, B: 33, C: 7
	var reqs []*genRequest
	for _, p := range order {
		reqs = append(reqs, r.add(t.Context(), t, prompts[p], 16, 0))
	}
	r.start(t)
	for j, q := range reqs {
		checkRun(t, fmt.Sprintf("request %c", 'A'+j), r.wait(t, q), greedy[order[j]], pb.FinishReason_FINISH_REASON_LENGTH)
	}
	r.stop()
	var want []int
	for _, n := range []struct{ rows, steps int }{{4, 14}, {3, 2}, {2, 10}, {1, 4}} {
		for range n.steps {
			want = append(want, n.rows)
		}
	}
	if got := r.ex.stepRows(); !slices.Equal(got, want) {
		t.Errorf("rows per step %v, want %v", got, want)
	}
	for j, first := range []int{1, 11, 15} {
		if got := r.firstStep(j); got != first {
			t.Errorf("request %c: first token after step %d, want %d", 'A'+j, got, first)
		}
		// From its first token to its last, one token every step; the
		// last step sends the final event too.
		for k := 1; k < 16 && first+k <= len(r.steps); k++ {
			want := 1
			if k == 15 {
				want = 2
			}
			if d := r.steps[first+k-1][j] - r.steps[first+k-2][j]; d != want {
				t.Errorf("request %c: %d events at step %d, want %d (decoding is never held back)", 'A'+j, d, first+k, want)
			}
		}
	}
}

// TestSchedulerMaxSequences: with room for one sequence, the second
// request waits in the queue and starts only after the first has sent its
// final event.
func TestSchedulerMaxSequences(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	r := newRig(t, rigConfig{budget: 64, maxSeqs: 1, eos: -1})
	a := r.add(t.Context(), t, prompts[1], 16, 0)
	b := r.add(t.Context(), t, prompts[0], 16, 0)
	r.start(t)
	checkRun(t, "first", r.wait(t, a), greedy[1], pb.FinishReason_FINISH_REASON_LENGTH)
	checkRun(t, "second", r.wait(t, b), greedy[0], pb.FinishReason_FINISH_REASON_LENGTH)
	r.stop()
	for i, c := range r.steps {
		if c[1] > 0 && c[0] < 17 {
			t.Fatalf("after step %d: the second request has %d events while the first has %d of 17", i+1, c[1], c[0])
		}
		if c[0] < 17 && r.queued[i] != 1 {
			t.Errorf("after step %d: %d waiting, want 1", i+1, r.queued[i])
		}
	}
}

// TestSchedulerKVQueue: with a KV budget of 4 blocks (2 per layer), a
// request that reserved 49 positions takes them all; the next, asking for
// 23 positions (2 blocks), waits in the queue until the first ends, then
// runs. A request needing more than the whole budget fails at once with
// errTooLarge, wrapping model.ErrKVFull.
func TestSchedulerKVQueue(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	r := newRig(t, rigConfig{budget: 64, maxSeqs: 8, kvBlocks: 4, eos: -1})
	big := r.add(t.Context(), t, prompts[2], 16, 33+16)
	small := r.add(t.Context(), t, prompts[1], 16, 7+16)
	r.start(t)
	checkRun(t, "first", r.wait(t, big), greedy[2], pb.FinishReason_FINISH_REASON_LENGTH)
	checkRun(t, "queued", r.wait(t, small), greedy[1], pb.FinishReason_FINISH_REASON_LENGTH)
	sawQueue := false
	r.mu.Lock() // the scheduler runs on: read under its lock
	for i, c := range r.steps {
		if c[1] > 0 && c[0] < 17 {
			t.Errorf("after step %d: the queued request has %d events before the first ended", i+1, c[1])
		}
		sawQueue = sawQueue || r.queued[i] == 1
	}
	r.mu.Unlock()
	if !sawQueue {
		t.Error("the second request never waited in the queue")
	}
	huge := r.add(t.Context(), t, prompts[1], 200, 7+200)
	r.s.submit <- huge
	o := r.wait(t, huge)
	if len(o.tokens) != 0 || !errors.Is(o.last.err, errTooLarge) || !errors.Is(o.last.err, model.ErrKVFull) {
		t.Errorf("a request for 207 positions (14 blocks of 4): %d tokens, error %v; want errTooLarge", len(o.tokens), o.last.err)
	}
}

// TestSchedulerPreemption: two requests without max_tokens (reserving
// their prompt and one position) on a budget of 6 blocks. Both start with
// one block per layer; B (20 prompt tokens) needs its second at its 13th
// token and gets it, A (7) at its 26th finds the pool full, and B, the
// newest, is preempted: its blocks go back, A goes on, and B is computed
// again (prompt and tokens so far) when there is room. Both give the same
// 40 tokens as a sequence decoded alone, with no token repeated or lost;
// the first 16 of A's are llama.cpp's. With the prefix cache on and off.
func TestSchedulerPreemption(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	pa, pbt := prompts[1], prompts[2][:20]
	wantA, wantB := greedyAlone(t, pa, 40), greedyAlone(t, pbt, 40)
	if !slices.Equal(wantA[:16], greedy[1]) {
		t.Fatalf("the engine alone: %v, llama.cpp %v", wantA[:16], greedy[1])
	}
	for _, prefix := range []bool{true, false} {
		t.Run(fmt.Sprintf("prefix=%v", prefix), func(t *testing.T) {
			r := newRig(t, rigConfig{budget: 64, maxSeqs: 8, kvBlocks: 6, prefix: prefix, eos: -1})
			a := r.add(t.Context(), t, pa, 40, 0)
			b := r.add(t.Context(), t, pbt, 40, 0)
			r.start(t)
			checkRun(t, "A", r.wait(t, a), wantA, pb.FinishReason_FINISH_REASON_LENGTH)
			checkRun(t, "B", r.wait(t, b), wantB, pb.FinishReason_FINISH_REASON_LENGTH)
			r.stop()
			if st := r.s.stats.Load(); st == nil || st.Preemptions < 1 {
				t.Errorf("KV stats %+v, want a preemption", st)
			}
			// B stopped advancing while A went on alone, then resumed.
			paused := false
			for i := 1; i < len(r.steps); i++ {
				if r.steps[i][1] == r.steps[i-1][1] && r.steps[i][1] > 0 && r.steps[i][1] < 41 && r.steps[i][0] > r.steps[i-1][0] {
					paused = true
				}
			}
			if !paused {
				t.Error("B never stood back while A decoded")
			}
		})
	}
}

// TestSchedulerQueueTimeout: a request waiting for KV room longer than
// the queue timeout fails with errQueueTimeout; the one running is
// unaffected. The first step is held (the experts do not answer) for
// twice the timeout, so the waiting request has waited past it by the
// time the scheduler looks again.
func TestSchedulerQueueTimeout(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	const timeout = 200 * time.Millisecond
	r := newRig(t, rigConfig{budget: 64, maxSeqs: 8, kvBlocks: 4, queueTimeout: timeout, eos: -1})
	r.ex.holdAt = 1
	big := r.add(t.Context(), t, prompts[2], 16, 33+16)
	late := r.add(t.Context(), t, prompts[1], 16, 7+16)
	r.start(t)
	<-r.ex.held
	time.Sleep(2 * timeout) // the fault: the step takes longer than the queue timeout
	close(r.ex.resume)
	o := r.wait(t, late)
	if len(o.tokens) != 0 || !errors.Is(o.last.err, errQueueTimeout) {
		t.Errorf("the waiting request: %d tokens, error %v; want errQueueTimeout", len(o.tokens), o.last.err)
	}
	checkRun(t, "running", r.wait(t, big), greedy[2], pb.FinishReason_FINISH_REASON_LENGTH)
}

// TestSchedulerStepFailure: when a step's experts fail, every sequence in
// that step ends with the error (after the tokens it had), and a request
// that comes after runs as if nothing had happened.
func TestSchedulerStepFailure(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	r := newRig(t, rigConfig{budget: 64, maxSeqs: 8, eos: -1})
	r.ex.failAt = 5 // the prompts, then tokens 2–4: the fifth step fails
	a := r.add(t.Context(), t, prompts[1], 16, 0)
	b := r.add(t.Context(), t, prompts[2], 16, 0)
	r.start(t)
	for j, q := range []*genRequest{a, b} {
		o := r.wait(t, q)
		want := greedy[1+j][:4]
		if !errors.Is(o.last.err, errExperts) || !slices.Equal(o.tokens, want) {
			t.Errorf("request %d: tokens %v, error %v; want %v then the experts' error", j, o.tokens, o.last.err, want)
		}
	}
	c := r.add(t.Context(), t, prompts[0], 16, 0)
	r.s.submit <- c
	checkRun(t, "after the failure", r.wait(t, c), greedy[0], pb.FinishReason_FINISH_REASON_LENGTH)
}

// TestSchedulerEOS: sampling the end-of-sequence token ends the request
// with STOP, flagged eos, and sends no event for that token. Here the
// end-of-sequence token is made the fifth of llama.cpp's greedy run.
func TestSchedulerEOS(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	eos := greedy[1][4]
	if slices.Contains(greedy[1][:4], eos) {
		t.Fatalf("token %d occurs before the fifth", eos)
	}
	r := newRig(t, rigConfig{budget: 64, maxSeqs: 8, eos: eos})
	q := r.add(t.Context(), t, prompts[1], 16, 0)
	r.start(t)
	o := r.wait(t, q)
	checkRun(t, "eos", o, greedy[1][:4], pb.FinishReason_FINISH_REASON_STOP)
	if !o.last.eos {
		t.Errorf("final event %+v, want eos set", o.last)
	}
}

// TestSchedulerCancel: a request whose client has gone while it waits
// ends with the context's error and no token, and one cancelled while
// running ends with it after the tokens it had; the other runs on.
func TestSchedulerCancel(t *testing.T) {
	prompts, greedy := goldenRuns(t)
	r := newRig(t, rigConfig{budget: 64, maxSeqs: 1, eos: -1})
	r.ex.holdAt = 2
	ctxRun, cancelRun := context.WithCancel(t.Context())
	ctxWait, cancelWait := context.WithCancel(t.Context())
	running := r.add(ctxRun, t, prompts[1], 16, 0)
	waiting := r.add(ctxWait, t, prompts[0], 16, 0)
	other := r.add(t.Context(), t, prompts[2], 16, 0)
	r.start(t)
	<-r.ex.held // step 2: the running request has its first token
	cancelRun()
	cancelWait()
	close(r.ex.resume)
	o := r.wait(t, running)
	if !errors.Is(o.last.err, context.Canceled) || len(o.tokens) < 1 || len(o.tokens) >= 16 || !slices.Equal(o.tokens, greedy[1][:len(o.tokens)]) {
		t.Errorf("cancelled while running: tokens %v, error %v; want a prefix of %v, then context.Canceled", o.tokens, o.last.err, greedy[1])
	}
	if o := r.wait(t, waiting); len(o.tokens) != 0 || !errors.Is(o.last.err, context.Canceled) {
		t.Errorf("cancelled while waiting: tokens %v, error %v; want none, context.Canceled", o.tokens, o.last.err)
	}
	checkRun(t, "other", r.wait(t, other), greedy[2], pb.FinishReason_FINISH_REASON_LENGTH)
}
