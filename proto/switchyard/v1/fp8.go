package switchyardv1

import (
	"encoding/binary"
	"math"
)

// FP8 E4M3 (the OCP 8-bit floating point "E4M3FN"): a sign bit, four
// exponent bits of bias 7 and three mantissa bits; no infinities, 0x7f and
// 0xff are NaN, the largest finite magnitude is 448 (0x7e), the smallest
// subnormal 2⁻⁹ (0x01). A row on the wire is its scale s = max|x| / 448 as
// a little-endian float32, then each value x / s in E4M3, rounded to
// nearest, ties to even. It is inexact: about two significant decimal
// digits per value, relative to the row's largest.

const fp8Max = 448

// fp8Values is every code's value.
var fp8Values = func() (t [256]float32) {
	for c := range 256 {
		e, m := (c>>3)&0xf, float64(c&7)
		var v float64
		switch {
		case e == 0xf && m == 7:
			v = math.NaN()
		case e == 0:
			v = m / 8 * math.Ldexp(1, -6)
		default:
			v = (1 + m/8) * math.Ldexp(1, e-7)
		}
		if c&0x80 != 0 {
			v = -v
		}
		t[c] = float32(v)
	}
	return t
}()

// toFP8 is v in E4M3, rounded to nearest even, magnitudes past 448
// saturated to 448.
func toFP8(v float32) uint8 {
	var sign uint8
	if math.Signbit(float64(v)) {
		sign, v = 0x80, -v
	}
	switch {
	case v != v:
		return sign | 0x7f
	case v >= fp8Max:
		return sign | 0x7e
	case v < 1.0/64: // subnormal: multiples of 2⁻⁹
		q := math.RoundToEven(float64(v) * 512)
		return sign | uint8(q) // q = 8 is 2⁻⁶, the smallest normal: code 0x08
	}
	frac, exp := math.Frexp(float64(v)) // v = frac × 2^exp, frac in [0.5, 1)
	e := exp - 1                        // v = (2 frac) × 2^e
	m := math.RoundToEven((2*frac - 1) * 8)
	if m == 8 {
		m, e = 0, e+1
	}
	if e > 8 || (e == 8 && m == 7) {
		return sign | 0x7e
	}
	return sign | uint8(e+7)<<3 | uint8(m)
}

// appendFP8Row appends x as one FP8 row: its scale, then its values.
func appendFP8Row(dst []byte, x []float32) []byte {
	var mx float32
	for _, v := range x {
		mx = max(mx, float32(math.Abs(float64(v))))
	}
	scale := mx / fp8Max
	if scale == 0 || scale != scale || math.IsInf(float64(scale), 0) {
		scale = 1 // all zeros; NaN and infinities are not activations
	}
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(scale))
	inv := 1 / scale
	for _, v := range x {
		dst = append(dst, toFP8(v*inv))
	}
	return dst
}

// decodeFP8Row reads one FP8 row (scale, then len(x) codes) into x.
func decodeFP8Row(x []float32, b []byte) {
	scale := math.Float32frombits(binary.LittleEndian.Uint32(b))
	for i, c := range b[4 : 4+len(x)] {
		x[i] = fp8Values[c] * scale
	}
}
