package grammar

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseGBNF compiles a grammar in llama.cpp's GBNF: rules `name ::= …` of
// literals ("…"), character classes ([a-z], [^…]), any character (.),
// rule references, groups, alternatives (|) and repetitions (*, +, ?,
// {m}, {m,}, {m,n}), with # comments; escapes \xHH, \uHHHH, \UHHHHHHHH,
// \t, \n, \r, \\, \", \[, \]; the rule `root` is what the whole text must
// match. Token references (<…>, <[id]>) are not supported. A newline ends a
// rule unless inside parentheses or after |.
func ParseGBNF(src string, lim Limits) (*Grammar, error) {
	lim = lim.withDefaults()
	if len(src) > lim.SourceBytes {
		return nil, fmt.Errorf("%w: GBNF of %d bytes, more than %d", ErrLimit, len(src), lim.SourceBytes)
	}
	if !utf8.ValidString(src) {
		return nil, fmt.Errorf("%w: GBNF is not valid UTF-8", ErrSyntax)
	}
	p := gbnfParser{src: src, lim: lim}
	rules, err := p.parse()
	if err != nil {
		return nil, err
	}
	root := -1
	for i, r := range rules {
		if r.name == "root" {
			root = i
		}
	}
	if root < 0 {
		return nil, fmt.Errorf("%w: no rule named root", ErrInvalid)
	}
	rules[0], rules[root] = rules[root], rules[0]
	return newGrammar(rules, lim)
}

type gbnfParser struct {
	src   string
	pos   int
	lim   Limits
	depth int
}

func (p *gbnfParser) errorf(format string, args ...any) error {
	line := 1 + strings.Count(p.src[:p.pos], "\n")
	col := p.pos - strings.LastIndexByte(p.src[:p.pos], '\n')
	return fmt.Errorf("%w: line %d column %d: %s", ErrSyntax, line, col, fmt.Sprintf(format, args...))
}

