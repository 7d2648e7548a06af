// Package bench measures serving speed: prefill and decode rates,
// time to first token and inter-token latency at several concurrencies,
// either in one process (the engine alone) or through a cluster's
// OpenAI API, and the machine's memory read bandwidth that decode speed
// is bounded by.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Config of a benchmark.
type Config struct {
	ModelPath    string   // the model (single mode, and for its census)
	URL          string   // cluster mode: the router to load
	Modes        []string // "single" and/or "cluster"
	Concurrency  []int
	PromptTokens int
	GenTokens    int
	// Rounds repeats every (concurrency, mode) measurement, the modes
	// alternating within a round, and reports each figure's median. The
	// machine's memory bandwidth can swing by half within a minute; modes
	// compared round by round saw the same machine.
	Rounds int
	// Workload, when set (MultiTurn or SharedPrefix), measures the prefix
	// cache instead: each of PrefixCache ("on", "off") alternated like the
	// modes.
	Workload    string
	PrefixCache []string
}

// Run is one measurement.
type Run struct {
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	PrefillTokS float64 `json:"prefill_tok_s"`
	DecodeTokS  float64 `json:"decode_tok_s"`
	TTFTp50     float64 `json:"ttft_ms_p50"`
	TTFTp99     float64 `json:"ttft_ms_p99"`
	ITLp50      float64 `json:"itl_ms_p50"`
	ITLp99      float64 `json:"itl_ms_p99"`

	// Network-namespace cluster only (bench --netns): the round trip added
	// between the coordinator and each node and what added it, the nodes,
	// activation bytes on the wire per generated token per node (both
	// ways), and, for one stream, the floor 1 / (1/r₀ + MoE layers × RTT)
	// from the 0 ms single-stream rate r₀.
	RTTms                 *float64 `json:"rtt_ms,omitempty"`
	Delay                 string   `json:"delay,omitempty"`
	ExpertNodes           int      `json:"expert_nodes,omitempty"`
	WireBytesPerTokenNode float64  `json:"wire_bytes_per_token_per_node,omitempty"`
	FloorTokS             float64  `json:"floor_tok_s,omitempty"`

	// Prefix-cache workloads only.
	Workload     string    `json:"workload,omitempty"`
	PrefixCache  string    `json:"prefix_cache,omitempty"` // "on" or "off"
	CachedTokens int       `json:"cached_tokens"`          // prompt tokens served from the cache, summed
	TTFTByTurn   []float64 `json:"ttft_ms_by_turn,omitempty"`
	PrefillMs    float64   `json:"prefill_ms,omitempty"` // every request's time to first token, summed
}

// ModelInfo is what bounds the speed.
type ModelInfo struct {
	Name                string  `json:"name"`
	ActiveBytesPerToken int64   `json:"active_bytes_per_token"`
	BandwidthGBs        float64 `json:"memory_read_gb_s"`
	DecodeLimitTokS     float64 `json:"decode_limit_tok_s"` // bandwidth ÷ active bytes
	KVBytesPerToken     int     `json:"kv_bytes_per_token"`
	// PlainKVBytesPerToken is, for MLA, what per-head keys and values
	// would take at the same shape; 0 otherwise.
	PlainKVBytesPerToken int `json:"plain_kv_bytes_per_token,omitempty"`
	// KVBytesAtContext is what one sequence of the full context holds in
	// all, sliding-window layers keeping only their window.
	KVBytesAtContext int `json:"kv_bytes_at_context"`
	Context          int `json:"context"`
	SlidingWindow    int `json:"sliding_window,omitempty"`
}

// Report is the benchmark's output.
type Report struct {
	Runs  []Run     `json:"runs"`
	Model ModelInfo `json:"model"`
	// Ratios compare cluster with single decode when both were measured.
	Ratios []Ratio `json:"cluster_vs_single,omitempty"`
}

// Ratio is the cluster's decode rate over single mode's at one
// concurrency: the median over rounds of each round's ratio.
type Ratio struct {
	Concurrency int     `json:"concurrency"`
	Decode      float64 `json:"decode_ratio"`
}

// ActiveBytes is what decoding one token reads: every shared tensor but
// the embedding table (one row of it), plus k of n experts in each layer.
func ActiveBytes(f *model.File) int64 {
	var shared, routed int64
	for _, t := range f.Tensors {
		switch {
		case model.IsRoutedExpert(t.Name):
			routed += int64(t.Size)
		case t.Name == "token_embd.weight":
			shared += int64(t.Size / t.Dims[1])
		default:
			shared += int64(t.Size)
		}
	}
	if f.Experts > 0 {
		shared += routed * int64(f.ExpertsUsed) / int64(f.Experts)
	}
	return shared
}

