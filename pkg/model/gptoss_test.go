package model

import (
	"errors"
	"testing"
)

const tinyGptoss = "../../testdata/models/tiny-gptoss-f32.gguf"

// TestSlidingWindowBounded decodes far past gpt-oss's window of 8: the
// sliding layers (0 and 2) keep only the blocks the window reaches (at
// most 8-1+BlockTokens positions), the others every position, and the
// logits equal a second sequence that got the same tokens as one prompt.
func TestSlidingWindowBounded(t *testing.T) {
	f := mustOpen(t, tinyGptoss)
	m, err := LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.SlidingWindow != 8 || !f.Sliding(0) || f.Sliding(1) || !f.Sliding(2) || f.Sliding(3) {
		t.Fatalf("window %d, sliding layers wrong", f.SlidingWindow)
	}
	seq := m.NewSequence()
	tokens := make([]int32, 100)
	var last []float32
	for i := range tokens {
		tokens[i] = int32(i*37%500) + 1
		out, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: tokens[i : i+1]}})
		if err != nil {
			t.Fatal(err)
		}
		last = out[0]
		for l := range 4 {
			held := seq.held(l)
			if want := i + 1; !f.Sliding(l) && held != want {
				t.Fatalf("step %d layer %d holds %d positions, want %d", i, l, held, want)
			}
			if f.Sliding(l) && (held > 8-1+BlockTokens || len(seq.t[l]) > 2) {
				t.Fatalf("step %d sliding layer %d holds %d positions in %d blocks", i, l, held, len(seq.t[l]))
			}
		}
	}
	if held := m.KV.Stats().Used * m.KV.BlockBytes(); held > f.KVBytes(100) || held <= f.KVBytesPerToken()*100 {
		t.Errorf("cache holds %d bytes; bound %d, full layers alone %d", held, f.KVBytes(100), f.KVBytesPerToken()*100)
	}
	whole := m.NewSequence()
	out, err := m.Forward(t.Context(), []Chunk{{Seq: whole, Tokens: tokens}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(out[0], last); d > 1e-5 {
		t.Errorf("token by token vs one prompt: max |Δlogit| %g", d)
	}
	if err := seq.Truncate(50); !errors.Is(err, ErrRewind) {
		t.Errorf("rewinding 50 positions past the window: %v, want ErrRewind", err)
	}
	if err := seq.Truncate(95); err != nil || seq.Len() != 95 {
		t.Errorf("rewinding within the window: %v, length %d", err, seq.Len())
	}
}