// space skips blanks and comments, and newlines too when newlines is set.
func (p *gbnfParser) space(newlines bool) {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t':
			p.pos++
		case c == '\r' || c == '\n':
			if !newlines {
				return
			}
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' && p.src[p.pos] != '\r' {
				p.pos++
			}
		default:
			return
		}
	}
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func (p *gbnfParser) name() string {
	start := p.pos
	for p.pos < len(p.src) && isNameByte(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *gbnfParser) parse() ([]rule, error) {
	var rules []rule
	for {
		p.space(true)
		if p.pos == len(p.src) {
			return rules, nil
		}
		if len(rules) >= p.lim.Rules {
			return nil, fmt.Errorf("%w: more than %d rules", ErrLimit, p.lim.Rules)
		}
		name := p.name()
		if name == "" {
			return nil, p.errorf("expected a rule name, found %q", p.peekRune())
		}
		p.space(false)
		if !strings.HasPrefix(p.src[p.pos:], "::=") {
			return nil, p.errorf("expected ::= after %q", name)
		}
		p.pos += 3
		p.space(true)
		body, err := p.alternatives(false)
		if err != nil {
			return nil, err
		}
		if p.pos < len(p.src) && p.src[p.pos] != '\n' && p.src[p.pos] != '\r' {
			return nil, p.errorf("unexpected %q", p.peekRune())
		}
		rules = append(rules, rule{name: name, body: body})
	}
}

func (p *gbnfParser) peekRune() string {
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return string(r)
}

func (p *gbnfParser) alternatives(nested bool) (*expr, error) {
	var alts []*expr
	for {
		s, err := p.sequence(nested)
		if err != nil {
			return nil, err
		}
		alts = append(alts, s)
		if p.pos < len(p.src) && p.src[p.pos] == '|' {
			p.pos++
			p.space(true)
			continue
		}
		if len(alts) == 1 {
			return alts[0], nil
		}
		return alt(alts...), nil
	}
}

func (p *gbnfParser) sequence(nested bool) (*expr, error) {
	var items []*expr
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		var x *expr
		switch {
		case c == '"':
			p.pos++
			var sb strings.Builder
			for {
				if p.pos >= len(p.src) {
					return nil, p.errorf("unterminated literal")
				}
				if p.src[p.pos] == '"' {
					p.pos++
					break
				}
				r, err := p.char()
				if err != nil {
					return nil, err
				}
				sb.WriteRune(r)
			}
			x = lit(sb.String())
		case c == '[':
			p.pos++
			neg := p.pos < len(p.src) && p.src[p.pos] == '^'
			if neg {
				p.pos++
			}
			var rs []runeRange
			for {
				if p.pos >= len(p.src) {
					return nil, p.errorf("unterminated character class")
				}
				if p.src[p.pos] == ']' {
					p.pos++
					break
				}
				lo, err := p.char()
				if err != nil {
					return nil, err
				}
				hi := lo
				if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
					p.pos++
					if hi, err = p.char(); err != nil {
						return nil, err
					}
					if hi < lo {
						return nil, p.errorf("range %q-%q is backwards", lo, hi)
					}
				}
				rs = append(rs, runeRange{lo, hi})
			}
			x = class(rs...)
			if neg {
				x.ranges = negate(x.ranges)
			}
		case c == '.':
			p.pos++
			x = class(anyRune...)
		case c == '(':
			p.pos++
			if p.depth++; p.depth > p.lim.Nesting {
				return nil, fmt.Errorf("%w: parentheses nested deeper than %d", ErrLimit, p.lim.Nesting)
			}
			p.space(true)
			inner, err := p.alternatives(true)
			if err != nil {
				return nil, err
			}
			if p.pos >= len(p.src) || p.src[p.pos] != ')' {
				return nil, p.errorf("expected )")
			}
			p.pos++
			p.depth--
			x = inner
			if x.kind != exAlt {
				x = alt(x) // a group, even of one sequence
			}
		case c == '<':
			return nil, p.errorf("token references (<…>) are not supported")
		case isNameByte(c):
			start := p.pos
			name := p.name()
			after := p.pos
			p.space(false)
			if strings.HasPrefix(p.src[p.pos:], "::=") {
				// The next rule begins: this sequence ended at a newline
				// that space(false) would not cross, so only a rule with no
				// newline before its successor gets here.
				p.pos = start
				return nil, p.errorf("expected a newline before rule %q", name)
			}
			p.pos = after
			x = ref(name)
		default:
			return seq(items...), nil
		}
		if len(items) >= p.lim.Elements {
			return nil, fmt.Errorf("%w: more than %d items in a sequence", ErrLimit, p.lim.Elements)
		}
		x, err := p.postfix(x)
		if err != nil {
			return nil, err
		}
		items = append(items, x)
		p.space(nested)
	}
	return seq(items...), nil
}

func (p *gbnfParser) postfix(x *expr) (*expr, error) {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case '*':
			x = star(x)
		case '+':
			x = repeat(x, 1, -1)
		case '?':
			x = opt(x)
		case '{':
			p.pos++
			p.space(false)
			lo, err := p.int()
			if err != nil {
				return nil, err
			}
			hi := lo
			p.space(false)
			if p.pos < len(p.src) && p.src[p.pos] == ',' {
				p.pos++
				p.space(false)
				hi = -1
				if p.pos < len(p.src) && p.src[p.pos] != '}' {
					if hi, err = p.int(); err != nil {
						return nil, err
					}
					if hi < lo {
						return nil, p.errorf("repetition {%d,%d} is backwards", lo, hi)
					}
				}
				p.space(false)
			}
			if p.pos >= len(p.src) || p.src[p.pos] != '}' {
				return nil, p.errorf("expected } in repetition")
			}
			x = repeat(x, lo, hi)
		default:
			return x, nil
		}
		p.pos++
	}
	return x, nil
}

func (p *gbnfParser) int() (int, error) {
	start := p.pos
	for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
		p.pos++
	}
	n, err := strconv.Atoi(p.src[start:p.pos])
	if err != nil || n > p.lim.Elements {
		return 0, p.errorf("expected a repetition count up to %d, found %q", p.lim.Elements, p.src[start:p.pos])
	}
	return n, nil
}

