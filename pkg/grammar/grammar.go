// Package grammar constrains what a model may write: a context-free grammar
// over bytes, built from GBNF (llama.cpp's grammar format) or from a JSON
// Schema, and a per-step mask of the vocabulary's tokens that keeps the
// output inside the grammar.
//
// A Grammar is compiled once and is safe for concurrent use; each sequence
// being generated has its own Matcher, which Mask asks for the tokens that
// may come next (as bits, for the sampler) and Accept advances by the
// sampled token. The end-of-sequence token is allowed exactly when the
// grammar can end there.
//
// Terminals are Unicode code points, as in llama.cpp, but the matcher runs
// on bytes: character classes are compiled to the UTF-8 byte sequences of
// their code points, so a token that ends in the middle of a character is
// judged by the bytes it has, and invalid UTF-8 is never allowed.
//
// How the mask is made: the grammar's parse states (sets of stacks, as in
// llama.cpp's sampler) are interned and their byte transitions memoised, so
// the matcher is a lazily built automaton; a vocabulary is a trie of its
// tokens' bytes, walked once per mask under the current state, where a
// byte that leaves no parse prunes every token below it; and the mask of a
// state is cached, so a state seen before (inside a string, between keys)
// costs a copy. These caches belong to the Grammar and are bounded by
// Limits.CacheBytes.
//
// It is not a JSON Schema validator: a schema's grammar accepts a subset of
// the schema's instances (one key order, limited whitespace; see
// FromJSONSchema), every string of which validates.
package grammar

import (
	"errors"
	"fmt"
	"sync"
)

// Errors, wrapped by every error of this package.
var (
	// ErrSyntax: GBNF or a pattern that does not parse.
	ErrSyntax = errors.New("grammar: syntax error")
	// ErrInvalid: a grammar that parses but cannot be used (an undefined
	// rule, left recursion, no root).
	ErrInvalid = errors.New("grammar: invalid grammar")
	// ErrUnsupported: a JSON Schema construct this package cannot express;
	// the message names it.
	ErrUnsupported = errors.New("grammar: unsupported")
	// ErrLimit: input past one of Limits.
	ErrLimit = errors.New("grammar: limit exceeded")
	// ErrRejected: a token or bytes the grammar does not allow here.
	ErrRejected = errors.New("grammar: rejected")
)

// Limits bound what untrusted grammars and schemas may cost. Each field's
// zero value means its default.
type Limits struct {
	// SourceBytes is the largest GBNF text or JSON Schema read; default 1 MiB.
	SourceBytes int
	// Rules is the most rules a grammar may have after repetitions and
	// character classes are expanded into rules of their own; default 65,536.
	Rules int
	// Elements is the most compiled grammar elements (a byte set, a rule
	// reference, an end of alternative); default 1 << 20.
	Elements int
	// Nesting is the deepest nesting of parentheses in GBNF, of subschemas
	// in a JSON Schema, or of groups in a pattern; default 64.
	Nesting int
	// StackDepth is the deepest the matcher's parse stacks may grow (about
	// two per level of nested JSON); a byte that would go deeper is refused.
	// Default 512.
	StackDepth int
	// Parses is the most parses (stacks) the matcher keeps alive at once; a
	// byte that would leave more, or whose expansion visits more than 16
	// grammar positions per parse allowed, is refused, so a hugely
	// ambiguous grammar costs bounded time. Default 1024.
	Parses int
	// CacheBytes bounds the memoised states, transitions and masks a
	// Grammar keeps; past it the caches start afresh. Default 64 MiB.
	CacheBytes int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.SourceBytes, 1<<20)
	def(&l.Rules, 1<<16)
	def(&l.Elements, 1<<20)
	def(&l.Nesting, 64)
	def(&l.StackDepth, 512)
	def(&l.Parses, 1024)
	def(&l.CacheBytes, 64<<20)
	return l
}

// expr is a node of a grammar's syntax tree, as GBNF writes it.
type expr struct {
	kind   exprKind
	kids   []*expr     // seq, alt, repeat (one kid)
	min    int         // repeat
	max    int         // repeat; -1 is unbounded
	ranges []runeRange // class: sorted, disjoint, not adjacent
	lit    string      // lit: the bytes (UTF-8 of the code points)
	name   string      // ref
}

type exprKind uint8

const (
	exSeq exprKind = iota
	exAlt
	exRepeat
	exClass // code points
	exBytes // bytes (ranges within 0…255), what classes compile to
	exLit
	exRef
)

func seq(kids ...*expr) *expr { return &expr{kind: exSeq, kids: kids} }
func alt(kids ...*expr) *expr { return &expr{kind: exAlt, kids: kids} }
func lit(s string) *expr      { return &expr{kind: exLit, lit: s} }
func ref(name string) *expr   { return &expr{kind: exRef, name: name} }
func repeat(x *expr, min, max int) *expr {
	return &expr{kind: exRepeat, kids: []*expr{x}, min: min, max: max}
}
func opt(x *expr) *expr  { return repeat(x, 0, 1) }
func star(x *expr) *expr { return repeat(x, 0, -1) }

