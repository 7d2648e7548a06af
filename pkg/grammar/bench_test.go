package grammar

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// npmModels is where .ci/run installs the tokenizer packages
// (testdata/tokenizers/README.md).
const npmModels = "../../testdata/tokenizers/npm/node_modules/@lenml/"

// benchVocab is a vocabulary's token bytes, as pkg/tokenizer decodes them,
// and its end-of-sequence token.
type benchVocab struct {
	tokens [][]byte
	eos    int32
}

func pieces(tk *tokenizer.Tokenizer) [][]byte {
	out := make([][]byte, tk.VocabSize())
	for id := range out {
		out[id] = tk.Piece(int32(id))
	}
	return out
}

// mediumVocab is the medium synthetic model's vocabulary (32,000 tokens, as
// `switchyard model synth --preset medium` writes it).
func mediumVocab(b *testing.B) benchVocab {
	v, err := synth.NewVocab(32000)
	if err != nil {
		b.Fatal(err)
	}
	tk, err := tokenizer.New("gpt2", "gpt-2", v.Tokens, v.Types, nil, v.Merges)
	if err != nil {
		b.Fatal(err)
	}
	return benchVocab{pieces(tk), int32(v.EOS)}
}

// releasedVocab reads a released model's tokenizer.json from its npm
// package, its added tokens typed as llama.cpp's converter types them
// (special ones are control tokens, which have no bytes), or skips.
func releasedVocab(b *testing.B, pkg, pre, eos string) benchVocab {
	path := npmModels + "tokenizer-" + pkg + "/models/tokenizer.json"
	data, err := os.ReadFile(path)
	if err != nil {
		b.Skipf("%s vocabulary absent (%v): run npm ci in testdata/tokenizers/npm", pkg, err)
	}
	var j struct {
		AddedTokens []struct {
			ID      int32  `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int32 `json:"vocab"`
			Merges json.RawMessage  `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		b.Fatal(err)
	}
	n := int32(0)
	for _, id := range j.Model.Vocab {
		n = max(n, id+1)
	}
	for _, a := range j.AddedTokens {
		n = max(n, a.ID+1)
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	for id := range tokens {
		tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokenizer.TypeUnused
	}
	for s, id := range j.Model.Vocab {
		tokens[id], types[id] = s, tokenizer.TypeNormal
	}
	for _, a := range j.AddedTokens {
		tokens[a.ID], types[a.ID] = a.Content, tokenizer.TypeUserDefined
		if a.Special {
			types[a.ID] = tokenizer.TypeControl
		}
	}
	var merges []string
	if err := json.Unmarshal(j.Model.Merges, &merges); err != nil {
		merges = nil // gpt-oss writes pairs
		var pairs [][2]string
		if err := json.Unmarshal(j.Model.Merges, &pairs); err != nil {
			b.Fatal(err)
		}
		for _, p := range pairs {
			merges = append(merges, p[0]+" "+p[1])
		}
	}
	tk, err := tokenizer.New("gpt2", pre, tokens, types, nil, merges)
	if err != nil {
		b.Fatal(err)
	}
	id, ok := tk.Lookup(eos)
	if !ok {
		b.Fatalf("%s: no token %q", pkg, eos)
	}
	return benchVocab{pieces(tk), id}
}

var benchVocabs = []struct {
	name string
	load func(*testing.B) benchVocab
}{
	{"medium-32k", mediumVocab},
	{"deepseek-v3-128k", func(b *testing.B) benchVocab {
		return releasedVocab(b, "deepseek_v3", "deepseek-v3", "<｜end▁of▁sentence｜>")
	}},
	{"gpt-oss-200k", func(b *testing.B) benchVocab { return releasedVocab(b, "gptoss", "gpt-4o", "<|return|>") }},
}

// benchSequences generates n token sequences for schema by random walks
// of mask and accept, as a model would write them.
func benchSequences(b *testing.B, g *Grammar, v *Vocab, n int) [][]int32 {
	rng := rand.New(rand.NewPCG(3, 4))
	mask := make([]uint64, (v.Size()+63)/64)
	var seqs [][]int32
	for len(seqs) < n {
		m := g.NewMatcher(v)
		var seq []int32
		for len(seq) < 200 {
			m.Mask(mask)
			var ids, closers []int32
			for id := range int32(v.Size()) {
				if mask[id/64]&(1<<(id%64)) == 0 {
					continue
				}
				ids = append(ids, id)
				if t := v.tokens[id]; id == v.eos || len(t) > 0 && (t[0] == '"' || t[0] == '}' || t[0] == ']' || t[0] == ',') {
					closers = append(closers, id)
				}
			}
			pick := ids[rng.IntN(len(ids))]
			if len(closers) > 0 && rng.IntN(3) == 0 {
				pick = closers[rng.IntN(len(closers))]
			}
			if err := m.Accept(pick); err != nil {
				b.Fatal(err)
			}
			seq = append(seq, pick)
			if pick == v.eos {
				seqs = append(seqs, seq)
				break
			}
		}
	}
	return seqs
}

// BenchmarkMask measures the mask of one decode step: for 1 and 16
// streams (matchers of one grammar, each replaying a generated sequence),
// Mask then Accept for each stream; ns/op is per decode step, mask-ns per
// Mask. "warm" reuses the grammar, as a server that caches compiled
// schemas would; "cold" compiles it afresh for each sequence, so every
// state's mask is computed by walking the trie.
func BenchmarkMask(b *testing.B) {
	for _, bv := range benchVocabs {
		b.Run(bv.name, func(b *testing.B) {
			raw := bv.load(b)
			v := NewVocab(raw.tokens, raw.eos)
			b.Logf("%s: %d tokens, %d trie nodes", bv.name, v.Size(), len(v.label))
			g, err := FromJSONSchema([]byte(personSchema), Limits{})
			if err != nil {
				b.Fatal(err)
			}
			seqs := benchSequences(b, g, v, 16)
			for _, streams := range []int{1, 16} {
				for _, cold := range []bool{false, true} {
					name := fmt.Sprintf("streams=%d/warm", streams)
					if cold {
						name = fmt.Sprintf("streams=%d/cold", streams)
					}
					b.Run(name, func(b *testing.B) {
						benchSteps(b, g, v, seqs[:streams], cold)
					})
				}
			}
		})
	}
}

func benchSteps(b *testing.B, g *Grammar, v *Vocab, seqs [][]int32, cold bool) {
	mask := make([]uint64, (v.Size()+63)/64)
	ms := make([]*Matcher, len(seqs))
	pos := make([]int, len(seqs))
	restart := func() {
		if cold {
			var err error
			if g, err = FromJSONSchema([]byte(personSchema), Limits{}); err != nil {
				b.Fatal(err)
			}
		}
		for i := range ms {
			ms[i], pos[i] = g.NewMatcher(v), 0
		}
	}
	restart()
	masks := 0
	for b.Loop() {
		for i := range ms {
			if pos[i] == len(seqs[i]) {
				if !cold {
					ms[i].Reset()
					pos[i] = 0
				} else {
					b.StopTimer()
					restart()
					b.StartTimer()
				}
			}
			m := ms[i]
			m.Mask(mask)
			if err := m.Accept(seqs[i][pos[i]]); err != nil {
				b.Fatal(err)
			}
			pos[i]++
			masks++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(masks), "mask-ns")
}

// BenchmarkMaskFullWalk measures the costliest mask: the first one inside
// a string of a freshly compiled grammar, where nearly every token is
// allowed and the whole trie is walked.
func BenchmarkMaskFullWalk(b *testing.B) {
	for _, bv := range benchVocabs {
		b.Run(bv.name, func(b *testing.B) {
			raw := bv.load(b)
			v := NewVocab(raw.tokens, raw.eos)
			mask := make([]uint64, (v.Size()+63)/64)
			for b.Loop() {
				b.StopTimer()
				g, err := FromJSONSchema([]byte(personSchema), Limits{})
				if err != nil {
					b.Fatal(err)
				}
				m := g.NewMatcher(v)
				if err := m.AcceptBytes([]byte(`{"name":"`)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				m.Mask(mask)
			}
			allowed := 0
			for _, w := range mask {
				allowed += bits.OnesCount64(w)
			}
			b.ReportMetric(float64(allowed), "allowed-tokens")
		})
	}
}
