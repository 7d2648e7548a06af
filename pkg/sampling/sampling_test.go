package sampling

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var logits = []float32{2.0, 1.0, 0.5, 0.0, -1.0, 3.0, 2.0, -3.0}

func mustNew(t *testing.T, p Params) *Sampler {
	t.Helper()
	s, err := New(p, len(logits))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGreedyIsArgmax(t *testing.T) {
	p := Defaults()
	p.Temperature = 0
	s := mustNew(t, p)
	if got := s.Sample(logits).Token; got != 5 {
		t.Errorf("greedy picked %d, want 5", got)
	}
	// Ties go to the lowest ID.
	if got := s.Sample([]float32{1, 3, 3}).Token; got != 1 {
		t.Errorf("tie picked %d, want 1", got)
	}
}

func TestSeedReproduces(t *testing.T) {
	p := Defaults()
	p.Seed = 42
	draw := func(seed uint64) []int32 {
		p.Seed = seed
		s := mustNew(t, p)
		var out []int32
		for range 50 {
			out = append(out, s.Sample(logits).Token)
		}
		return out
	}
	if a, b := draw(42), draw(42); !slices.Equal(a, b) {
		t.Errorf("same seed, different draws: %v vs %v", a, b)
	}
	if a, b := draw(42), draw(43); slices.Equal(a, b) {
		t.Error("different seeds gave identical 50-token draws")
	}
}

// softmax64 is the reference softmax, written here rather than taken from
// the package: for each id in ids, exp((l[id] - max)/temp) / Σ over ids,
// in float64. A -∞ logit gets probability 0.
func softmax64(l []float32, ids []int32, temp float64) []float64 {
	mx := math.Inf(-1)
	for _, id := range ids {
		mx = math.Max(mx, float64(l[id]))
	}
	p := make([]float64, len(ids))
	var z float64
	for i, id := range ids {
		p[i] = math.Exp((float64(l[id]) - mx) / temp)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
	return p
}

// expected computes the distribution the documented chain should give,
// with softmax64 for every softmax: rank by logit (ties: lower id first),
// keep the top k, cut at top-p and min-p on the untempered probabilities,
// then the tempered softmax of what is left.
func expected(l []float32, temp float32, topK int, topP, minP float32) []float64 {
	idx := make([]int32, len(l))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int {
		if l[a] > l[b] {
			return -1
		}
		if l[a] < l[b] {
			return 1
		}
		return 0
	})
	if topK > 0 {
		idx = idx[:topK]
	}
	pr := softmax64(l, idx, 1)
	var cum float64
	for i := range pr {
		cum += pr[i]
		if cum >= float64(topP) {
			idx, pr = idx[:i+1], pr[:i+1]
			break
		}
	}
	n := 1
	for n < len(pr) && pr[n] >= pr[0]*float64(minP) {
		n++
	}
	idx = idx[:n]
	pr = softmax64(l, idx, float64(temp))
	out := make([]float64, len(l))
	for i, id := range idx {
		out[id] = pr[i]
	}
	return out
}

// TestExpectedByHand pins the oracle itself to values worked out by hand,
// so that expected cannot drift into agreeing with a wrong sampler.
func TestExpectedByHand(t *testing.T) {
	l := []float32{0, float32(math.Log(3)), float32(math.Log(2)), -10} // weights 1, 3, 2, e^-10
	z := 6 + math.Exp(-10)
	cases := []struct {
		name string
		temp float32
		topK int
		topP float32
		minP float32
		want []float64
	}{
		{"temperature 1", 1, 0, 1, 0, []float64{1 / z, 3 / z, 2 / z, math.Exp(-10) / z}},
		{"top-k 2", 1, 2, 1, 0, []float64{0, 0.6, 0.4, 0}},
		// 3/z < 0.6 ≤ 5/z: top-p 0.6 keeps tokens 1 and 2.
		{"top-p 0.6", 1, 0, 0.6, 0, []float64{0, 0.6, 0.4, 0}},
		// min-p 0.5: tokens with weight ≥ 1.5 (half of 3) survive.
		{"min-p 0.5", 1, 0, 1, 0.5, []float64{0, 0.6, 0.4, 0}},
		// temperature 0.5 squares the weights of 1 and 2 after top-k: 9 and 4.
		{"top-k 2, temperature 0.5", 0.5, 2, 1, 0, []float64{0, 9.0 / 13, 4.0 / 13, 0}},
	}
	for _, c := range cases {
		got := expected(l, c.temp, c.topK, c.topP, c.minP)
		for i := range got {
			if math.Abs(got[i]-c.want[i]) > 1e-6 {
				t.Errorf("%s: expected()[%d] = %.7f, want %.7f", c.name, i, got[i], c.want[i])
			}
		}
	}
}

// TestDistribution draws 40,000 seeded samples and checks each token's
// frequency is within 5 standard errors (plus 0.002) of the expected
// probability. Seeded, so the result is the same on every run.
func TestDistribution(t *testing.T) {
	cases := []struct {
		name string
		temp float32
		topK int
		topP float32
		minP float32
	}{
		{"temperature 1", 1, 0, 1, 0},
		{"temperature 0.5", 0.5, 0, 1, 0},
		{"temperature 2, top-k 4", 2, 4, 1, 0},
		{"top-p 0.8", 1, 0, 0.8, 0},
		{"min-p 0.2", 1.5, 0, 1, 0.2},
	}
	const n = 40000
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Defaults()
			p.Temperature, p.TopK, p.TopP, p.MinP, p.Seed = c.temp, c.topK, c.topP, c.minP, 7
			s := mustNew(t, p)
			counts := make([]int, len(logits))
			for range n {
				counts[s.Sample(logits).Token]++
			}
			want := expected(logits, c.temp, c.topK, c.topP, c.minP)
			for i, w := range want {
				got := float64(counts[i]) / n
				bound := 5*math.Sqrt(w*(1-w)/n) + 0.002
				if math.Abs(got-w) > bound {
					t.Errorf("token %d: frequency %.4f, want %.4f ± %.4f", i, got, w, bound)
				}
				if w == 0 && counts[i] > 0 {
					t.Errorf("token %d was filtered out but drawn %d times", i, counts[i])
				}
			}
		})
	}
}

