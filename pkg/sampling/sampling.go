// Package sampling picks the next token from logits with the knobs every
// LLM API has, and matches stop strings on the generated text.
//
// The steps run in llama.cpp's default sampler-chain order, where the two
// overlap:
//
//  1. logit bias (added to the raw logits)
//  2. penalties over the last PenaltyLastN tokens seen: repetition (divide a
//     positive logit by the penalty, multiply a negative one), then
//     frequency (minus count × penalty) and presence (minus penalty once)
//  3. a token mask (SampleMasked: a grammar's allowed tokens), the others
//     set to -∞
//  4. temperature 0: greedy, the highest logit (lowest ID on ties); stop here
//  5. top-k, 6. top-p, 7. min-p (each on the untempered distribution)
//  8. temperature (logits divided by it)
//  9. a draw from the softmax of what is left, with the sampler's seeded RNG
//
// Log-probabilities are those of the model's raw distribution (the
// log-softmax of the logits before any step), as vLLM reports them.
package sampling

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/switchyard-llm/switchyard/pkg/freelist"
)

// ErrParams is wrapped by every validation error.
var ErrParams = errors.New("sampling: invalid parameter")

// ErrNoToken is returned by SampleMasked when its mask leaves no token.
var ErrNoToken = errors.New("sampling: the mask allows no token")

// Params are the sampling settings of one request. The zero value is not
// valid (TopP 0); start from Defaults.
type Params struct {
	Temperature      float32           // 0 means greedy; ≥ 0
	TopK             int               // 0 means off; ≥ 0
	TopP             float32           // 1 means off; in (0, 1]
	MinP             float32           // 0 means off; in [0, 1]
	RepeatPenalty    float32           // 1 means off; > 0
	PresencePenalty  float32           // 0 means off; in [-2, 2]
	FrequencyPenalty float32           // 0 means off; in [-2, 2]
	PenaltyLastN     int               // tokens of history penalties look at; 0 means all
	LogitBias        map[int32]float32 // added to logits; in [-100, 100]
	Seed             uint64            // the RNG seed: same seed, same output
	Logprobs         int               // alternatives to report per token; 0–20
	TokenLogprob     bool              // report the chosen token's log-probability (implied by Logprobs > 0)
}

// Defaults are the settings of an OpenAI-style request that sets nothing.
func Defaults() Params {
	return Params{Temperature: 1, TopP: 1, RepeatPenalty: 1, PenaltyLastN: 64}
}

// Validate reports the first invalid setting, by its OpenAI-style name.
func (p Params) Validate(vocab int) error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("%w: %s = %v, want %s", ErrParams, name, v, want)
	}
	switch {
	case !(p.Temperature >= 0) || p.Temperature > 100:
		return bad("temperature", p.Temperature, "a value in [0, 100]")
	case p.TopK < 0:
		return bad("top_k", p.TopK, "≥ 0")
	case !(p.TopP > 0 && p.TopP <= 1):
		return bad("top_p", p.TopP, "a value in (0, 1]")
	case !(p.MinP >= 0 && p.MinP <= 1):
		return bad("min_p", p.MinP, "a value in [0, 1]")
	case !(p.RepeatPenalty > 0):
		return bad("repetition_penalty", p.RepeatPenalty, "> 0")
	case !(p.PresencePenalty >= -2 && p.PresencePenalty <= 2):
		return bad("presence_penalty", p.PresencePenalty, "a value in [-2, 2]")
	case !(p.FrequencyPenalty >= -2 && p.FrequencyPenalty <= 2):
		return bad("frequency_penalty", p.FrequencyPenalty, "a value in [-2, 2]")
	case p.PenaltyLastN < 0:
		return bad("penalty_last_n", p.PenaltyLastN, "≥ 0")
	case p.Logprobs < 0 || p.Logprobs > 20:
		return bad("logprobs", p.Logprobs, "a value in [0, 20]")
	}
	for id, b := range p.LogitBias {
		if id < 0 || int(id) >= vocab {
			return bad("logit_bias", id, fmt.Sprintf("token IDs below %d", vocab))
		}
		if !(b >= -100 && b <= 100) {
			return bad("logit_bias", b, "biases in [-100, 100]")
		}
	}
	return nil
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	Token   int32   `json:"token"`
	Logprob float32 `json:"logprob"`
}

