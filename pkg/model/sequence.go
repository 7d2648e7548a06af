package model

import (
	"errors"
	"fmt"
	"slices"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Sequence is one sequence's KV cache: per layer, a table of blocks from
// the model's KVCache. A sliding-window layer holds only the blocks its
// window reaches, from position off[l] (a multiple of BlockTokens).
type Sequence struct {
	pool     *KVCache
	t        [][]*block // per layer, the blocks from position off[l] on
	win, off []int
	kd, vd   int // vd 0: values are read from the keys (MLA)
	n        int
	tokens   []int32  // what the cache holds, when the pool caches prefixes
	hashes   []uint64 // chained hashes of the full blocks of tokens
	inBatch  bool     // set while a Forward holds it
}

// kvCache returns the model's pool, making a default one on first use.
func (m *Model) kvCache() *KVCache {
	if m.KV == nil {
		m.KV, _ = NewKVCache(m, KVCacheConfig{}) // F32 suits every model
	}
	return m.KV
}

// NewSequence returns an empty sequence whose cache comes from m.KV.
func (m *Model) NewSequence() *Sequence {
	pool := m.kvCache()
	s := &Sequence{pool: pool, t: make([][]*block, m.Layers), kd: pool.kd, vd: pool.vd,
		win: make([]int, m.Layers), off: make([]int, m.Layers)}
	for l := range s.win {
		s.win[l] = m.Shared.Layers[l].Attn.window()
	}
	return s
}

// Len is the number of positions in the cache.
func (s *Sequence) Len() int { return s.n }

// Reserve makes sure the cache has blocks for n positions in all (a
// sliding-window layer: for what its window reaches), so that a sequence
// whose length is bounded up front (prompt plus max tokens) is admitted
// only when its memory is there, and never needs more while it runs.
// It returns ErrKVFull, holding what it held before, when the pool's
// budget cannot hold them.
func (s *Sequence) Reserve(n int) error {
	ends := make([]int, len(s.t))
	for l := range s.t {
		ends[l] = n
		if w := s.win[l]; w > 0 {
			ends[l] = min(n, s.n+2*w)
		}
	}
	return s.grow(ends)
}

// grow gives each layer l blocks up to position ends[l], all or none.
func (s *Sequence) grow(ends []int) error {
	had := make([]int, len(s.t))
	for l := range s.t {
		had[l] = len(s.t[l]) // every layer's, before any grows: a failure undoes only what this call added
	}
	for l := range s.t {
		for s.off[l]+len(s.t[l])*BlockTokens < ends[l] {
			b, err := s.pool.alloc()
			if err != nil {
				for l := range s.t {
					for _, b := range s.t[l][had[l]:] {
						s.pool.release(b)
					}
					s.t[l] = s.t[l][:had[l]]
				}
				return err
			}
			s.t[l] = append(s.t[l], b)
		}
	}
	return nil
}

// prepare makes the cache ready for k more positions: the block the next
// position falls in is this sequence's own (a shared one is copied), and
// blocks reach the last.
func (s *Sequence) prepare(k int) error {
	ends := make([]int, len(s.t))
	for l := range s.t {
		ends[l] = s.n + k
		bi := (s.n - s.off[l]) / BlockTokens
		if bi < len(s.t[l]) && s.t[l][bi].ref > 1 {
			b, err := s.pool.alloc()
			if err != nil {
				return err
			}
			old := s.t[l][bi]
			copy(b.k, old.k)
			copy(b.v, old.v)
			copy(b.kb, old.kb)
			copy(b.vb, old.vb)
			s.pool.release(old)
			s.t[l][bi] = b
		}
	}
	return s.grow(ends)
}

// put writes the key and value of position pos in layer l.
func (s *Sequence) put(l, pos int, k, v []float32) {
	b := s.t[l][(pos-s.off[l])/BlockTokens]
	at := pos % BlockTokens
	if p := s.pool; p.typ != tensor.F32 {
		tensor.Quantize(p.typ, b.kb[at*p.kRow:at*p.kRow:(at+1)*p.kRow], k)
		tensor.Quantize(p.typ, b.vb[at*p.vRow:at*p.vRow:(at+1)*p.vRow], v)
		return
	}
	copy(b.k[at*s.kd:(at+1)*s.kd], k)
	copy(b.v[at*s.vd:(at+1)*s.vd], v)
}

// advance records that tokens now follow in the cache: their full blocks
// join the pool's prefix index, and sliding-window layers drop the blocks
// no later position can attend to.
func (s *Sequence) advance(tokens []int32) {
	s.n += len(tokens)
	if s.pool.prefix {
		s.tokens = append(s.tokens, tokens...)
		blocks := make([]*block, len(s.t))
		for bi := len(s.hashes); (bi+1)*BlockTokens <= s.n; bi++ {
			for l := range s.t {
				blocks[l] = nil
				if i := bi - s.off[l]/BlockTokens; i >= 0 {
					blocks[l] = s.t[l][i]
				}
			}
			var parent uint64
			if bi > 0 {
				parent = s.hashes[bi-1]
			}
			s.hashes = append(s.hashes, s.pool.insert(parent, s.tokens[bi*BlockTokens:(bi+1)*BlockTokens], blocks))
		}
	}
	for l, w := range s.win {
		if w == 0 {
			continue
		}
		// The next position attends from n-w+1 on.
		for drop := (s.n - w + 1 - s.off[l]) / BlockTokens; drop > 0 && len(s.t[l]) > 0; drop-- {
			s.pool.release(s.t[l][0])
			s.t[l] = s.t[l][1:]
			s.off[l] += BlockTokens
		}
	}
}

// Reuse starts an empty sequence with the longest prefix of prompt that
// the pool has cached, in whole blocks and leaving at least one token of
// the prompt to compute (its logits are wanted), and returns how many
// positions it holds. Without prefix caching it returns 0.
func (s *Sequence) Reuse(prompt []int32) int {
	if !s.pool.prefix || s.n != 0 {
		return 0
	}
	s.pool.lookups += int64(len(prompt))
	var found []*entry
	var parent uint64
	for bi := 0; (bi+1)*BlockTokens < len(prompt); bi++ {
		en := s.pool.lookup(parent, prompt[bi*BlockTokens:(bi+1)*BlockTokens])
		if en == nil {
			break
		}
		found, parent = append(found, en), en.hash
	}
	// A sliding-window layer needs the blocks its window reaches from the
	// first new position; a cache entry may have lost them.
	m := len(found)
	for ; m > 0; m-- {
		ok := true
		for l, w := range s.win {
			for bi := max(0, m*BlockTokens-w+1) / BlockTokens; w > 0 && bi < m; bi++ {
				ok = ok && found[bi].blocks[l] != nil
			}
		}
		if ok {
			break
		}
	}
	for l, w := range s.win {
		first := 0
		if w > 0 {
			first = max(0, m*BlockTokens-w+1) / BlockTokens
		}
		s.off[l] = first * BlockTokens
		for _, en := range found[first:m] {
			b := en.blocks[l]
			b.ref++
			s.t[l] = append(s.t[l], b)
		}
	}
	for i := m - 1; i >= 0; i-- { // parents end most recent: evicted after their children
		s.pool.lru.MoveToBack(found[i].elem)
		s.hashes = append(s.hashes, 0)
	}
	for i := range m {
		s.hashes[i] = found[i].hash
	}
	s.n = m * BlockTokens
	s.tokens = append(s.tokens, prompt[:s.n]...)
	s.pool.hits += int64(s.n)
	return s.n
}

// Fork returns a sequence holding what s holds, for a second
// continuation of the same positions (several samples of one prompt,
// computed once): it shares every block of s, each held once more, and
// whichever of them next writes into a shared block copies it first
// (prepare), so neither sees the other's later positions.
func (s *Sequence) Fork() *Sequence {
	f := &Sequence{pool: s.pool, t: make([][]*block, len(s.t)), win: s.win, off: slices.Clone(s.off), kd: s.kd, vd: s.vd,
		n: s.n, tokens: slices.Clone(s.tokens), hashes: slices.Clone(s.hashes)}
	for l := range s.t {
		f.t[l] = slices.Clone(s.t[l])
		for _, b := range f.t[l] {
			b.ref++
		}
	}
	return f
}

// Release returns the sequence's blocks to the pool and empties it.
func (s *Sequence) Release() {
	for l := range s.t {
		for _, b := range s.t[l] {
			s.pool.release(b)
		}
		s.t[l], s.off[l] = nil, 0
	}
	s.n, s.tokens, s.hashes = 0, nil, nil
}

// ErrRewind is returned (wrapped) when a sequence is truncated further
// back than a sliding-window layer keeps.
var ErrRewind = errors.New("model: cannot rewind a sliding-window cache past its window")

// Truncate drops cached positions from n on. A sliding-window layer keeps
// only its last window positions, so it cannot go back further than
// that: the sequence is left as it was and ErrRewind returned.
func (s *Sequence) Truncate(n int) error {
	n = min(n, s.n)
	for l, w := range s.win {
		if w > 0 && max(0, n-w+1) < s.off[l] {
			return fmt.Errorf("%w: position %d, layer %d keeps positions from %d", ErrRewind, n, l, s.off[l])
		}
	}
	for l := range s.t {
		keep := (n - s.off[l] + BlockTokens - 1) / BlockTokens
		for _, b := range s.t[l][keep:] {
			s.pool.release(b)
		}
		s.t[l] = s.t[l][:keep]
	}
	s.n = n
	if s.pool.prefix {
		s.tokens = s.tokens[:n]
		s.hashes = s.hashes[:n/BlockTokens]
	}
	return nil
}

// held is the number of positions layer l holds (tests).
func (s *Sequence) held(l int) int { return s.n - s.off[l] }