// Bandwidth measures memory read bandwidth in GB/s on every core.
func Bandwidth() float64 {
	buf := make([]uint64, 64<<20) // 512 MiB
	for i := range buf {
		buf[i] = uint64(i)
	}
	p := tensor.Default()
	var sink [64]uint64
	best := 0.0
	for range 5 {
		start := time.Now()
		p.For(len(buf), 1<<20, func(lo, hi int) {
			var s0, s1, s2, s3 uint64
			for i := lo; i+4 <= hi; i += 4 {
				s0 += buf[i]
				s1 += buf[i+1]
				s2 += buf[i+2]
				s3 += buf[i+3]
			}
			sink[lo*len(sink)/len(buf)] = s0 + s1 + s2 + s3
		})
		best = max(best, float64(8*len(buf))/time.Since(start).Seconds()/1e9)
	}
	return best
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Measure runs the benchmark.
func Measure(ctx context.Context, c Config) (*Report, error) {
	f, err := model.Open(c.ModelPath, gguf.Options{Mmap: true})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep := &Report{Model: ModelInfo{ActiveBytesPerToken: ActiveBytes(f), BandwidthGBs: Bandwidth(), KVBytesPerToken: f.KVBytesPerToken()}}
	if f.MLA() {
		rep.Model.PlainKVBytesPerToken = f.PlainKVBytesPerToken()
	}
	rep.Model.Context, rep.Model.SlidingWindow, rep.Model.KVBytesAtContext = f.Context, f.SlidingWindow, f.KVBytes(f.Context)
	if v, ok := f.Get("general.name"); ok {
		rep.Model.Name, _ = v.V.(string)
	}
	rep.Model.DecodeLimitTokS = rep.Model.BandwidthGBs * 1e9 / float64(rep.Model.ActiveBytesPerToken)
	var m *model.Model
	if slices.Contains(c.Modes, "single") {
		if m, err = model.LoadLocal(f, nil); err != nil {
			return nil, err
		}
		if m.KV, err = model.NewKVCache(m, model.KVCacheConfig{Prefix: true}); err != nil {
			return nil, err
		}
		runtime.GC() // the load's garbage, collected now rather than while measuring
	}
	if c.Workload != "" {
		return measureWorkload(ctx, c, rep, m, f.Vocab)
	}
	run := func(mode string, conc, gt int) (Run, error) {
		if mode == "single" {
			return single(ctx, m, conc, c.PromptTokens, gt)
		}
		return cluster(ctx, c.URL, f.Vocab, conc, c.PromptTokens, gt)
	}
	// One unmeasured request first, as llama-bench does: the first pass
	// through a process faults in its weights and grows its buffers.
	for _, mode := range c.Modes {
		if _, err := run(mode, 1, 2); err != nil {
			return nil, fmt.Errorf("bench: %s warm-up: %w", mode, err)
		}
	}
	for _, conc := range c.Concurrency {
		rounds := make([][]Run, len(c.Modes)) // by mode
		for range max(1, c.Rounds) {
			for i, mode := range c.Modes {
				r, err := run(mode, conc, c.GenTokens)
				if err != nil {
					return nil, err
				}
				rounds[i] = append(rounds[i], r)
			}
		}
		for _, rs := range rounds {
			rep.Runs = append(rep.Runs, median(rs))
		}
		si, ci := slices.Index(c.Modes, "single"), slices.Index(c.Modes, "cluster")
		if si >= 0 && ci >= 0 {
			var ratios []float64
			for k := range rounds[si] {
				ratios = append(ratios, rounds[ci][k].DecodeTokS/rounds[si][k].DecodeTokS)
			}
			rep.Ratios = append(rep.Ratios, Ratio{Concurrency: conc, Decode: percentile(ratios, 0.5)})
		}
	}
	return rep, nil
}

// median is a run whose every figure is the median of that figure over rs
// (runs of one mode and concurrency).
func median(rs []Run) Run {
	out := rs[0]
	for _, f := range []func(*Run) *float64{
		func(r *Run) *float64 { return &r.PrefillTokS },
		func(r *Run) *float64 { return &r.DecodeTokS },
		func(r *Run) *float64 { return &r.TTFTp50 },
		func(r *Run) *float64 { return &r.TTFTp99 },
		func(r *Run) *float64 { return &r.ITLp50 },
		func(r *Run) *float64 { return &r.ITLp99 },
	} {
		var xs []float64
		for i := range rs {
			xs = append(xs, *f(&rs[i]))
		}
		*f(&out) = percentile(xs, 0.5)
	}
	return out
}

func prompt(vocab, n, seed int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32((i*7919 + seed*104729) % (vocab - 2))
	}
	return p
}