// Result is one sampled token.
type Result struct {
	Token   int32
	Logprob float32        // of Token under the raw distribution (with Params.TokenLogprob or Logprobs)
	Top     []TokenLogprob // the Params.Logprobs most likely tokens, best first
}

// Sampler samples one sequence's tokens. Not safe for concurrent use.
type Sampler struct {
	p       Params
	rng     *rand.Rand
	history []int32
	*scratch
}

// scratch is a draw's working memory, a vocabulary's worth: a sampler
// takes one from a free list for each draw rather than keeping its own,
// so a server with many requests waiting holds as many as draw at once.
type scratch struct {
	live    int // tokens the mask left (all of them without one)
	idx     []int32
	probs   []float64
	work    []float32
	heapIDs []int32
	ranking ranking
}

var scratches freelist.List[scratch]

// New returns a sampler for a vocabulary of the given size.
func New(p Params, vocab int) (*Sampler, error) {
	if err := p.Validate(vocab); err != nil {
		return nil, err
	}
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9E3779B97F4A7C15))}, nil
}

// Accept records a token (of the prompt or generated) for the penalties.
func (s *Sampler) Accept(tok int32) { s.history = append(s.history, tok) }

// Skip advances the random generator past n tokens sampled elsewhere (a
// resumed request), so that the next draws are the ones they would have
// been. Greedy sampling draws nothing.
func (s *Sampler) Skip(n int) {
	if s.p.Temperature == 0 {
		return
	}
	for range n {
		s.rng.Float64()
	}
}

// Sample picks the next token from logits (which it does not modify).
func (s *Sampler) Sample(logits []float32) Result {
	r, _ := s.SampleMasked(logits, nil) // no mask, no error
	return r
}

// SampleMasked is Sample restricted to the tokens a mask allows: token id
// is allowed when bit id%64 of allowed[id/64] is set (as pkg/grammar's
// Matcher.Mask writes it); nil allows every token. The mask applies after
// logit bias and penalties and before greedy, top-k, top-p, min-p and
// temperature, which see only the allowed tokens (top-k keeps the k best
// allowed ones). Log-probabilities stay those of the raw distribution.
// allowed must have (len(logits)+63)/64 words. When no allowed token has a
// finite logit it returns an error wrapping ErrNoToken, and draws nothing.
func (s *Sampler) SampleMasked(logits []float32, allowed []uint64) (Result, error) {
	p := s.p
	s.scratch = scratches.Get()
	defer func() {
		scratches.Put(s.scratch)
		s.scratch = nil
	}()
	s.work = append(s.work[:0], logits...)
	l := s.work
	for id, b := range p.LogitBias {
		l[id] += b
	}
	s.penalise(l)
	s.live = len(l)
	if allowed != nil {
		if s.live = mask(l, allowed); s.live == 0 {
			return Result{}, ErrNoToken
		}
	}

	var tok int32
	if p.Temperature == 0 {
		tok = Argmax(l)
	} else {
		tok = s.draw(l)
	}
	r := Result{Token: tok}
	if p.TokenLogprob || p.Logprobs > 0 {
		r.Logprob = logSoftmaxAt(logits, tok)
	}
	if p.Logprobs > 0 {
		r.Top = TopLogprobs(logits, p.Logprobs)
	}
	return r, nil
}

// mask sets the logits of the tokens allowed leaves out to -∞ and returns
// how many finite logits are left.
func mask(l []float32, allowed []uint64) int {
	inf := float32(math.Inf(-1))
	live := 0
	for w := 0; w*64 < len(l); w++ {
		bits, chunk := allowed[w], l[w*64:min(w*64+64, len(l))]
		for i := range chunk {
			if bits&(1<<i) == 0 {
				chunk[i] = inf
			} else if chunk[i] > inf {
				live++
			}
		}
	}
	return live
}