func TestPenaltiesAndBias(t *testing.T) {
	p := Defaults()
	p.Temperature = 0
	p.LogitBias = map[int32]float32{7: 100}
	if got := mustNew(t, p).Sample(logits).Token; got != 7 {
		t.Errorf("logit bias +100 on 7: picked %d", got)
	}
	p.LogitBias = nil
	p.PresencePenalty = 2
	s := mustNew(t, p)
	s.Accept(5)
	if got := s.Sample(logits).Token; got != 0 {
		t.Errorf("presence penalty 2 on token 5 (3.0 → 1.0): picked %d, want 0", got)
	}
	p.PresencePenalty, p.RepeatPenalty = 0, 2
	s = mustNew(t, p)
	s.Accept(5)
	s.Accept(0)
	if got := s.Sample(logits).Token; got != 6 {
		t.Errorf("repetition penalty 2 on 5 and 0: picked %d, want 6", got)
	}
}

// The chosen token's log-probability is computed only when asked for.
func TestTokenLogprobOnRequest(t *testing.T) {
	p := Defaults()
	p.Temperature = 0
	if r := mustNew(t, p).Sample(logits); r.Logprob != 0 {
		t.Errorf("logprob %g without TokenLogprob, want 0 (not computed)", r.Logprob)
	}
	p.TokenLogprob = true
	if r := mustNew(t, p).Sample(logits); !(r.Logprob < 0) {
		t.Errorf("logprob %g with TokenLogprob, want a log-probability", r.Logprob)
	}
}

func TestLogprobs(t *testing.T) {
	p := Defaults()
	p.Temperature, p.Logprobs = 0, 3
	r := mustNew(t, p).Sample(logits)
	var z float64
	for _, v := range logits {
		z += math.Exp(float64(v))
	}
	want := float32(3 - math.Log(z))
	if math.Abs(float64(r.Logprob-want)) > 1e-6 {
		t.Errorf("logprob %g, want %g", r.Logprob, want)
	}
	ids := []int32{r.Top[0].Token, r.Top[1].Token, r.Top[2].Token}
	if !slices.Equal(ids, []int32{5, 0, 6}) || r.Top[0].Logprob != r.Logprob {
		t.Errorf("top logprobs %v, want tokens 5, 0, 6", r.Top)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Params)
		msg  string
	}{
		{"negative temperature", func(p *Params) { p.Temperature = -0.1 }, "temperature"},
		{"top_p 0", func(p *Params) { p.TopP = 0 }, "top_p"},
		{"top_p above 1", func(p *Params) { p.TopP = 1.5 }, "top_p"},
		{"negative top_k", func(p *Params) { p.TopK = -1 }, "top_k"},
		{"min_p above 1", func(p *Params) { p.MinP = 2 }, "min_p"},
		{"NaN temperature", func(p *Params) { p.Temperature = float32(math.NaN()) }, "temperature"},
		{"bias outside vocabulary", func(p *Params) { p.LogitBias = map[int32]float32{99: 1} }, "logit_bias"},
		{"too many logprobs", func(p *Params) { p.Logprobs = 21 }, "logprobs"},
	}
	for _, c := range cases {
		p := Defaults()
		c.edit(&p)
		_, err := New(p, len(logits))
		if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v", c.name, err)
		}
	}
}