// single runs the engine in this process: each sequence's prompt is
// prefilled (one after another, as requests arriving together would be
// without chunking), then all decode together, one token each per step.
func single(ctx context.Context, m *model.Model, conc, pt, gt int) (Run, error) {
	r := Run{Mode: "single", Concurrency: conc}
	seqs := make([]*model.Sequence, conc)
	next := make([][]int32, conc)
	var ttft []float64
	start := time.Now()
	for i := range conc {
		seqs[i] = m.NewSequence()
		seqs[i].Reserve(pt + gt) // as the coordinator does for a request
		out, err := m.Forward(ctx, []model.Chunk{{Seq: seqs[i], Tokens: prompt(m.Vocab, pt, i)}})
		if err != nil {
			return r, err
		}
		next[i] = []int32{sampling.Argmax(out[0])}
		ttft = append(ttft, ms(time.Since(start)))
	}
	prefill := time.Since(start)
	var itl []float64
	decodeStart := time.Now()
	for range gt - 1 {
		chunks := make([]model.Chunk, conc)
		for i := range chunks {
			chunks[i] = model.Chunk{Seq: seqs[i], Tokens: next[i]}
		}
		t := time.Now()
		out, err := m.Forward(ctx, chunks)
		if err != nil {
			return r, err
		}
		itl = append(itl, ms(time.Since(t)))
		for i := range next {
			next[i] = []int32{sampling.Argmax(out[i])}
		}
	}
	r.PrefillTokS = float64(conc*pt) / prefill.Seconds()
	r.DecodeTokS = float64(conc*(gt-1)) / time.Since(decodeStart).Seconds()
	r.TTFTp50, r.TTFTp99 = percentile(ttft, 0.5), percentile(ttft, 0.99)
	r.ITLp50, r.ITLp99 = percentile(itl, 0.5), percentile(itl, 0.99)
	return r, nil
}

