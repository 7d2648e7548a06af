package grammar

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// The matcher follows llama.cpp's grammar sampler: a parse is a stack of
// grammar positions whose top is the byte set to match next and whose
// other entries are where to return when a rule ends; a state is the set of
// parses alive. A rule reference that ends an alternative pushes no return
// (a tail call), so `r ::= x r | ""` loops without growing the stack.
//
// Parses are interned (frame: a position and the frame below it), so a
// state is a sorted list of frame pointers, and states are interned by it:
// the same state reached twice is the same *state, whose transitions by
// each byte and whose mask are computed once. Interning only saves work;
// nothing depends on it for correctness, which is what lets the caches be
// dropped whenever they pass Limits.CacheBytes.

// frame is one entry of a parse stack: pos and the frames below it.
type frame struct {
	pos    int32
	depth  int32
	id     uint64
	parent *frame
}

// state is a set of parses.
type state struct {
	tops   []*frame // the top frames of the stacks alive, by id
	accept bool     // a parse has ended: the grammar may end here
	trans  *[256]*state
	// mask is the token mask of this state for maskVocab.
	mask      []uint64
	maskVocab *Vocab
}

// dead is the state with no parse: the byte is refused.
var dead = &state{}

type frameKey struct {
	pos    int32
	parent uint64
}

// engineCache is the memo of one Grammar, guarded by engine.mu.
type engineCache struct {
	frames  map[frameKey]*frame
	states  map[string]*state
	start   *state
	nextID  uint64
	bytes   int
	scratch []*frame
	key     []byte
	// seen holds the (position, stack) pairs one expansion has visited:
	// nullable rules can reach one many ways (2^n through n nested
	// `a ::= b b`), and each need be followed once.
	seen  map[frameKey]struct{}
	acc   bool // an expansion emptied a stack
	steps int  // what the expansion may still visit; below 0 it gave up
}

// Rough sizes for the CacheBytes budget.
const (
	frameCost = 64
	stateCost = 96
	transCost = 256 * 8
)

func (e *engine) init(g *Grammar) {
	e.g = g
	e.reset()
}

func (e *engine) reset() {
	e.seen = map[frameKey]struct{}{}
	e.frames = map[frameKey]*frame{}
	e.states = map[string]*state{}
	e.bytes = 0
	e.start = nil
}

// charge adds n bytes to the budget, starting the caches afresh when it is
// spent. States already handed out stay valid: they are only no longer
// shared with new ones.
func (e *engine) charge(n int) {
	e.bytes += n
	if e.bytes > e.g.lim.CacheBytes {
		e.reset()
	}
}

func (e *engine) frame(pos int32, parent *frame) *frame {
	k := frameKey{pos: pos}
	depth := int32(1)
	if parent != nil {
		k.parent, depth = parent.id, parent.depth+1
	}
	if int(depth) > e.g.lim.StackDepth {
		return nil
	}
	if f, ok := e.frames[k]; ok {
		return f
	}
	e.nextID++
	f := &frame{pos: pos, depth: depth, id: e.nextID, parent: parent}
	e.frames[k] = f
	e.charge(frameCost)
	return f
}

// expand adds to e.scratch the parses that continue from pos with the
// stack below it `parent`, descending into rules until each top is a byte
// set, and sets e.acc when a parse ends (the stack empties). Callers clear
// e.seen, e.scratch and e.acc first.
func (e *engine) expand(pos int32, parent *frame) {
	g := e.g
	for {
		if e.steps--; e.steps < 0 || len(e.scratch) > g.lim.Parses {
			e.steps = -1
			return
		}
		k := frameKey{pos: pos}
		if parent != nil {
			k.parent = parent.id
		}
		if _, ok := e.seen[k]; ok {
			return
		}
		e.seen[k] = struct{}{}
		el := &g.elems[pos]
		switch el.kind {
		case elSet:
			if f := e.frame(pos, parent); f != nil {
				e.scratch = append(e.scratch, f)
			}
			return
		case elEnd:
			if parent == nil {
				e.acc = true
				return
			}
			pos, parent = parent.pos, parent.parent
		case elRef:
			ret := parent
			if g.elems[pos+1].kind != elEnd {
				if ret = e.frame(pos+1, parent); ret == nil {
					return
				}
			}
			alts := g.alts[el.rule]
			for _, a := range alts[1:] {
				e.expand(a, ret)
			}
			pos, parent = alts[0], ret
		}
	}
}

// begin clears the expansion scratch. An expansion may visit 16 grammar
// positions per parse it may keep (Limits.Parses), so an ambiguous grammar
// whose parses multiply gives up in bounded time.
func (e *engine) begin() {
	clear(e.seen)
	e.scratch = e.scratch[:0]
	e.acc = false
	e.steps = 16 * e.g.lim.Parses
}

