package grammar

import (
	"fmt"
	"strconv"
)

// Literal is the grammar of exactly s (its bytes, which need not be valid
// UTF-8).
func Literal(s string) *Grammar {
	g, err := newGrammar([]rule{{name: "root", body: lit(s)}}, Limits{}.withDefaults())
	if err != nil {
		panic(err) // one literal always compiles
	}
	return g
}

// Seq is the grammar of a string of each of parts in turn: a JSON Schema's
// grammar between the fixed text a tool-call format writes around it, say.
// The parts are not changed; lim bounds the result as it bounds a
// compilation.
func Seq(lim Limits, parts ...*Grammar) (*Grammar, error) {
	return compose(lim, "seq", parts, func(kids ...*expr) *expr { return seq(kids...) })
}

// Alt is the grammar of a string of any one of choices.
func Alt(lim Limits, choices ...*Grammar) (*Grammar, error) {
	return compose(lim, "alt", choices, func(kids ...*expr) *expr { return alt(kids...) })
}

// compose makes a root of join over the roots of gs, each grammar's rules
// renamed apart (g0-…, g1-…) so that they cannot collide.
func compose(lim Limits, op string, gs []*Grammar, join func(...*expr) *expr) (*Grammar, error) {
	if len(gs) == 0 {
		return nil, fmt.Errorf("%w: %s of no grammars", ErrInvalid, op)
	}
	lim = lim.withDefaults()
	rules := []rule{{name: "root"}}
	roots := make([]*expr, len(gs))
	for i, g := range gs {
		prefix := "g" + strconv.Itoa(i) + "-"
		for _, r := range g.rules {
			rules = append(rules, rule{name: prefix + r.name, body: renamed(r.body, prefix)})
		}
		roots[i] = ref(prefix + g.rules[0].name)
	}
	rules[0].body = join(roots...)
	g, err := newGrammar(rules, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return g, nil
}

// renamed copies x with every rule reference prefixed; x is left as it is
// (schema grammars share expressions).
func renamed(x *expr, prefix string) *expr {
	c := *x
	if c.kind == exRef {
		c.name = prefix + c.name
	}
	if len(x.kids) > 0 {
		c.kids = make([]*expr, len(x.kids))
		for i, k := range x.kids {
			c.kids[i] = renamed(k, prefix)
		}
	}
	return &c
}