func (s *Sampler) penalise(l []float32) {
	p := s.p
	if p.RepeatPenalty == 1 && p.PresencePenalty == 0 && p.FrequencyPenalty == 0 {
		return
	}
	h := s.history
	if p.PenaltyLastN > 0 && len(h) > p.PenaltyLastN {
		h = h[len(h)-p.PenaltyLastN:]
	}
	counts := map[int32]int{}
	for _, t := range h {
		if int(t) < len(l) && t >= 0 {
			counts[t]++
		}
	}
	for t, n := range counts {
		if l[t] > 0 {
			l[t] /= p.RepeatPenalty
		} else {
			l[t] *= p.RepeatPenalty
		}
		l[t] -= float32(n)*p.FrequencyPenalty + p.PresencePenalty
	}
}

// draw applies top-k, top-p, min-p and temperature, then samples. The
// candidates are ranked by logit (ties: lower id first) only as far as
// the filters look: a heap hands them out in order, so a 32,000-token
// vocabulary is not sorted for every token.
func (s *Sampler) draw(l []float32) int32 {
	p := s.p
	k := s.live // the masked-out tokens rank last, with no weight
	if p.TopK > 0 && p.TopK < k {
		k = p.TopK
	}
	truncate := p.TopP < 1 || p.MinP > 0
	if k == s.live && !truncate {
		return s.drawAll(l) // every token survives: no order needed
	}
	idx, probs := s.idx[:0], s.probs[:0]
	if k < s.live {
		// Top-k, then the untempered probabilities of the survivors.
		idx = topK(idx, l, k)
		probs = softmaxOf(probs, l, idx, 1)
		if p.TopP < 1 {
			var cum float64
			for i, pr := range probs {
				cum += pr
				if cum >= float64(p.TopP) {
					idx, probs = idx[:i+1], probs[:i+1]
					break
				}
			}
		}
		if p.MinP > 0 {
			floor := probs[0] * float64(p.MinP)
			n := 1
			for n < len(probs) && probs[n] >= floor {
				n++
			}
			idx = idx[:n]
		}
	} else {
		// No top-k: untempered probabilities over the whole vocabulary,
		// taken in rank order until top-p or min-p stops.
		h := s.rank(l)
		mx := float64(l[h.ids[0]])
		var sum float64
		for _, v := range l {
			sum += math.Exp(float64(v) - mx)
		}
		var cum, floor float64
		for len(h.ids) > 0 && len(idx) < s.live {
			id := h.pop()
			pr := math.Exp(float64(l[id])-mx) / sum
			if len(idx) == 0 {
				floor = pr * float64(p.MinP)
			} else if pr < floor {
				break
			}
			idx = append(idx, id)
			cum += pr
			if p.TopP < 1 && cum >= float64(p.TopP) {
				break
			}
		}
	}
	probs = softmaxOf(probs[:0], l, idx, p.Temperature)
	s.idx, s.probs = idx, probs
	u := s.rng.Float64()
	var cum float64
	for i, pr := range probs {
		cum += pr
		if u < cum {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}

// drawAll samples softmax(l/temperature) over every token, in id order.
func (s *Sampler) drawAll(l []float32) int32 {
	mx := float64(l[Argmax(l)])
	t := float64(s.p.Temperature)
	e := s.probs[:0]
	var sum float64
	for _, v := range l {
		x := math.Exp((float64(v) - mx) / t)
		e = append(e, x)
		sum += x
	}
	s.probs = e
	u := s.rng.Float64() * sum
	var cum float64
	last := 0
	for i, x := range e {
		cum += x
		if u < cum {
			return int32(i)
		}
		if x > 0 {
			last = i
		}
	}
	return int32(last) // rounding: the last token with any weight
}

// rank returns a heap of every token id, highest logit first (ties: lower
// id first).
func (s *Sampler) rank(l []float32) *ranking {
	ids := s.heapIDs[:0]
	for i := range l {
		ids = append(ids, int32(i))
	}
	s.heapIDs = ids
	h := &s.ranking
	*h = ranking{l: l, ids: ids}
	for i := len(ids)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	return h
}

// topK appends the k best-ranked token ids of l to dst, best first, in
// one pass that keeps the k best so far in a heap rooted at the worst of
// them, then empties that heap from the back.
func topK(dst []int32, l []float32, k int) []int32 {
	dst = slices.Grow(dst, k)
	h := ranking{l: l, ids: dst[len(dst):], worstFirst: true}
	for i := range l {
		id := int32(i)
		if len(h.ids) < k {
			h.ids = append(h.ids, id)
			h.up(len(h.ids) - 1)
		} else if h.better(id, h.ids[0]) {
			h.ids[0] = id
			h.down(0)
		}
	}
	out := dst[:len(dst)+len(h.ids)]
	for i := len(h.ids) - 1; i >= 0; i-- {
		out[len(dst)+i] = h.pop() // into the slot the pop just freed
	}
	return out
}

// ranking is a binary heap of token ids ordered by logit (ties: lower id
// first): best at the root, or worst with worstFirst.
type ranking struct {
	l          []float32
	ids        []int32
	worstFirst bool
}

// better reports whether token a ranks above token b.
func (h *ranking) better(a, b int32) bool {
	return h.l[a] > h.l[b] || (h.l[a] == h.l[b] && a < b)
}

// above reports whether a belongs nearer the root than b.
func (h *ranking) above(a, b int32) bool {
	if h.worstFirst {
		return h.better(b, a)
	}
	return h.better(a, b)
}

func (h *ranking) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h.ids) {
			return
		}
		if c+1 < len(h.ids) && h.above(h.ids[c+1], h.ids[c]) {
			c++
		}
		if !h.above(h.ids[c], h.ids[i]) {
			return
		}
		h.ids[i], h.ids[c] = h.ids[c], h.ids[i]
		i = c
	}
}