func TestStopAcrossTokens(t *testing.T) {
	s := NewStopper([]string{"STOP", "\n\n"})
	var out strings.Builder
	var stopped bool
	for _, piece := range []string{"Hello S", "T", "ring ST", "O", "P and more"} {
		emit, st := s.Push(piece)
		out.WriteString(emit)
		if st {
			stopped = true
			break
		}
	}
	if !stopped || out.String() != "Hello STring " || s.Matched() != "STOP" {
		t.Errorf("got %q stopped=%v matched %q, want %q stopped by STOP", out.String(), stopped, s.Matched(), "Hello STring ")
	}
	s = NewStopper([]string{"\n\n"})
	e1, _ := s.Push("a\n")
	e2, st := s.Push("\nb")
	if e1 != "a" || e2 != "" || !st {
		t.Errorf("split newline stop: %q %q %v", e1, e2, st)
	}
	s = NewStopper([]string{"xyz"})
	e, _ := s.Push("abx")
	if e != "ab" || s.Flush() != "x" || s.Matched() != "" {
		t.Errorf("held tail not flushed: %q", e)
	}
}

// TestSkipResumes checks that a sampler advanced past n tokens continues
// exactly as one that sampled them.
func TestSkipResumes(t *testing.T) {
	p := Defaults()
	p.Seed, p.Temperature = 11, 0.9
	a := mustNew(t, p)
	var want []int32
	for range 20 {
		r := a.Sample(logits)
		a.Accept(r.Token)
		want = append(want, r.Token)
	}
	b := mustNew(t, p)
	for _, tok := range want[:12] {
		b.Accept(tok)
	}
	b.Skip(12)
	for i, w := range want[12:] {
		r := b.Sample(logits)
		b.Accept(r.Token)
		if r.Token != w {
			t.Fatalf("token %d after resuming: %d, want %d", 12+i, r.Token, w)
		}
	}
}

// BenchmarkSample draws from a 32,000-token vocabulary with common
// settings; greedy with the token's log-probability is the baseline.
func BenchmarkSample(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	l := make([]float32, 32000)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
	}
	for _, c := range []struct {
		name string
		edit func(*Params)
	}{
		{"greedy", func(p *Params) { p.Temperature = 0 }},
		{"greedy+logprob", func(p *Params) { p.Temperature, p.TokenLogprob = 0, true }},
		{"temperature", func(p *Params) { p.Temperature = 0.8 }},
		{"top-k 40, top-p 0.95", func(p *Params) { p.Temperature, p.TopK, p.TopP = 0.8, 40, 0.95 }},
		{"top-p 0.9", func(p *Params) { p.Temperature, p.TopP = 0.8, 0.9 }},
	} {
		p := Defaults()
		c.edit(&p)
		s, err := New(p, len(l))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				s.Sample(l)
			}
		})
	}
}

// topK gives the first k of the vocabulary sorted by logit (ties: lower id
// first), as a full stable sort would.
func TestTopKMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 100, 1000} {
		l := make([]float32, n)
		for i := range l {
			l[i] = float32(r.IntN(20)) // many ties
		}
		all := make([]int32, n)
		for i := range all {
			all[i] = int32(i)
		}
		slices.SortStableFunc(all, func(a, b int32) int {
			switch {
			case l[a] > l[b]:
				return -1
			case l[a] < l[b]:
				return 1
			}
			return 0
		})
		for _, k := range []int{1, 2, n / 2, n - 1} {
			if k < 1 || k >= n {
				continue
			}
			if got := topK(nil, l, k); !slices.Equal(got, all[:k]) {
				t.Fatalf("n=%d k=%d: %v, want %v", n, k, got, all[:k])
			}
		}
	}
}

// maskOf allows the listed tokens.
func maskOf(n int, ids ...int32) []uint64 {
	m := make([]uint64, (n+63)/64)
	for _, id := range ids {
		m[id/64] |= 1 << (id % 64)
	}
	return m
}

