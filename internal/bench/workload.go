package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
)

// The workloads that exercise the prefix cache (see Config.Workload).
const (
	// MultiTurn: conversations of 10 turns, each adding about 100 tokens
	// and then the answer to what the next turn resends.
	MultiTurn = "multi-turn"
	// SharedPrefix: streams sharing a 1,000-token system prompt, each with
	// its own 50-token question, arriving one after another (each once
	// the one before has its first token).
	SharedPrefix = "shared-prefix"
)

const (
	turns          = 10
	turnTokens     = 100
	sharedTokens   = 1000
	questionTokens = 50
)

// reply is one request's outcome.
type reply struct {
	ttft   time.Duration
	cached int
	tokens []int32
}

// requester runs one greedy request of prompt and gen tokens, with the
// prefix cache used or not, calling first (when not nil) as its first
// token arrives.
type requester func(ctx context.Context, prompt []int32, gen int, cache bool, first func()) (reply, error)

// singleRequester runs requests one at a time in this process, on a pool
// with prefix caching.
func singleRequester(m *model.Model) requester {
	var mu sync.Mutex
	return func(ctx context.Context, prompt []int32, gen int, cache bool, first func()) (reply, error) {
		mu.Lock() // one sequence at a time: the pool is not shared between goroutines
		defer mu.Unlock()
		start := time.Now()
		seq := m.NewSequence()
		defer seq.Release()
		n := 0
		if cache {
			n = seq.Reuse(prompt)
		}
		if err := seq.Reserve(len(prompt) + gen); err != nil {
			return reply{}, err
		}
		out, err := m.Forward(ctx, []model.Chunk{{Seq: seq, Tokens: prompt[n:]}})
		if err != nil {
			return reply{}, err
		}
		r := reply{ttft: time.Since(start), cached: n, tokens: []int32{sampling.Argmax(out[0])}}
		if first != nil {
			first()
		}
		for len(r.tokens) < gen {
			out, err := m.Forward(ctx, []model.Chunk{{Seq: seq, Tokens: r.tokens[len(r.tokens)-1:]}})
			if err != nil {
				return reply{}, err
			}
			r.tokens = append(r.tokens, sampling.Argmax(out[0]))
		}
		return r, nil
	}
}

// clusterRequester streams requests through a router.
func clusterRequester(url string) requester {
	return func(ctx context.Context, prompt []int32, gen int, cache bool, first func()) (reply, error) {
		body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": gen, "temperature": 0, "stream": true,
			"return_token_ids": true, "cache_prompt": cache, "stream_options": map[string]bool{"include_usage": true}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(url, "/")+"/v1/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return reply{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return reply{}, fmt.Errorf("bench: %s: %s", resp.Status, b)
		}
		var r reply
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			var ev struct {
				Choices []struct {
					TokenIDs []int32 `json:"token_ids"`
				} `json:"choices"`
				Usage *struct {
					Details struct {
						Cached int `json:"cached_tokens"`
					} `json:"prompt_tokens_details"`
				} `json:"usage"`
			}
			if json.Unmarshal([]byte(data), &ev) != nil {
				continue
			}
			if ev.Usage != nil {
				r.cached = ev.Usage.Details.Cached
			}
			if len(ev.Choices) > 0 && len(ev.Choices[0].TokenIDs) > 0 {
				if len(r.tokens) == 0 {
					r.ttft = time.Since(start)
					if first != nil {
						first()
					}
				}
				r.tokens = append(r.tokens, ev.Choices[0].TokenIDs...)
			}
		}
		if err := sc.Err(); err != nil {
			return r, err
		}
		if len(r.tokens) == 0 {
			return r, fmt.Errorf("bench: no tokens")
		}
		return r, nil
	}
}

// workload runs one measurement of a prefix-cache workload with conc
// conversations (multi-turn) or streams (shared-prefix); seed makes its
// prompts its own, so that no run finds another's in the cache.
func workload(ctx context.Context, req requester, name string, cache bool, vocab, conc, gt, seed int) (Run, error) {
	r := Run{Workload: name, PrefixCache: map[bool]string{true: "on", false: "off"}[cache], Concurrency: conc}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	switch name {
	case MultiTurn:
		byTurn := make([][]float64, turns)
		var prefill time.Duration
		for c := range conc {
			wg.Go(func() {
				var history []int32
				for t := range turns {
					history = append(history, prompt(vocab, turnTokens, seed*1000+c*turns+t)...)
					rep, err := req(ctx, history, gt, cache, nil)
					if err != nil {
						fail(err)
						return
					}
					history = append(history, rep.tokens...)
					mu.Lock()
					byTurn[t] = append(byTurn[t], ms(rep.ttft))
					r.CachedTokens += rep.cached
					prefill += rep.ttft
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, xs := range byTurn {
			if len(xs) > 0 {
				r.TTFTByTurn = append(r.TTFTByTurn, percentile(xs, 0.5))
			}
		}
		r.PrefillMs = ms(prefill)
	case SharedPrefix:
		shared := prompt(vocab, sharedTokens, seed*1000)
		var ttft []float64
		var prefill time.Duration
		for s := range conc {
			started := make(chan struct{})
			signal := sync.OnceFunc(func() { close(started) })
			wg.Go(func() {
				defer signal()
				p := slices.Concat(shared, prompt(vocab, questionTokens, seed*1000+s+1))
				rep, err := req(ctx, p, gt, cache, signal)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				ttft = append(ttft, ms(rep.ttft))
				r.CachedTokens += rep.cached
				prefill += rep.ttft
				mu.Unlock()
			})
			<-started // the next stream arrives once this one has its first token
		}
		wg.Wait()
		r.PrefillMs = ms(prefill)
		if len(ttft) > 0 {
			r.TTFTp50, r.TTFTp99 = percentile(ttft, 0.5), percentile(ttft, 0.99)
		}
	default:
		return r, fmt.Errorf("bench: unknown workload %q (want %s or %s)", name, MultiTurn, SharedPrefix)
	}
	return r, firstErr
}
