package synth

import (
	"fmt"
	"sort"
	"strings"

	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// corpus is the text the synthetic vocabulary's merges are learnt from.
const corpus = `The quick brown fox jumps over the lazy dog. Mixture of experts models route each token to a few experts.
A coordinator runs the shared layers and sends activations to expert nodes over the network.
def forward(self, x):
    return self.down(silu(self.gate(x)) * self.up(x))
Hello world, experts! The list type is a mutable sequence. To open a file, use the open() function.
for i in range(10):
    print(i, i * i)
Switchyard serves models that are too large for one machine, and shows where every token goes.`

// Vocab is a byte-level BPE vocabulary laid out as llama.cpp's gpt2
// tokenizer expects: 256 byte tokens (id == byte), merges learnt from a
// small built-in text, padding, then BOS and EOS as the last two ids.
type Vocab struct {
	Tokens []string
	Types  []int32
	Merges []string
	BOS    int
	EOS    int
}

// Token types of tokenizer.ggml.token_type.
const (
	typeNormal  = 1
	typeControl = 3
	typeUnused  = 5
)

// NewVocab builds a vocabulary of size tokens (at least 258): up to 254
// merges, then <|unused_N|> padding, then <|bos|> and <|eos|>.
func NewVocab(size int) (Vocab, error) {
	if size < 258 {
		return Vocab{}, fmt.Errorf("synth: vocabulary of %d tokens is smaller than 258", size)
	}
	b2r := tokenizer.BytesToUnicode()
	var v Vocab
	for b := range 256 {
		v.Tokens = append(v.Tokens, string(b2r[b]))
		v.Types = append(v.Types, typeNormal)
	}
	known := map[string]bool{}
	for _, t := range v.Tokens {
		known[t] = true
	}
	// Words as GPT-2 splits them roughly: a leading space stays with the word.
	var words [][]string
	for _, w := range strings.SplitAfter(strings.ReplaceAll(corpus, "\n", " \n"), " ") {
		if w == "" {
			continue
		}
		w = " " + strings.TrimSuffix(w, " ")
		var syms []string
		for _, b := range []byte(w) {
			syms = append(syms, string(b2r[b]))
		}
		words = append(words, syms)
	}
	maxMerges := min(254, size-258)
	for len(v.Merges) < maxMerges {
		counts := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w); i++ {
				counts[[2]string{w[i], w[i+1]}]++
			}
		}
		type pc struct {
			p [2]string
			n int
		}
		var pairs []pc
		for p, n := range counts {
			if !known[p[0]+p[1]] {
				pairs = append(pairs, pc{p, n})
			}
		}
		if len(pairs) == 0 {
			break
		}
		sort.Slice(pairs, func(i, j int) bool {
			if pairs[i].n != pairs[j].n {
				return pairs[i].n > pairs[j].n
			}
			return pairs[i].p[0]+" "+pairs[i].p[1] < pairs[j].p[0]+" "+pairs[j].p[1]
		})
		best := pairs[0].p
		tok := best[0] + best[1]
		known[tok] = true
		v.Merges = append(v.Merges, best[0]+" "+best[1])
		v.Tokens = append(v.Tokens, tok)
		v.Types = append(v.Types, typeNormal)
		for wi, w := range words {
			var out []string
			for i := 0; i < len(w); i++ {
				if i+1 < len(w) && w[i] == best[0] && w[i+1] == best[1] {
					out = append(out, tok)
					i++
				} else {
					out = append(out, w[i])
				}
			}
			words[wi] = out
		}
	}
	for i := 0; len(v.Tokens) < size-2; i++ {
		v.Tokens = append(v.Tokens, fmt.Sprintf("<|unused_%d|>", i))
		v.Types = append(v.Types, typeUnused)
	}
	v.BOS, v.EOS = size-2, size-1
	v.Tokens = append(v.Tokens, "<|bos|>", "<|eos|>")
	v.Types = append(v.Types, typeControl, typeControl)
	return v, nil
}
