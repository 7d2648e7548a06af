package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// TestForkedChoices: the choices of an n > 1 request forked from one
// prefill generate what each would alone, whether the pool has room for
// the forks at once, or has room for one sequence only (the forks then
// wait in the queue, or are preempted, and find the prompt in the prefix
// cache); and when the first choice fails before its prompt is computed,
// the others fail with it.
func TestForkedChoices(t *testing.T) {
	f, err := model.Open("../testdata/models/tiny-mixtral-f32.gguf", gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		t.Fatal(err)
	}
	tok.EOS = -1 // every choice runs to max_tokens
	prompt := make([]int32, 40)
	for i := range prompt {
		prompt[i] = int32(i*53%500) + 1
	}
	const maxTokens = 8
	request := func(ctx context.Context, seed uint64) *genRequest {
		sp, err := sampling.New(sampling.Params{Temperature: 1, TopP: 1, RepeatPenalty: 1, Seed: seed}, m.Vocab)
		if err != nil {
			t.Fatal(err)
		}
		return &genRequest{ctx: ctx, prompt: prompt, promptLen: len(prompt), sampler: sp, maxTokens: maxTokens,
			reserve: len(prompt) + maxTokens, events: newEventQueue()}
	}
	tokens := func(r *genRequest) ([]int32, error) {
		var out []int32
		for {
			ev, ok := r.events.pop(t.Context())
			if !ok {
				break
			}
			if ev.err != nil {
				return out, ev.err
			}
			if ev.sampled {
				out = append(out, ev.token.Token)
			}
		}
		return out, nil
	}
	// run starts a scheduler on m with a pool of its own; the caller stops
	// it before the next (they share m).
	run := func(t *testing.T, kvBytes int64) (*scheduler, func()) {
		kv, err := model.NewKVCache(m, model.KVCacheConfig{Bytes: kvBytes, Prefix: true})
		if err != nil {
			t.Fatal(err)
		}
		m.KV = kv
		s := &scheduler{m: m, tok: tok, maxTokens: 256, maxSeqs: 16, queueTimeout: time.Minute, submit: make(chan *genRequest), log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.run(ctx); close(done) }()
		return s, func() { cancel(); <-done }
	}
	seeds := []uint64{5, 6, 7}

	// Each choice alone, sampled with its seed: what the forks must give.
	s, stop := run(t, 0)
	var alone [][]int32
	for _, seed := range seeds {
		r := request(t.Context(), seed)
		s.submit <- r
		got, err := tokens(r)
		if err != nil || len(got) != maxTokens {
			t.Fatalf("alone: %v, %v", got, err)
		}
		alone = append(alone, got)
	}
	stop()
	if slices.Equal(alone[0], alone[1]) && slices.Equal(alone[1], alone[2]) {
		t.Fatalf("the seeds draw the same tokens, %v: the test would not tell choices apart", alone[0])
	}

	for _, c := range []struct {
		name   string
		blocks int // per layer; 0: no budget
		forked bool
	}{
		// The forks start from the first's sequence: the prompt is looked
		// up in the prefix cache once, when the first is placed.
		{"room for all", 0, true},
		// The prompt and max_tokens need 2 blocks a layer, all there is:
		// the forks wait, and are placed later from the prefix cache.
		{"room for one", 2, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var budget int64
			if c.blocks > 0 {
				kv, _ := model.NewKVCache(m, model.KVCacheConfig{})
				budget = int64(c.blocks*m.Layers) * int64(kv.BlockBytes())
			}
			s, stop := run(t, budget)
			defer stop()
			rs := []*genRequest{request(t.Context(), seeds[0]), request(t.Context(), seeds[1]), request(t.Context(), seeds[2])}
			rs[0].forks = rs[1:]
			s.submit <- rs[0]
			for i, r := range rs {
				got, err := tokens(r)
				if err != nil || !slices.Equal(got, alone[i]) {
					t.Errorf("choice %d: %v, %v; alone %v", i, got, err, alone[i])
				}
			}
			// Published after every step; the last placement was steps
			// before the last token.
			st := s.stats.Load()
			if forked := st.Lookups == int64(len(prompt)); forked != c.forked || (!c.forked && st.Hits == 0) {
				t.Errorf("%d prompt tokens looked up, %d found: forked %v, want %v", st.Lookups, st.Hits, forked, c.forked)
			}
		})
	}

	t.Run("the first fails", func(t *testing.T) {
		s, stop := run(t, 0)
		defer stop()
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // gone before its prompt is computed
		rs := []*genRequest{request(ctx, 1), request(ctx, 2)}
		rs[0].forks = rs[1:]
		s.submit <- rs[0]
		for i, r := range rs {
			if _, err := tokens(r); !errors.Is(err, context.Canceled) {
				t.Errorf("choice %d: %v, want the first's context.Canceled", i, err)
			}
		}
	})
}
