package grammar

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// patternExpr turns a JSON Schema pattern (an ECMA-262 regular expression,
// searched for anywhere in the string unless anchored) into the contents of
// a JSON string whose decoded value it matches, each character written raw
// or, where JSON requires, escaped.
//
// The subset: literals; . (any character but \n, \r, U+2028, U+2029);
// classes [...] and [^...] with ranges; escapes \d \D \w \W \s \S \t \n
// \r \f \v \0 \xHH \uHHHH and escaped punctuation; groups (...) and
// (?:...); alternation |; quantifiers * + ? {n} {n,} {n,m}, greedy or lazy
// (the same strings); ^ at the start and $ at the end of an alternative.
// Unsupported: backreferences, lookaround, \b \B, \p{...}, named groups,
// and anchors anywhere else.
func patternExpr(pattern string, lim Limits) (*expr, error) {
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("%w: pattern is not valid UTF-8", ErrSyntax)
	}
	p := reParser{src: pattern, lim: lim}
	x, err := p.alternatives(true)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.src) {
		return nil, p.errorf("unexpected %q", p.src[p.pos:p.pos+1])
	}
	return x, nil
}

type reParser struct {
	src   string
	pos   int
	lim   Limits
	depth int
}

func (p *reParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: pattern %q at offset %d: %s", ErrSyntax, p.src, p.pos, fmt.Sprintf(format, args...))
}

func (p *reParser) unsupported(what string) error {
	return fmt.Errorf("%w: pattern %q: %s", ErrUnsupported, p.src, what)
}

// anyJSONChar is any character of a JSON string, as the string rule writes
// it; a search pattern not anchored is padded with it.
var anyJSONChar = ref("char")

func (p *reParser) alternatives(top bool) (*expr, error) {
	var alts []*expr
	for {
		x, err := p.sequence(top)
		if err != nil {
			return nil, err
		}
		alts = append(alts, x)
		if p.pos < len(p.src) && p.src[p.pos] == '|' {
			p.pos++
			continue
		}
		return alt(alts...), nil
	}
}

func (p *reParser) sequence(top bool) (*expr, error) {
	var items []*expr
	anchoredStart := false
	if top && strings.HasPrefix(p.src[p.pos:], "^") {
		p.pos++
		anchoredStart = true
	}
	if top && !anchoredStart {
		items = append(items, star(anyJSONChar))
	}
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		var x *expr
		switch c {
		case '|', ')':
			return p.endSequence(top, items, false)
		case '$':
			p.pos++
			if !top || (p.pos < len(p.src) && p.src[p.pos] != '|') {
				return nil, p.unsupported("$ other than at the end")
			}
			return p.endSequence(top, items, true)
		case '^':
			return nil, p.unsupported("^ other than at the start")
		case '(':
			p.pos++
			if p.depth++; p.depth > p.lim.Nesting {
				return nil, fmt.Errorf("%w: pattern groups nested deeper than %d", ErrLimit, p.lim.Nesting)
			}
			if strings.HasPrefix(p.src[p.pos:], "?:") {
				p.pos += 2
			} else if strings.HasPrefix(p.src[p.pos:], "?") {
				return nil, p.unsupported("lookaround and named groups")
			}
			inner, err := p.alternatives(false)
			if err != nil {
				return nil, err
			}
			if p.pos >= len(p.src) || p.src[p.pos] != ')' {
				return nil, p.errorf("missing )")
			}
			p.pos++
			p.depth--
			x = inner
		case '[':
			rs, err := p.class()
			if err != nil {
				return nil, err
			}
			x = jsonChars(rs)
		case '.':
			p.pos++
			x = jsonChars(negate(normRanges([]runeRange{{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}})))
		case '*', '+', '?', '{':
			return nil, p.errorf("nothing to repeat")
		case '\\':
			rs, err := p.escape(false)
			if err != nil {
				return nil, err
			}
			x = jsonChars(rs)
		default:
			r, n := utf8.DecodeRuneInString(p.src[p.pos:])
			p.pos += n
			x = jsonChars([]runeRange{{r, r}})
		}
		x, err := p.quantifier(x)
		if err != nil {
			return nil, err
		}
		items = append(items, x)
	}
	return p.endSequence(top, items, false)
}

func (p *reParser) endSequence(top bool, items []*expr, anchoredEnd bool) (*expr, error) {
	if top && !anchoredEnd {
		items = append(items, star(anyJSONChar))
	}
	return seq(items...), nil
}

func (p *reParser) quantifier(x *expr) (*expr, error) {
	if p.pos >= len(p.src) {
		return x, nil
	}
	lo, hi := 0, 0
	switch p.src[p.pos] {
	case '*':
		lo, hi = 0, -1
		p.pos++
	case '+':
		lo, hi = 1, -1
		p.pos++
	case '?':
		lo, hi = 0, 1
		p.pos++
	case '{':
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 {
			return nil, p.errorf("missing }")
		}
		body := p.src[p.pos+1 : p.pos+end]
		a, b, comma := strings.Cut(body, ",")
		var err error
		if lo, err = strconv.Atoi(a); err != nil || lo > p.lim.Elements {
			return nil, p.errorf("bad repetition {%s}", body)
		}
		hi = lo
		if comma {
			hi = -1
			if b != "" {
				if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > p.lim.Elements {
					return nil, p.errorf("bad repetition {%s}", body)
				}
			}
		}
		p.pos += end + 1
	default:
		return x, nil
	}
	if p.pos < len(p.src) && p.src[p.pos] == '?' {
		p.pos++ // lazy: the same strings
	}
	if p.pos < len(p.src) && strings.ContainsRune("*+?{", rune(p.src[p.pos])) {
		return nil, p.errorf("nested quantifier")
	}
	return repeat(x, lo, hi), nil
}

