package grammar

import (
	"fmt"
	"math/big"
	"strings"
)

// Numbers with bounds are built digit by digit, so that every number the
// grammar writes is within them and every number within them that has at
// most maxIntDigits digits before the point and maxFracDigits after (more
// where a bound needs them), in plain decimal without an exponent, is
// written. An unbounded number may have an exponent.
const (
	maxIntDigits  = 16
	maxFracDigits = 16
	maxExpDigits  = 3
	// maxBoundDigits bounds the digits of a bound (before and after the
	// point); a bound longer than this is unsupported.
	maxBoundDigits = 40
)

var (
	digit  = class(runeRange{'0', '9'})
	digit1 = class(runeRange{'1', '9'})
)

func digitClass(lo, hi byte) *expr { return class(runeRange{rune(lo), rune(hi)}) }

// digits is n to m digits.
func digits(n, m int) *expr { return repeat(digit, n, m) }

// bound is one side of a range: a value and whether it is excluded.
type bound struct {
	v      *big.Rat
	strict bool
}

// decimal is a non-negative rational with a finite decimal expansion as
// its integer digits (no leading zeros; "0" for none) and fraction digits
// (no trailing zeros).
type decimal struct{ i, f string }

func toDecimal(r *big.Rat) (decimal, error) {
	r = new(big.Rat).Abs(r)
	for k := 0; k <= maxBoundDigits; k++ {
		s := r.FloatString(k)
		back, _ := new(big.Rat).SetString(s)
		if back.Cmp(r) == 0 {
			i, f, _ := strings.Cut(s, ".")
			if len(i) > maxBoundDigits {
				break
			}
			return decimal{i, strings.TrimRight(f, "0")}, nil
		}
	}
	return decimal{}, fmt.Errorf("%w: bound %s needs more than %d digits", ErrUnsupported, r.FloatString(5), maxBoundDigits)
}

// uintRange is the unsigned integers lo…hi written without leading
// zeros; hi nil is unbounded (up to maxIntDigits digits, or lo's).
func uintRange(lo, hi *big.Int) *expr {
	if hi != nil && lo.Cmp(hi) > 0 {
		return nil
	}
	var alts []*expr
	if lo.Sign() == 0 {
		alts = append(alts, lit("0"))
		lo = big.NewInt(1)
		if hi != nil && hi.Sign() == 0 {
			return alts[0]
		}
	}
	ls := lo.String()
	if hi == nil {
		// lo's length and at least lo, or longer.
		alts = append(alts, digitRange(ls, strings.Repeat("9", len(ls))))
		if len(ls) < maxIntDigits {
			alts = append(alts, seq(digit1, repeat(digit, len(ls), maxIntDigits-1)))
		}
		return alt(alts...)
	}
	hs := hi.String()
	if len(ls) == len(hs) {
		alts = append(alts, digitRange(ls, hs))
		return alt(alts...)
	}
	alts = append(alts, digitRange(ls, strings.Repeat("9", len(ls))))
	if len(hs)-len(ls) > 1 {
		alts = append(alts, seq(digit1, repeat(digit, len(ls), len(hs)-2)))
	}
	alts = append(alts, digitRange("1"+strings.Repeat("0", len(hs)-1), hs))
	return alt(alts...)
}

// digitRange is the digit strings of lo's length from lo to hi.
func digitRange(lo, hi string) *expr {
	if lo == hi {
		return lit(lo)
	}
	if lo[0] == hi[0] {
		return seq(lit(lo[:1]), digitRange(lo[1:], hi[1:]))
	}
	rest := len(lo) - 1
	var alts []*expr
	from, to := lo[0], hi[0]
	if strings.Trim(lo[1:], "0") != "" {
		alts = append(alts, seq(lit(lo[:1]), digitRange(lo[1:], strings.Repeat("9", rest))))
		from++
	}
	last := strings.Trim(hi[1:], "9") != ""
	if last {
		to--
	}
	if from <= to {
		alts = append(alts, seq(digitClass(from, to), repeat(digit, rest, rest)))
	}
	if last {
		alts = append(alts, seq(lit(hi[:1]), digitRange(strings.Repeat("0", rest), hi[1:])))
	}
	return alt(alts...)
}

