package grammar

import (
	"slices"
	"unicode/utf8"
)

// runeRange is the code points lo…hi, inclusive.
type runeRange struct{ lo, hi rune }

// anyRune is every code point UTF-8 can encode (surrogates are dropped when
// a class is normalised).
var anyRune = []runeRange{{0, utf8.MaxRune}}

// normRanges sorts and merges ranges and drops the surrogates, which have
// no UTF-8 encoding.
func normRanges(rs []runeRange) []runeRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b runeRange) int { return int(a.lo - b.lo) })
	var out []runeRange
	for _, r := range rs {
		if r.lo > r.hi {
			continue
		}
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	const sLo, sHi = 0xD800, 0xDFFF
	var clean []runeRange
	for _, r := range out {
		if r.hi < sLo || r.lo > sHi {
			clean = append(clean, r)
			continue
		}
		if r.lo < sLo {
			clean = append(clean, runeRange{r.lo, sLo - 1})
		}
		if r.hi > sHi {
			clean = append(clean, runeRange{sHi + 1, r.hi})
		}
	}
	return clean
}

// negate is the complement of normalised ranges among all code points.
func negate(rs []runeRange) []runeRange {
	var out []runeRange
	next := rune(0)
	for _, r := range rs {
		if r.lo > next {
			out = append(out, runeRange{next, r.lo - 1})
		}
		next = r.hi + 1
	}
	if next <= utf8.MaxRune {
		out = append(out, runeRange{next, utf8.MaxRune})
	}
	return normRanges(out)
}

// utf8Alternatives turns a class of code points into alternatives of byte
// sets, one per run of UTF-8 encodings whose bytes vary independently: a
// range is split where its encodings change length, then where a
// continuation byte's span would otherwise depend on the byte before it.
// The one-byte code points share one alternative.
func utf8Alternatives(rs []runeRange) []*expr {
	var ascii []runeRange
	var out []*expr
	var split func(lo, hi rune)
	split = func(lo, hi rune) {
		// Encoded length boundaries.
		for _, b := range []rune{0x7F, 0x7FF, 0xFFFF} {
			if lo <= b && hi > b {
				split(lo, b)
				split(b+1, hi)
				return
			}
		}
		if hi < 0x80 {
			ascii = append(ascii, runeRange{lo, hi})
			return
		}
		n := utf8.RuneLen(lo)
		for i := 1; i < n; i++ {
			m := rune(1)<<(6*i) - 1
			if lo&^m != hi&^m {
				if lo&m != 0 {
					split(lo, lo|m)
					split((lo|m)+1, hi)
					return
				}
				if hi&m != m {
					split(lo, (hi&^m)-1)
					split(hi&^m, hi)
					return
				}
			}
		}
		var a, b [4]byte
		utf8.EncodeRune(a[:], lo)
		utf8.EncodeRune(b[:], hi)
		var parts []*expr
		for i := range n {
			parts = append(parts, &expr{kind: exBytes, ranges: []runeRange{{rune(a[i]), rune(b[i])}}})
		}
		out = append(out, seq(parts...))
	}
	for _, r := range rs {
		split(r.lo, r.hi)
	}
	if len(ascii) > 0 {
		out = append([]*expr{{kind: exClass, ranges: ascii}}, out...)
	}
	return out
}