// char reads one character of a literal or class, escapes decoded.
func (p *gbnfParser) char() (rune, error) {
	r, n := utf8.DecodeRuneInString(p.src[p.pos:])
	p.pos += n
	if r != '\\' {
		if r == '\n' || r == '\r' {
			return 0, p.errorf("newline inside a literal or class")
		}
		return r, nil
	}
	if p.pos >= len(p.src) {
		return 0, p.errorf("escape at end of input")
	}
	c := p.src[p.pos]
	p.pos++
	hex := 0
	switch c {
	case 'x':
		hex = 2
	case 'u':
		hex = 4
	case 'U':
		hex = 8
	case 't':
		return '\t', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case '\\', '"', '[', ']', '-', '^', '.':
		return rune(c), nil
	default:
		p.pos--
		return 0, p.errorf("unknown escape \\%c", c)
	}
	if p.pos+hex > len(p.src) {
		return 0, p.errorf("short \\%c escape", c)
	}
	v, err := strconv.ParseUint(p.src[p.pos:p.pos+hex], 16, 32)
	if err != nil || v > utf8.MaxRune {
		return 0, p.errorf("bad \\%c escape %q", c, p.src[p.pos:p.pos+hex])
	}
	p.pos += hex
	return rune(v), nil
}

// String writes the grammar as GBNF that ParseGBNF reads back to the same
// language, root first.
func (g *Grammar) String() string {
	var sb strings.Builder
	for _, r := range g.rules {
		sb.WriteString(r.name)
		sb.WriteString(" ::= ")
		writeExpr(&sb, r.body, 0)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// writeExpr writes x; prec is the binding of its context: 0 anywhere, 1 in
// a sequence, 2 under a repetition.
func writeExpr(sb *strings.Builder, x *expr, prec int) {
	switch x.kind {
	case exAlt:
		if prec > 0 {
			sb.WriteByte('(')
		}
		for i, k := range x.kids {
			if i > 0 {
				sb.WriteString(" | ")
			}
			writeExpr(sb, k, 1)
		}
		if prec > 0 {
			sb.WriteByte(')')
		}
	case exSeq:
		if len(x.kids) == 1 {
			writeExpr(sb, x.kids[0], prec)
			return
		}
		if prec > 1 || len(x.kids) == 0 {
			sb.WriteByte('(')
		}
		for i, k := range x.kids {
			if i > 0 {
				sb.WriteByte(' ')
			}
			writeExpr(sb, k, 1)
		}
		if prec > 1 || len(x.kids) == 0 {
			sb.WriteByte(')')
		}
	case exRepeat:
		writeExpr(sb, x.kids[0], 2)
		switch {
		case x.min == 0 && x.max == -1:
			sb.WriteByte('*')
		case x.min == 1 && x.max == -1:
			sb.WriteByte('+')
		case x.min == 0 && x.max == 1:
			sb.WriteByte('?')
		case x.max == -1:
			fmt.Fprintf(sb, "{%d,}", x.min)
		case x.min == x.max:
			fmt.Fprintf(sb, "{%d}", x.min)
		default:
			fmt.Fprintf(sb, "{%d,%d}", x.min, x.max)
		}
	case exLit:
		if x.lit == "" {
			sb.WriteString(`""`)
			return
		}
		if prec > 1 && utf8.RuneCountInString(x.lit) > 1 {
			sb.WriteByte('(')
			defer sb.WriteByte(')')
		}
		sb.WriteByte('"')
		for _, r := range x.lit {
			writeChar(sb, r, `"\`)
		}
		sb.WriteByte('"')
	case exClass:
		sb.WriteByte('[')
		for _, r := range x.ranges {
			writeChar(sb, r.lo, `]\-^`)
			if r.hi != r.lo {
				sb.WriteByte('-')
				writeChar(sb, r.hi, `]\-^`)
			}
		}
		sb.WriteByte(']')
	case exRef:
		sb.WriteString(x.name)
	}
}

func writeChar(sb *strings.Builder, r rune, special string) {
	switch {
	case strings.ContainsRune(special, r):
		sb.WriteByte('\\')
		sb.WriteRune(r)
	case r >= 0x20 && r < 0x7F:
		sb.WriteRune(r)
	case r <= 0xFF:
		fmt.Fprintf(sb, `\x%02X`, r)
	case r <= 0xFFFF:
		fmt.Fprintf(sb, `\u%04X`, r)
	default:
		fmt.Fprintf(sb, `\U%08X`, r)
	}
}