func (h *ranking) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.above(h.ids[i], h.ids[parent]) {
			return
		}
		h.ids[i], h.ids[parent] = h.ids[parent], h.ids[i]
		i = parent
	}
}

// pop removes and returns the highest-ranked token.
func (h *ranking) pop() int32 {
	top := h.ids[0]
	last := len(h.ids) - 1
	h.ids[0] = h.ids[last]
	h.ids = h.ids[:last]
	h.down(0)
	return top
}

// softmaxOf returns softmax(l[idx]/temp) in idx order, appended to dst.
func softmaxOf(dst []float64, l []float32, idx []int32, temp float32) []float64 {
	mx := math.Inf(-1)
	for _, i := range idx {
		mx = max(mx, float64(l[i]))
	}
	var sum float64
	for _, i := range idx {
		e := math.Exp((float64(l[i]) - mx) / float64(temp))
		dst = append(dst, e)
		sum += e
	}
	for i := range dst {
		dst[i] /= sum
	}
	return dst
}

// Argmax returns the index of the largest logit (the lowest on ties).
func Argmax(l []float32) int32 {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return int32(best)
}

func logSumExp(l []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range l {
		mx = max(mx, float64(v))
	}
	var sum float64
	for _, v := range l {
		sum += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(sum)
}

func logSoftmaxAt(l []float32, tok int32) float32 {
	return float32(float64(l[tok]) - logSumExp(l))
}

// TopLogprobs returns the n most likely tokens of logits with their
// log-probabilities, best first (lowest ID on ties).
func TopLogprobs(logits []float32, n int) []TokenLogprob {
	lse := logSumExp(logits)
	top := make([]TokenLogprob, 0, n+1)
	for i, v := range logits {
		if len(top) == n && v <= logits[top[n-1].Token] {
			continue
		}
		t := TokenLogprob{int32(i), float32(float64(v) - lse)}
		at, _ := slices.BinarySearchFunc(top, t, func(a, b TokenLogprob) int {
			if logits[a.Token] > logits[b.Token] || (logits[a.Token] == logits[b.Token] && a.Token < b.Token) {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, at, t)
		if len(top) > n {
			top = top[:n]
		}
	}
	return top
}
