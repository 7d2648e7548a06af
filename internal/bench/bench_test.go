package bench

import (
	"math"
	"testing"
	"time"
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
	if got := median(rs); got != want {
		t.Errorf("median = %+v, want %+v", got, want)
	}
}