// cluster sends conc concurrent streaming completions to a router.
func cluster(ctx context.Context, url string, vocab, conc, pt, gt int) (Run, error) {
	r := Run{Mode: "cluster", Concurrency: conc}
	var mu sync.Mutex
	var ttft, itl []float64
	var firstErr error
	var arrivals [][]time.Time // per stream, when each token arrived
	start := time.Now()
	var wg sync.WaitGroup
	for i := range conc {
		wg.Go(func() {
			body, _ := json.Marshal(map[string]any{"prompt": prompt(vocab, pt, i), "max_tokens": gt, "temperature": 0,
				"stream": true, "return_token_ids": true})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(url, "/")+"/v1/completions", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				mu.Lock()
				firstErr = fmt.Errorf("bench: %s: %s", resp.Status, b)
				mu.Unlock()
				return
			}
			var times []time.Time
			var gaps []float64
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
				}
				if json.Unmarshal([]byte(data), &ev) != nil || len(ev.Choices) == 0 || len(ev.Choices[0].TokenIDs) == 0 {
					continue
				}
				now := time.Now()
				if len(times) > 0 {
					gaps = append(gaps, ms(now.Sub(times[len(times)-1])))
				}
				for range ev.Choices[0].TokenIDs {
					times = append(times, now)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(times) > 0 {
				ttft = append(ttft, ms(times[0].Sub(start)))
				itl = append(itl, gaps...)
				arrivals = append(arrivals, times)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return r, firstErr
	}
	r.PrefillTokS = float64(conc*pt) / (percentile(ttft, 1) / 1000)
	r.DecodeTokS = decodeRate(arrivals)
	r.TTFTp50, r.TTFTp99 = percentile(ttft, 0.5), percentile(ttft, 0.99)
	r.ITLp50, r.ITLp99 = percentile(itl, 0.5), percentile(itl, 0.99)
	return r, nil
}

// decodeRate is the token rate once every stream is decoding: the tokens
// that arrived after the last stream's first token, over the time from then
// to the last token. Earlier, decode steps also carry other streams' prompt
// chunks; that phase is prefill, and single mode measures decode the same
// way (all prompts in, then decode together).
func decodeRate(arrivals [][]time.Time) float64 {
	var from, to time.Time
	for _, times := range arrivals {
		if times[0].After(from) {
			from = times[0]
		}
		if last := times[len(times)-1]; last.After(to) {
			to = last
		}
	}
	n := 0
	for _, times := range arrivals {
		for _, t := range times {
			if t.After(from) {
				n++
			}
		}
	}
	if n == 0 || !to.After(from) {
		return 0
	}
	return float64(n) / to.Sub(from).Seconds()
}

// Print writes the report as a table.
func Print(w io.Writer, rep *Report) {
	m := rep.Model
	fmt.Fprintf(w, "model %s: %.1f MB read per decoded token; memory %.1f GB/s → decode limit %.0f tok/s\n",
		m.Name, float64(m.ActiveBytesPerToken)/1e6, m.BandwidthGBs, m.DecodeLimitTokS)
	fmt.Fprintf(w, "KV cache: %d bytes per token", m.KVBytesPerToken)
	if m.PlainKVBytesPerToken > 0 {
		fmt.Fprintf(w, " (MLA; per-head K/V would take %d, %.1f× more)", m.PlainKVBytesPerToken, float64(m.PlainKVBytesPerToken)/float64(m.KVBytesPerToken))
	}
	if m.SlidingWindow > 0 {
		fmt.Fprintf(w, " in full-attention layers; with the sliding-window layers (window %d), a sequence of %d tokens holds %d bytes (%.0f a token)",
			m.SlidingWindow, m.Context, m.KVBytesAtContext, float64(m.KVBytesAtContext)/float64(m.Context))
	}
	fmt.Fprint(w, "\n\n")
	if len(rep.Runs) > 0 && rep.Runs[0].Workload != "" {
		printWorkload(w, rep.Runs)
		return
	}
	fmt.Fprintf(w, "%-8s %5s %12s %12s %9s %9s %8s %8s\n", "mode", "conc", "prefill t/s", "decode t/s", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99")
	for _, r := range rep.Runs {
		fmt.Fprintf(w, "%-8s %5d %12.1f %12.1f %9.1f %9.1f %8.2f %8.2f\n", r.Mode, r.Concurrency, r.PrefillTokS, r.DecodeTokS,
			r.TTFTp50, r.TTFTp99, r.ITLp50, r.ITLp99)
	}
	fmt.Fprintln(w, "(times in ms)")
	for _, r := range rep.Ratios {
		fmt.Fprintf(w, "cluster ÷ single decode at concurrency %d: %.2f\n", r.Concurrency, r.Decode)
	}
}

// measureWorkload runs a prefix-cache workload in every mode and cache
// setting, alternated, each run on prompts of its own.
func measureWorkload(ctx context.Context, c Config, rep *Report, m *model.Model, vocab int) (*Report, error) {
	seed := 1
	for _, conc := range c.Concurrency {
		for range max(1, c.Rounds) {
			for _, mode := range c.Modes {
				req := clusterRequester(c.URL)
				if mode == "single" {
					req = singleRequester(m)
				}
				for _, pc := range c.PrefixCache {
					r, err := workload(ctx, req, c.Workload, pc == "on", vocab, conc, c.GenTokens, seed)
					if err != nil {
						return nil, fmt.Errorf("bench: %s %s prefix cache %s: %w", mode, c.Workload, pc, err)
					}
					r.Mode = mode
					rep.Runs = append(rep.Runs, r)
					seed++
				}
			}
		}
	}
	return rep, nil
}

// printWorkload writes prefix-cache workload runs as a table.
func printWorkload(w io.Writer, runs []Run) {
	fmt.Fprintf(w, "%-8s %-13s %5s %6s %8s %12s  %s\n", "mode", "workload", "conc", "cache", "cached", "prefill ms", "TTFT ms (by turn, or p50/p99)")
	for _, r := range runs {
		ttft := fmt.Sprintf("%.1f / %.1f", r.TTFTp50, r.TTFTp99)
		if len(r.TTFTByTurn) > 0 {
			parts := make([]string, len(r.TTFTByTurn))
			for i, x := range r.TTFTByTurn {
				parts[i] = fmt.Sprintf("%.0f", x)
			}
			ttft = strings.Join(parts, " ")
		}
		fmt.Fprintf(w, "%-8s %-13s %5d %6s %8d %12.1f  %s\n", r.Mode, r.Workload, r.Concurrency, r.PrefixCache, r.CachedTokens, r.PrefillMs, ttft)
	}
}