// intern returns the state of the parses in e.scratch.
func (e *engine) intern(accept bool) *state {
	tops := e.scratch
	if len(tops) == 0 && !accept || e.steps < 0 {
		return dead
	}
	slices.SortFunc(tops, func(a, b *frame) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	tops = slices.Compact(tops)
	if len(tops) > e.g.lim.Parses {
		return dead
	}
	k := e.key[:0]
	if accept {
		k = append(k, 1)
	} else {
		k = append(k, 0)
	}
	for _, f := range tops {
		k = binary.LittleEndian.AppendUint64(k, f.id)
	}
	e.key = k
	if s, ok := e.states[string(k)]; ok {
		return s
	}
	s := &state{tops: slices.Clone(tops), accept: accept}
	e.states[string(k)] = s
	e.charge(stateCost + len(k) + 8*len(tops))
	return s
}

func (e *engine) startState() *state {
	if e.start == nil {
		e.begin()
		for _, a := range e.g.alts[e.g.root] {
			e.expand(a, nil)
		}
		e.start = e.intern(e.acc)
	}
	return e.start
}

// next is the state after byte b, memoised in s.trans.
func (e *engine) next(s *state, b byte) *state {
	if s == dead {
		return dead
	}
	if s.trans != nil {
		if t := s.trans[b]; t != nil {
			return t
		}
	}
	e.begin()
	for _, f := range s.tops {
		if e.g.elems[f.pos].has(b) {
			e.expand(f.pos+1, f.parent)
		}
	}
	t := e.intern(e.acc)
	if s.trans == nil {
		s.trans = new([256]*state)
		e.charge(transCost)
	}
	s.trans[b] = t
	return t
}

// Matcher tracks one generated sequence through a grammar. Not safe for
// concurrent use; different matchers of one Grammar may be used
// concurrently (they share its caches under a lock).
type Matcher struct {
	g     *Grammar
	v     *Vocab
	st    *state
	ended bool // the end-of-sequence token was accepted
}

// NewMatcher starts matching at the beginning of the grammar. v is the
// vocabulary Mask and Accept use; it may be nil for a matcher fed only by
// AcceptBytes.
func (g *Grammar) NewMatcher(v *Vocab) *Matcher {
	g.eng.mu.Lock()
	defer g.eng.mu.Unlock()
	return &Matcher{g: g, v: v, st: g.eng.startState()}
}

// Reset goes back to the beginning of the grammar.
func (m *Matcher) Reset() {
	m.g.eng.mu.Lock()
	defer m.g.eng.mu.Unlock()
	m.st, m.ended = m.g.eng.startState(), false
}

// Clone returns an independent copy of the matcher in its current state.
func (m *Matcher) Clone() *Matcher {
	c := *m
	return &c
}

// Done reports whether the sequence is over: the end-of-sequence token was
// accepted, or the grammar has ended and allows nothing more.
func (m *Matcher) Done() bool {
	return m.ended || (m.st.accept && len(m.st.tops) == 0)
}

// Accept advances the matcher by a token of its vocabulary. A token the
// grammar does not allow here (one Mask clears) is an error wrapping
// ErrRejected, and leaves the matcher as it was.
func (m *Matcher) Accept(token int32) error {
	if m.v == nil || token < 0 || int(token) >= len(m.v.tokens) {
		return fmt.Errorf("%w: token %d is not in the vocabulary", ErrRejected, token)
	}
	if m.ended {
		return fmt.Errorf("%w: token %d after the end of the sequence", ErrRejected, token)
	}
	if token == m.v.eos {
		if !m.st.accept {
			return fmt.Errorf("%w: end of sequence before the grammar is complete", ErrRejected)
		}
		m.ended = true
		return nil
	}
	b := m.v.tokens[token]
	if len(b) == 0 {
		return fmt.Errorf("%w: token %d has no text", ErrRejected, token)
	}
	if err := m.AcceptBytes(b); err != nil {
		return fmt.Errorf("token %d: %w", token, err)
	}
	return nil
}

// AcceptBytes advances the matcher by text. Bytes the grammar does not
// allow are an error wrapping ErrRejected, and leave the matcher as it was.
func (m *Matcher) AcceptBytes(text []byte) error {
	if m.ended {
		return fmt.Errorf("%w: %q after the end of the sequence", ErrRejected, text)
	}
	e := &m.g.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	s := m.st
	for i, b := range text {
		if s = e.next(s, b); s == dead {
			return fmt.Errorf("%w: %q at byte %d of %q", ErrRejected, b, i, text)
		}
	}
	m.st = s
	return nil
}
