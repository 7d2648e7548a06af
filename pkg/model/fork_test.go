package model

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestFork: forks of a sequence after a prompt continue it independently,
// each bit-identical to computing its prompt and continuation afresh, on
// every architecture in testdata (sliding-window and MLA caches
// included); they share the prompt's blocks until they write (one copy
// each of the block the prompt ends in), and give every block back.
func TestFork(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/models/tiny-*.gguf")
	if len(paths) < 8 {
		t.Fatalf("found %d tiny models", len(paths))
	}
	prompt := make([]int32, 45) // a block and 13 positions: the last block is shared partly filled
	for i := range prompt {
		prompt[i] = int32(i*37%500) + 1
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m := loadModel(t, path)
			m.KV = mustKVCache(t, m, KVCacheConfig{})
			parent := m.NewSequence()
			out, err := m.Forward(t.Context(), []Chunk{{Seq: parent, Tokens: prompt}})
			if err != nil {
				t.Fatal(err)
			}
			last := out[0]
			used := m.KV.Stats().Used
			forks := []*Sequence{parent.Fork(), parent.Fork()}
			if got := m.KV.Stats().Used; got != used {
				t.Errorf("forking allocated %d blocks, want none", got-used)
			}
			// Three continuations: the parent greedy, the forks from other
			// first tokens, stepped in one batch as the scheduler does.
			seqs := append([]*Sequence{parent}, forks...)
			next := [][]int32{{argmax(last)}, {7}, {300}}
			got := make([][]float32, 3)
			for range 6 {
				chunks := make([]Chunk, 3)
				for i, s := range seqs {
					chunks[i] = Chunk{Seq: s, Tokens: next[i][len(next[i])-1:]}
				}
				outs, err := m.Forward(t.Context(), chunks)
				if err != nil {
					t.Fatal(err)
				}
				for i := range seqs {
					got[i] = append(got[i], outs[i]...)
					next[i] = append(next[i], argmax(outs[i]))
				}
			}
			// Each layer's block holding position 45 was copied by all but
			// one of its holders; the rest is shared.
			if want := used + 2*m.Layers; m.KV.Stats().Used != want {
				t.Errorf("%d blocks used after decoding, want %d (one copy a fork and layer)", m.KV.Stats().Used, want)
			}
			for i := range seqs {
				fresh := loadModel(t, path)
				s := fresh.NewSequence()
				toks := slices.Concat(prompt, next[i][:6])
				want, err := fresh.Forward(t.Context(), []Chunk{{Seq: s, Tokens: toks, AllLogits: true}})
				if err != nil {
					t.Fatal(err)
				}
				if w := want[0][len(prompt)*m.Vocab:]; !slices.Equal(got[i], w) {
					t.Errorf("continuation %d differs from computing it afresh: max |Δ| %g", i, maxDiff(got[i], w))
				}
			}
			for _, s := range seqs {
				s.Release()
			}
			if u := m.KV.Stats().Used; u != 0 {
				t.Errorf("%d blocks still used after releasing every sequence", u)
			}
		})
	}
}