// intRange is the integers within lo and hi (nil: unbounded), or nil if
// there are none.
func intRange(lo, hi *big.Rat) *expr {
	var l, h *big.Int
	if lo != nil {
		l = ceil(lo)
	}
	if hi != nil {
		h = floor(hi)
	}
	if l != nil && h != nil && l.Cmp(h) > 0 {
		return nil
	}
	var alts []*expr
	// Zero and up.
	if h == nil || h.Sign() >= 0 {
		from := big.NewInt(0)
		if l != nil && l.Sign() > 0 {
			from = l
		}
		alts = append(alts, uintRange(from, h))
	}
	// Below zero, as "-" and a magnitude of 1 or more.
	if l == nil || l.Sign() < 0 {
		from := big.NewInt(1)
		if h != nil && h.Sign() < 0 {
			from = new(big.Int).Neg(h)
		}
		var to *big.Int
		if l != nil {
			to = new(big.Int).Neg(l)
		}
		alts = append(alts, seq(lit("-"), uintRange(from, to)))
	}
	return alt(alts...)
}

func floor(r *big.Rat) *big.Int {
	q, _ := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	return q // Euclidean division by a positive divisor floors
}

func ceil(r *big.Rat) *big.Int {
	f := floor(r)
	if !r.IsInt() {
		f.Add(f, big.NewInt(1))
	}
	return f
}

// intBounds turns bounds into the inclusive integer bounds they allow.
func intBounds(lo, hi *bound) (l, h *big.Rat) {
	one := big.NewRat(1, 1)
	if lo != nil {
		l = new(big.Rat).SetInt(ceil(lo.v))
		if lo.strict && lo.v.IsInt() {
			l.Add(l, one)
		}
	}
	if hi != nil {
		h = new(big.Rat).SetInt(floor(hi.v))
		if hi.strict && hi.v.IsInt() {
			h.Sub(h, one)
		}
	}
	return l, h
}

// digitSet is a set of digit strings s, read as the fraction 0.s: those
// that are not empty (ne, nil for none) and whether the empty one is in.
type digitSet struct {
	ne  *expr
	eps bool
}

func (d digitSet) none() bool { return d.ne == nil && !d.eps }

// anyDigits is every digit string (up to maxFracDigits).
func anyDigits() digitSet { return digitSet{ne: digits(1, maxFracDigits), eps: true} }

// prefixed is the strings d·s for s in rest.
func prefixed(d *expr, rest digitSet) digitSet {
	switch {
	case rest.none():
		return digitSet{}
	case rest.ne == nil:
		return digitSet{ne: d}
	case rest.eps:
		return digitSet{ne: seq(d, opt(rest.ne))}
	}
	return digitSet{ne: seq(d, rest.ne)}
}

func union(sets ...digitSet) digitSet {
	var u digitSet
	var alts []*expr
	for _, s := range sets {
		u.eps = u.eps || s.eps
		if s.ne != nil {
			alts = append(alts, s.ne)
		}
	}
	if len(alts) > 0 {
		u.ne = alt(alts...)
	}
	return u
}

// fracAbove is the s with 0.s ≥ 0.r (> with strict); r has no trailing
// zeros.
func fracAbove(r string, strict bool) digitSet {
	if r == "" {
		if strict { // some non-zero digit
			return digitSet{ne: seq(repeat(digit, 0, maxFracDigits), digit1, repeat(digit, 0, maxFracDigits))}
		}
		return anyDigits()
	}
	var sets []digitSet
	if r[0] < '9' {
		sets = append(sets, prefixed(digitClass(r[0]+1, '9'), anyDigits()))
	}
	sets = append(sets, prefixed(lit(r[:1]), fracAbove(r[1:], strict)))
	return union(sets...)
}

// fracBelow is the s with 0.s ≤ 0.r (< with strict).
func fracBelow(r string, strict bool) digitSet {
	if r == "" {
		if strict {
			return digitSet{}
		}
		return digitSet{ne: repeat(lit("0"), 1, maxFracDigits), eps: true}
	}
	sets := []digitSet{{eps: true}}
	if r[0] > '0' {
		sets = append(sets, prefixed(digitClass('0', r[0]-1), anyDigits()))
	}
	sets = append(sets, prefixed(lit(r[:1]), fracBelow(r[1:], strict)))
	return union(sets...)
}