// class is the set of code points in ranges (which need not be sorted).
func class(ranges ...runeRange) *expr {
	return &expr{kind: exClass, ranges: normRanges(ranges)}
}

// chars is the class of the code points listed in s.
func chars(s string) *expr {
	var rs []runeRange
	for _, r := range s {
		rs = append(rs, runeRange{r, r})
	}
	return class(rs...)
}

// rule is a named production.
type rule struct {
	name string
	body *expr
}

// Grammar is a compiled grammar. It is safe for concurrent use.
type Grammar struct {
	rules []rule // as written (GBNF) or generated (JSON Schema), root first
	lim   Limits

	// compiled
	elems []elem
	alts  [][]int32 // per compiled rule: where each alternative starts in elems
	names []string  // per compiled rule: its name (generated ones too)
	root  int32

	eng engine
}

// elem is one compiled element: a byte set to match, a rule to expand, or
// the end of an alternative.
type elem struct {
	kind elemKind
	rule int32     // ref
	set  [4]uint64 // set: the bytes it matches
}

type elemKind uint8

const (
	elEnd elemKind = iota
	elSet
	elRef
)

func (e *elem) has(b byte) bool { return e.set[b>>6]&(1<<(b&63)) != 0 }

// newGrammar compiles rules (rules[0] is the root).
func newGrammar(rules []rule, lim Limits) (*Grammar, error) {
	g := &Grammar{rules: rules, lim: lim}
	c := compiler{g: g, byName: map[string]int32{}, classes: map[string]int32{}}
	if err := c.compile(); err != nil {
		return nil, err
	}
	g.eng.init(g)
	return g, nil
}

type compiler struct {
	g       *Grammar
	byName  map[string]int32
	classes map[string]int32 // memoised multi-byte classes, by their ranges
	pending [][]*expr        // per compiled rule, its alternatives until emitted
	srcRule []string         // per compiled rule, the source rule it came from (for errors)
}

func (c *compiler) compile() error {
	g := c.g
	if len(g.rules) == 0 {
		return fmt.Errorf("%w: no rules", ErrInvalid)
	}
	for _, r := range g.rules {
		if _, dup := c.byName[r.name]; dup {
			return fmt.Errorf("%w: rule %q defined twice", ErrInvalid, r.name)
		}
		c.newRule(r.name, r.name, alternatives(r.body))
	}
	// Emitting a rule may add rules (groups, repetitions, classes).
	for i := 0; i < len(c.pending); i++ {
		if len(c.pending) > g.lim.Rules {
			return fmt.Errorf("%w: more than %d rules after expansion", ErrLimit, g.lim.Rules)
		}
		alts := c.pending[i]
		c.pending[i] = nil
		starts := make([]int32, 0, len(alts))
		for _, a := range alts {
			starts = append(starts, int32(len(g.elems)))
			if err := c.emitSeq(i, a); err != nil {
				return err
			}
			g.elems = append(g.elems, elem{kind: elEnd})
			if len(g.elems) > g.lim.Elements {
				return fmt.Errorf("%w: more than %d grammar elements", ErrLimit, g.lim.Elements)
			}
		}
		g.alts[i] = starts
	}
	g.root = 0
	return c.checkLeftRecursion()
}

func (c *compiler) newRule(name, src string, alts []*expr) int32 {
	id := int32(len(c.pending))
	c.byName[name] = id
	c.pending = append(c.pending, alts)
	c.srcRule = append(c.srcRule, src)
	c.g.alts = append(c.g.alts, nil)
	c.g.names = append(c.g.names, name)
	return id
}

// aux adds a generated rule for a part of rule `in`.
func (c *compiler) aux(in int, alts []*expr) int32 {
	return c.newRule(fmt.Sprintf("%s-%d", c.g.names[in], len(c.pending)), c.srcRule[in], alts)
}

func alternatives(x *expr) []*expr {
	if x.kind == exAlt {
		return x.kids
	}
	return []*expr{x}
}

// emitSeq appends the elements of one alternative of rule `in`.
func (c *compiler) emitSeq(in int, x *expr) error {
	g := c.g
	switch x.kind {
	case exSeq:
		for _, k := range x.kids {
			if err := c.emitSeq(in, k); err != nil {
				return err
			}
		}
	case exLit:
		for i := 0; i < len(x.lit); i++ {
			var e elem
			e.kind = elSet
			b := x.lit[i]
			e.set[b>>6] |= 1 << (b & 63)
			g.elems = append(g.elems, e)
		}
	case exRef:
		id, ok := c.byName[x.name]
		if !ok {
			return fmt.Errorf("%w: rule %q refers to undefined rule %q", ErrInvalid, c.srcRule[in], x.name)
		}
		g.elems = append(g.elems, elem{kind: elRef, rule: id})
	case exAlt:
		if len(x.kids) == 1 {
			return c.emitSeq(in, x.kids[0])
		}
		g.elems = append(g.elems, elem{kind: elRef, rule: c.aux(in, x.kids)})
	case exClass, exBytes:
		if len(x.ranges) == 0 {
			return fmt.Errorf("%w: rule %q has an empty character class", ErrInvalid, c.srcRule[in])
		}
		if x.kind == exBytes || x.ranges[len(x.ranges)-1].hi < 0x80 {
			var e elem
			e.kind = elSet
			for _, r := range x.ranges {
				for b := r.lo; b <= r.hi; b++ {
					e.set[b>>6] |= 1 << (b & 63)
				}
			}
			g.elems = append(g.elems, e)
			return nil
		}
		key := fmt.Sprint(x.ranges)
		id, ok := c.classes[key]
		if !ok {
			id = c.aux(in, utf8Alternatives(x.ranges))
			c.classes[key] = id
		}
		g.elems = append(g.elems, elem{kind: elRef, rule: id})
	case exRepeat:
		return c.emitRepeat(in, x)
	}
	if len(g.elems) > g.lim.Elements {
		return fmt.Errorf("%w: more than %d grammar elements", ErrLimit, g.lim.Elements)
	}
	return nil
}

