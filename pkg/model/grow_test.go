package model

import (
	"errors"
	"testing"
)

// TestFailedGrowKeepsEveryLayer: a sequence whose growth the pool cannot
// give keeps every layer's blocks as they were, and goes on to the
// logits of a sequence that never failed. Before, a failure on the first
// layer gave back every block of the layers after it (the "all or none"
// undo took them for added), and the sequence's later positions read
// whatever the pool put in their place: another sequence's keys.
func TestFailedGrowKeepsEveryLayer(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	if m.Layers != 2 {
		t.Fatalf("%d layers, want 2", m.Layers)
	}
	kv := mustKVCache(t, m, KVCacheConfig{})
	kv.limit = 2 // a block a layer for one sequence
	m.KV = kv
	p := make([]int32, BlockTokens)
	for i := range p {
		p[i] = int32(i + 3)
	}
	want := logitsOf(t, mustOpen(t, tinyMixtral), append(p, 7, 9))
	s := m.NewSequence()
	if _, err := m.Forward(t.Context(), []Chunk{{Seq: s, Tokens: p}}); err != nil {
		t.Fatal(err)
	}
	// A position past the first block needs one more a layer: 4 of 2.
	if err := s.Reserve(BlockTokens + 1); !errors.Is(err, ErrKVFull) {
		t.Fatalf("growing to 2 blocks a layer in a pool of 2: %v, want ErrKVFull", err)
	}
	for l := range s.t {
		if len(s.t[l]) != 1 {
			t.Errorf("layer %d holds %d blocks after the failed growth, want the 1 it had", l, len(s.t[l]))
		}
	}
	if st := kv.Stats(); st.Used != 2 {
		t.Errorf("%d blocks in use after the failed growth, want 2", st.Used)
	}
	// Room comes back (as when another sequence ends; here the pool's
	// limit): the sequence goes on as if nothing had failed.
	kv.limit = 4
	out, err := m.Forward(t.Context(), []Chunk{{Seq: s, Tokens: []int32{7, 9}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(out[0], want[(BlockTokens+1)*m.Vocab:]); d != 0 {
		t.Errorf("logits after the failed growth differ from an uninterrupted run by %g", d)
	}
}