// fracBetween is the s with 0.lo ≤ 0.s ≤ 0.hi (each < with its strict).
func fracBetween(lo string, loStrict bool, hi string, hiStrict bool) digitSet {
	if lo == "" && !loStrict {
		return fracBelow(hi, hiStrict)
	}
	if hi == "" {
		return digitSet{} // 0.s ≤ 0 only for s = 0…, which lo excludes
	}
	l0, lrest := byte('0'), ""
	if lo != "" {
		l0, lrest = lo[0], lo[1:]
	}
	h0, hrest := hi[0], hi[1:]
	if l0 == h0 {
		return prefixed(lit(string(l0)), fracBetween(lrest, loStrict, hrest, hiStrict))
	}
	var sets []digitSet
	sets = append(sets, prefixed(lit(string(l0)), fracAbove(lrest, loStrict)))
	if l0+1 <= h0-1 {
		sets = append(sets, prefixed(digitClass(l0+1, h0-1), anyDigits()))
	}
	sets = append(sets, prefixed(lit(string(h0)), fracBelow(hrest, hiStrict)))
	return union(sets...)
}

// withFraction is an integer part followed by a fraction from fs: nothing
// for the empty fraction, "." and digits for the others.
func withFraction(intPart *expr, fs digitSet) *expr {
	var alts []*expr
	if fs.eps {
		alts = append(alts, seq())
	}
	if fs.ne != nil {
		alts = append(alts, seq(lit("."), fs.ne))
	}
	if len(alts) == 0 || intPart == nil {
		return nil
	}
	return seq(intPart, alt(alts...))
}

// magnitudeRange is the unsigned decimals from lo to hi (nil: unbounded).
func magnitudeRange(lo bound, hi *bound) (*expr, error) {
	if hi != nil {
		if c := lo.v.Cmp(hi.v); c > 0 || c == 0 && (lo.strict || hi.strict) {
			return nil, nil
		}
	}
	a, err := toDecimal(lo.v)
	if err != nil {
		return nil, err
	}
	ai, _ := new(big.Int).SetString(a.i, 10)
	next := new(big.Int).Add(ai, big.NewInt(1))
	var alts []*expr
	add := func(x *expr) {
		if x != nil {
			alts = append(alts, x)
		}
	}
	if hi == nil {
		add(withFraction(lit(a.i), fracAbove(a.f, lo.strict)))
		add(withFraction(uintRange(next, nil), anyDigits()))
		return alt(alts...), nil
	}
	b, err := toDecimal(hi.v)
	if err != nil {
		return nil, err
	}
	if a.i == b.i {
		add(withFraction(lit(a.i), fracBetween(a.f, lo.strict, b.f, hi.strict)))
	} else {
		bi, _ := new(big.Int).SetString(b.i, 10)
		add(withFraction(lit(a.i), fracAbove(a.f, lo.strict)))
		if next.Cmp(bi) < 0 {
			add(withFraction(uintRange(next, new(big.Int).Sub(bi, big.NewInt(1))), anyDigits()))
		}
		add(withFraction(lit(b.i), fracBelow(b.f, hi.strict)))
	}
	if len(alts) == 0 {
		return nil, nil
	}
	return alt(alts...), nil
}

// numberRange is the plain decimals within lo and hi (nil: unbounded), or
// nil if there are none.
func numberRange(lo, hi *bound) (*expr, error) {
	var alts []*expr
	zero := new(big.Rat)
	// Zero and up.
	if hi == nil || hi.v.Sign() > 0 || (hi.v.Sign() == 0 && !hi.strict) {
		from := bound{v: zero}
		if lo != nil && lo.v.Sign() >= 0 {
			from = *lo
		}
		x, err := magnitudeRange(from, hi)
		if err != nil {
			return nil, err
		}
		if x != nil {
			alts = append(alts, x)
		}
	}
	// Below zero: "-" and a magnitude above zero.
	if lo == nil || lo.v.Sign() < 0 {
		from := bound{v: zero, strict: true}
		if hi != nil && hi.v.Sign() < 0 {
			from = bound{v: new(big.Rat).Neg(hi.v), strict: hi.strict}
		}
		var to *bound
		if lo != nil {
			to = &bound{v: new(big.Rat).Neg(lo.v), strict: lo.strict}
		}
		x, err := magnitudeRange(from, to)
		if err != nil {
			return nil, err
		}
		if x != nil {
			alts = append(alts, seq(lit("-"), x))
		}
	}
	if len(alts) == 0 {
		return nil, nil
	}
	return alt(alts...), nil
}