// emitRepeat writes x{min,max} as min copies of x followed by the optional
// rest: x* as `r ::= x r | ""` (right recursion, which the matcher runs as
// a loop) and x{0,n} as n nested optional rules `r_k ::= x r_(k-1) | ""`,
// as llama.cpp does, so the matcher never holds n alternatives at once.
func (c *compiler) emitRepeat(in int, x *expr) error {
	item := x.kids[0]
	if x.max >= 0 && x.max < x.min {
		return fmt.Errorf("%w: rule %q repeats {%d,%d}", ErrInvalid, c.srcRule[in], x.min, x.max)
	}
	if x.min > c.g.lim.Elements || x.max > c.g.lim.Elements {
		return fmt.Errorf("%w: rule %q repeats %d times", ErrLimit, c.srcRule[in], max(x.min, x.max))
	}
	if x.max == 0 {
		return nil
	}
	// A group repeated is a rule of its own, referenced by each copy.
	if item.kind == exSeq || item.kind == exAlt || item.kind == exRepeat {
		item = &expr{kind: exRef, name: c.g.names[c.aux(in, alternatives(item))]}
	}
	for range x.min {
		if err := c.emitSeq(in, item); err != nil {
			return err
		}
	}
	empty := seq()
	switch {
	case x.max < 0:
		id := c.aux(in, nil)
		c.pending[id] = []*expr{seq(item, &expr{kind: exRef, name: c.g.names[id]}), empty}
		c.g.elems = append(c.g.elems, elem{kind: elRef, rule: id})
	case x.max > x.min:
		var prev *expr
		for range x.max - x.min {
			body := seq(item)
			if prev != nil {
				body = seq(item, prev)
			}
			id := c.aux(in, []*expr{body, empty})
			prev = &expr{kind: exRef, name: c.g.names[id]}
		}
		return c.emitSeq(in, prev)
	}
	return nil
}

// checkLeftRecursion refuses a rule that can reach itself without matching
// a byte (directly, through rules that can be empty, or by repeating
// something that can be empty): the matcher would expand it forever.
func (c *compiler) checkLeftRecursion() error {
	g := c.g
	n := len(g.alts)
	nullable := make([]bool, n)
	for changed := true; changed; {
		changed = false
		for r := range n {
			if nullable[r] {
				continue
			}
			for _, a := range g.alts[r] {
				if c.nullableFrom(a, nullable) {
					nullable[r], changed = true, true
					break
				}
			}
		}
	}
	// Depth-first search over "can start with" edges.
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, n)
	type item struct {
		r     int32
		edges []int32
	}
	leftEdges := func(r int32) []int32 {
		var out []int32
		for _, a := range g.alts[r] {
			for p := a; ; p++ {
				e := &g.elems[p]
				if e.kind != elRef {
					break
				}
				out = append(out, e.rule)
				if !nullable[e.rule] {
					break
				}
			}
		}
		return out
	}
	for start := range int32(n) {
		if color[start] != white {
			continue
		}
		stack := []item{{start, leftEdges(start)}}
		color[start] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if len(top.edges) == 0 {
				color[top.r] = black
				stack = stack[:len(stack)-1]
				continue
			}
			next := top.edges[0]
			top.edges = top.edges[1:]
			switch color[next] {
			case grey:
				return fmt.Errorf("%w: rule %q is left-recursive (it can reach itself before matching anything, perhaps by repeating something that can be empty)", ErrInvalid, c.srcRule[next])
			case white:
				color[next] = grey
				stack = append(stack, item{next, leftEdges(next)})
			}
		}
	}
	return nil
}

func (c *compiler) nullableFrom(p int32, nullable []bool) bool {
	for ; ; p++ {
		e := &c.g.elems[p]
		switch e.kind {
		case elEnd:
			return true
		case elSet:
			return false
		case elRef:
			if !nullable[e.rule] {
				return false
			}
		}
	}
}

// Match reports whether the grammar accepts all of text.
func (g *Grammar) Match(text []byte) bool {
	m := g.NewMatcher(nil)
	return m.AcceptBytes(text) == nil && m.st.accept
}

// engine holds a Grammar's memoised parse states; see matcher.go.
type engine struct {
	mu sync.Mutex
	g  *Grammar
	engineCache
}