// class reads [...] into code point ranges.
func (p *reParser) class() ([]runeRange, error) {
	p.pos++ // [
	neg := strings.HasPrefix(p.src[p.pos:], "^")
	if neg {
		p.pos++
	}
	var rs []runeRange
	for {
		if p.pos >= len(p.src) {
			return nil, p.errorf("missing ]")
		}
		if p.src[p.pos] == ']' { // [] matches nothing, [^] anything, as in ECMA-262
			p.pos++
			break
		}
		lo, single, err := p.classAtom()
		if err != nil {
			return nil, err
		}
		if single && p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
			p.pos++
			hi, single2, err := p.classAtom()
			if err != nil {
				return nil, err
			}
			if !single2 || hi[0].lo < lo[0].lo {
				return nil, p.errorf("bad class range")
			}
			rs = append(rs, runeRange{lo[0].lo, hi[0].lo})
			continue
		}
		rs = append(rs, lo...)
	}
	rs = normRanges(rs)
	if neg {
		rs = negate(rs)
	}
	return rs, nil
}

// classAtom reads one character or class escape inside [...]; single
// reports a single character (which may start a range).
func (p *reParser) classAtom() ([]runeRange, bool, error) {
	if p.src[p.pos] == '\\' {
		rs, err := p.escape(true)
		return rs, err == nil && len(rs) == 1 && rs[0].lo == rs[0].hi, err
	}
	r, n := utf8.DecodeRuneInString(p.src[p.pos:])
	p.pos += n
	return []runeRange{{r, r}}, true, nil
}

var (
	reDigit = []runeRange{{'0', '9'}}
	reWord  = normRanges([]runeRange{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}})
	reSpace = normRanges([]runeRange{{'\t', '\r'}, {' ', ' '}, {0xA0, 0xA0}, {0x1680, 0x1680},
		{0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}})
)

// escape reads a backslash escape into code point ranges.
func (p *reParser) escape(inClass bool) ([]runeRange, error) {
	p.pos++ // backslash
	if p.pos >= len(p.src) {
		return nil, p.errorf("escape at the end")
	}
	c := p.src[p.pos]
	p.pos++
	one := func(r rune) []runeRange { return []runeRange{{r, r}} }
	switch c {
	case 'd':
		return reDigit, nil
	case 'D':
		return negate(reDigit), nil
	case 'w':
		return reWord, nil
	case 'W':
		return negate(reWord), nil
	case 's':
		return reSpace, nil
	case 'S':
		return negate(reSpace), nil
	case 't':
		return one('\t'), nil
	case 'n':
		return one('\n'), nil
	case 'r':
		return one('\r'), nil
	case 'f':
		return one('\f'), nil
	case 'v':
		return one('\v'), nil
	case '0':
		return one(0), nil
	case 'x', 'u':
		n := 2
		if c == 'u' {
			n = 4
		}
		if p.pos+n > len(p.src) {
			return nil, p.errorf("short \\%c escape", c)
		}
		v, err := strconv.ParseUint(p.src[p.pos:p.pos+n], 16, 32)
		if err != nil {
			return nil, p.errorf("bad \\%c escape", c)
		}
		p.pos += n
		return one(rune(v)), nil
	case 'b':
		if inClass {
			return one('\b'), nil
		}
		return nil, p.unsupported(`\b`)
	case 'B', 'p', 'P', 'k', 'c':
		return nil, p.unsupported(`\` + string(c))
	}
	if c >= '1' && c <= '9' {
		return nil, p.unsupported("backreferences")
	}
	if c < 0x80 && !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
		return one(rune(c)), nil // escaped punctuation
	}
	return nil, p.errorf("unknown escape \\%c", c)
}

// jsonChars is the characters rs as they may appear inside a JSON
// string: raw, except " and \ and the control characters, which are
// escaped (\" \\ \b \f \n \r \t, or \u00XX for the other controls).
func jsonChars(rs []runeRange) *expr {
	rs = normRanges(rs)
	var raw []runeRange
	var alts []*expr
	for _, r := range rs {
		for c := r.lo; c <= min(r.hi, 0x1F); c++ {
			alts = append(alts, lit(controlEscape(c)))
		}
		lo := max(r.lo, 0x20)
		for _, special := range []rune{'"', '\\'} {
			if lo <= special && special <= r.hi {
				if lo < special {
					raw = append(raw, runeRange{lo, special - 1})
				}
				alts = append(alts, lit(`\`+string(special)))
				lo = special + 1
			}
		}
		if lo <= r.hi {
			raw = append(raw, runeRange{lo, r.hi})
		}
	}
	if len(raw) > 0 {
		alts = append([]*expr{class(raw...)}, alts...)
	}
	if len(alts) == 0 {
		return class() // matches nothing; compiling it reports the empty class
	}
	return alt(alts...)
}

func controlEscape(c rune) string {
	switch c {
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	}
	return fmt.Sprintf(`\u%04x`, c)
}