// TestMaskedDistribution draws with a mask that removes the two best
// tokens and checks the frequencies against the documented chain run on
// logits where the masked-out tokens are -∞ (computed by expected, not by
// the sampler), and that no masked-out token is ever drawn.
func TestMaskedDistribution(t *testing.T) {
	allowed := []int32{1, 2, 3, 4, 6, 7}
	masked := slices.Clone(logits)
	for i := range masked {
		if !slices.Contains(allowed, int32(i)) {
			masked[i] = float32(math.Inf(-1))
		}
	}
	cases := []struct {
		name string
		temp float32
		topK int
		topP float32
		minP float32
	}{
		{"temperature 1", 1, 0, 1, 0},
		{"top-k 3", 1, 3, 1, 0},
		{"top-k 7, more than allowed", 1.5, 7, 1, 0},
		{"top-p 0.8", 1, 0, 0.8, 0},
		{"min-p 0.2", 1.5, 0, 1, 0.2},
		{"top-p 0.999999 over all allowed", 1, 0, 0.999999, 0},
	}
	const n = 40000
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Defaults()
			p.Temperature, p.TopK, p.TopP, p.MinP, p.Seed = c.temp, c.topK, c.topP, c.minP, 11
			s := mustNew(t, p)
			counts := make([]int, len(logits))
			for range n {
				r, err := s.SampleMasked(logits, maskOf(len(logits), allowed...))
				if err != nil {
					t.Fatal(err)
				}
				counts[r.Token]++
			}
			want := expected(masked, c.temp, min(c.topK, len(allowed)), c.topP, c.minP)
			for i, w := range want {
				got := float64(counts[i]) / n
				bound := 5*math.Sqrt(w*(1-w)/n) + 0.002
				if math.Abs(got-w) > bound {
					t.Errorf("token %d: frequency %.4f, want %.4f ± %.4f", i, got, w, bound)
				}
				if !slices.Contains(allowed, int32(i)) && counts[i] > 0 {
					t.Errorf("token %d is masked out but drawn %d times", i, counts[i])
				}
			}
		})
	}
}

func TestMaskedGreedy(t *testing.T) {
	p := Defaults()
	p.Temperature = 0
	s := mustNew(t, p)
	// 5 (3.0) is the best token; without it 0 and 6 tie at 2.0.
	r, err := s.SampleMasked(logits, maskOf(len(logits), 0, 3, 6))
	if err != nil || r.Token != 0 {
		t.Errorf("greedy under a mask without 5: token %d, %v; want 0", r.Token, err)
	}
	// A logit bias cannot bring back a masked-out token.
	p.LogitBias = map[int32]float32{7: 100}
	r, err = mustNew(t, p).SampleMasked(logits, maskOf(len(logits), 1, 2))
	if err != nil || r.Token != 1 {
		t.Errorf("greedy, bias on masked-out 7: token %d, %v; want 1", r.Token, err)
	}
}

func TestMaskedNothingAllowed(t *testing.T) {
	for _, temp := range []float32{0, 1} {
		p := Defaults()
		p.Temperature = temp
		_, err := mustNew(t, p).SampleMasked(logits, maskOf(len(logits)))
		if !errors.Is(err, ErrNoToken) {
			t.Errorf("temperature %g, empty mask: error %v, want ErrNoToken", temp, err)
		}
	}
	// An allowed token whose logit is -∞ does not count.
	l := slices.Clone(logits)
	l[2] = float32(math.Inf(-1))
	if _, err := mustNew(t, Defaults()).SampleMasked(l, maskOf(len(l), 2)); !errors.Is(err, ErrNoToken) {
		t.Errorf("only token has logit -Inf: error %v, want ErrNoToken", err)
	}
}

// A nil mask and a mask allowing everything draw what Sample draws.
func TestMaskAllowingAllChangesNothing(t *testing.T) {
	p := Defaults()
	p.Seed, p.TopK, p.TopP = 5, 4, 0.9
	a, b, c := mustNew(t, p), mustNew(t, p), mustNew(t, p)
	all := maskOf(len(logits), 0, 1, 2, 3, 4, 5, 6, 7)
	for i := range 200 {
		want := a.Sample(logits).Token
		r1, err1 := b.SampleMasked(logits, nil)
		r2, err2 := c.SampleMasked(logits, all)
		if err1 != nil || err2 != nil || r1.Token != want || r2.Token != want {
			t.Fatalf("draw %d: Sample %d, nil mask %d (%v), full mask %d (%v)", i, want, r1.Token, err1, r2.Token, err2)
		}
	}
}
