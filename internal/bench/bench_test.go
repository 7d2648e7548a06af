package bench

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
)

func TestDecodeRateCountsOnlyTheAllDecodingWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	cases := []struct {
		name     string
		arrivals [][]time.Time
		want     float64
	}{
		// one stream: tokens after the first, over first→last
		{"single", [][]time.Time{at(0, 100, 200, 300, 400)}, 4 / 0.4},
		// the second stream's first token comes at 1000 ms; stream one's
		// tokens before then (its prefill-shared phase) do not count
		{"staggered", [][]time.Time{at(0, 500, 1100, 1200), at(1000, 1100, 1200, 1300)}, 5 / 0.3},
		{"nothing after the last first token", [][]time.Time{at(0, 100), at(200)}, 0},
	}
	for _, c := range cases {
		if got := decodeRate(c.arrivals); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: decodeRate = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMedianTakesEachFigureApart(t *testing.T) {
	rs := []Run{
		{Mode: "cluster", Concurrency: 4, PrefillTokS: 10, DecodeTokS: 300, TTFTp50: 5, TTFTp99: 9, ITLp50: 1, ITLp99: 7},
		{Mode: "cluster", Concurrency: 4, PrefillTokS: 30, DecodeTokS: 100, TTFTp50: 4, TTFTp99: 8, ITLp50: 3, ITLp99: 9},
		{Mode: "cluster", Concurrency: 4, PrefillTokS: 20, DecodeTokS: 200, TTFTp50: 6, TTFTp99: 7, ITLp50: 2, ITLp99: 8},
	}
	want := Run{Mode: "cluster", Concurrency: 4, PrefillTokS: 20, DecodeTokS: 200, TTFTp50: 5, TTFTp99: 8, ITLp50: 2, ITLp99: 8}
	if got := median(rs); !reflect.DeepEqual(got, want) {
		t.Errorf("median = %+v, want %+v", got, want)
	}
}

// TestWorkloadSingle runs both prefix-cache workloads in one process on a
// tiny model: with the cache, later turns and streams report cached
// tokens and answer exactly as without it.
func TestWorkloadSingle(t *testing.T) {
	f, err := model.Open("../../testdata/models/tiny-qwen3moe-f32.gguf", gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.KV, err = model.NewKVCache(m, model.KVCacheConfig{Prefix: true}); err != nil {
		t.Fatal(err)
	}
	req := singleRequester(m)
	// Context 256: two turns of 100 tokens plus 8-token answers fit.
	history := prompt(m.Vocab, turnTokens, 1)
	off, err := req(t.Context(), history, 8, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	on, err := req(t.Context(), history, 8, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(on.tokens, off.tokens) || off.cached != 0 {
		t.Fatalf("first turn: %v (cached %d) vs %v", on.tokens, on.cached, off.tokens)
	}
	history = append(append(history, on.tokens...), prompt(m.Vocab, turnTokens, 2)...)
	on2, err := req(t.Context(), history, 8, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	off2, err := req(t.Context(), history, 8, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if on2.cached < 96 || off2.cached != 0 || !slices.Equal(on2.tokens, off2.tokens) {
		t.Errorf("second turn: cached %d/%d, tokens %v vs %v", on2.cached, off2.cached, on2.tokens, off2.tokens)
	}
	if _, err := workload(t.Context(), req, "zig-zag", true, m.Vocab, 1, 4, 1); err == nil {
		t.Error("an unknown workload ran")
	}
}
