package grammar

import (
	"bytes"
	"slices"
)

// Vocab is a vocabulary prepared for masking: its tokens' bytes in a trie
// laid out in depth-first order, so that one pass over arrays visits every
// token and skipping a subtree is a jump. Safe for concurrent use.
type Vocab struct {
	tokens [][]byte
	eos    int32

	// The trie, one entry per node (a distinct non-empty token prefix), in
	// depth-first order of byte values.
	label []byte   // the node's last byte
	depth []uint16 // its length (1 for a child of the root)
	skip  []int32  // the index after its subtree
	first []int32  // its tokens are ids[first[i]:first[i+1]]
	ids   []int32
}

// maxTokenBytes bounds the length of a token the trie holds; longer tokens
// (none in released vocabularies) are never allowed.
const maxTokenBytes = 1 << 12

// NewVocab prepares a vocabulary: tokens[id] is the bytes token id stands
// for, empty for control tokens (which the mask never allows), and eos is
// the end-of-sequence token (negative for none). tokens is kept, not
// copied.
func NewVocab(tokens [][]byte, eos int32) *Vocab {
	v := &Vocab{tokens: tokens, eos: eos}
	order := make([]int32, 0, len(tokens))
	for id, t := range tokens {
		if len(t) > 0 && len(t) <= maxTokenBytes && int32(id) != eos {
			order = append(order, int32(id))
		}
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := bytes.Compare(tokens[a], tokens[b]); c != 0 {
			return c
		}
		return int(a - b)
	})
	// Walk the sorted tokens; each one adds the nodes of the part it does
	// not share with the previous one. open holds the nodes on the current
	// path, whose skip is set when they close.
	var open []int32
	var prev []byte
	for _, id := range order {
		t := tokens[id]
		common := 0
		for common < len(prev) && common < len(t) && prev[common] == t[common] {
			common++
		}
		for len(open) > common {
			v.skip[open[len(open)-1]] = int32(len(v.label))
			open = open[:len(open)-1]
		}
		for d := common; d < len(t); d++ {
			open = append(open, int32(len(v.label)))
			v.label = append(v.label, t[d])
			v.depth = append(v.depth, uint16(d+1))
			v.skip = append(v.skip, 0)
			v.first = append(v.first, int32(len(v.ids)))
		}
		v.ids = append(v.ids, id)
		prev = t
	}
	for _, n := range open {
		v.skip[n] = int32(len(v.label))
	}
	v.first = append(v.first, int32(len(v.ids)))
	return v
}

// Size is the number of tokens: a mask needs (Size()+63)/64 words.
func (v *Vocab) Size() int { return len(v.tokens) }

// Mask sets bits to the tokens allowed next: bit id%64 of bits[id/64] is
// set when the token may follow. The end-of-sequence token is allowed only
// where the grammar can end, and is the only token allowed where it must.
// bits must have at least (Size()+63)/64 words; they are overwritten. After
// the end-of-sequence token, nothing is allowed.
func (m *Matcher) Mask(bits []uint64) {
	v := m.v
	n := (len(v.tokens) + 63) / 64
	bits = bits[:n]
	if m.ended {
		clear(bits)
		return
	}
	e := &m.g.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	s := m.st
	if s.maskVocab == v {
		copy(bits, s.mask)
		return
	}
	clear(bits)
	e.walk(s, v, bits)
	if v.eos >= 0 && s.accept {
		bits[v.eos>>6] |= 1 << (v.eos & 63)
	}
	s.mask, s.maskVocab = slices.Clone(bits), v
	e.charge(8 * n)
}

// walk sets the bits of the tokens whose bytes the grammar allows from s.
func (e *engine) walk(s *state, v *Vocab, bits []uint64) {
	var path [maxTokenBytes + 1]*state
	path[0] = s
	label, depth, skip, first, ids := v.label, v.depth, v.skip, v.first, v.ids
	for i := 0; i < len(label); {
		p := path[depth[i]-1]
		var t *state
		if p.trans != nil {
			t = p.trans[label[i]]
		}
		if t == nil {
			t = e.next(p, label[i])
		}
		if t == dead {
			i = int(skip[i])
			continue
		}
		path[depth[i]] = t
		for _, id := range ids[first[i]:first[i+1]] {
			bits[id>>6] |= 1 << (id & 63)
		}
		i++
	}
}
