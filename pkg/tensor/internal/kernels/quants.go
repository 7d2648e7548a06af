package kernels

import (
	"encoding/binary"
	"math"
)

// The Go twins of the kernels of Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4 (32
// values a block) and Q2_K, Q3_K, Q5_K, IQ4_XS (256 values a block).
// Each sums in the order of ggml's AVX2 vec_dot for the type
// (ggml-cpu/arch/x86/quants.c), so that its results are llama.cpp's:
//
//   - the integer products of a block go into eight int32 lanes, lane i
//     holding the values at offsets 4i…4i+3 of every 32-value chunk
//     (VPMADDUBSW then VPMADDWD), exact in any order;
//   - each lane is converted to float and scaled into its own float
//     accumulator with a fused multiply-add, block after block;
//   - the eight accumulators are added as hsum8 does, and scalar terms
//     (the minimum of Q4_1/Q5_1/Q5_K) after, the C code's a·b+c being
//     contracted to a fused multiply-add as GCC and Clang do with FMA.
//
// Activations: Q8_1 (with its blocks' scaled sums) for Q4_1 and Q5_1,
// Q8_0 for Q5_0, IQ4_NL and MXFP4, Q8_K for the K-quants and IQ4_XS.

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

// Q8_1 activation blocks: d f16, s f16 (d·Σq), 32 int8.
const q8_1Bytes = 36

// KValuesIQ4NL are the sixteen values of the IQ4_NL and IQ4_XS codes
// (ggml's kvalues_iq4nl).
var KValuesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// KValuesMXFP4 are the sixteen FP4 (E2M1) values doubled, as ggml's
// kvalues_mxfp4; the block scale E8M0HalfToF32 halves them back.
var KValuesMXFP4 = [16]int8{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}

// E8M0HalfToF32 is half the E8M0 scale e, 2^(e-128), as ggml's
// ggml_e8m0_to_fp32_half: subnormal for e < 2, and 2^127 (not infinity)
// for e = 255.
func E8M0HalfToF32(e uint8) float32 {
	if e < 2 {
		return math.Float32frombits(0x00200000 << e)
	}
	return math.Float32frombits(uint32(e-1) << 23)
}

// quantQ8_1Generic writes the Q8_1 blocks of x (len(x)/32 of them) into
// dst as ggml's AVX2 quantize_row_q8_1: d = max|x|/127, q = x·(127/max|x|)
// rounded to nearest even, and s = d·Σq rounded to half precision (from d
// in single precision).
func quantQ8_1Generic(dst []byte, x []float32) {
	for b := 0; b+32 <= len(x); b += 32 {
		blk, xs := dst[b/32*q8_1Bytes:b/32*q8_1Bytes+q8_1Bytes], x[b:b+32]
		var amax float32
		for _, v := range xs {
			amax = max(amax, math.Float32frombits(math.Float32bits(v)&^(1<<31)))
		}
		d := amax / 127
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		var sum int32
		for j, v := range xs {
			q := int8(math.RoundToEven(float64(v * id)))
			blk[4+j] = byte(q)
			sum += int32(q)
		}
		binary.LittleEndian.PutUint16(blk, F32ToF16(d))
		binary.LittleEndian.PutUint16(blk[2:], F32ToF16(d*float32(sum)))
	}
}

// lanes32 returns the eight integer lanes of one 32-value block: lane j
// is Σ q[e]·x[e] over e = 4j…4j+3.
func lanes32(q *[32]int8, x []byte) (l [8]int32) {
	x = x[:32]
	for e := range 32 {
		l[e/4] += int32(q[e]) * int32(int8(x[e]))
	}
	return l
}

// nibbles32 returns the 32 four-bit codes of 16 bytes: the low nibbles
// are values 0…15, the high ones 16…31.
func nibbles32(qs []byte) (c [32]uint8) {
	for j := range 16 {
		c[j], c[j+16] = qs[j]&0xf, qs[j]>>4
	}
	return c
}

// fmaLanes adds d·float(l[j]) to acc[j] with one rounding each.
func fmaLanes(acc *[8]float32, d float32, l [8]int32) {
	for j := range acc {
		acc[j] = fma32(d, float32(l[j]), acc[j])
	}
}

// decodeQ4_1 returns a Q4_1 block's 32 codes (0…15): x = d·q + m.
func decodeQ4_1(blk []byte) (q [32]int8) {
	for j, c := range nibbles32(blk[4:20]) {
		q[j] = int8(c)
	}
	return q
}

// dotQ4_1Generic returns the dot product of nb Q4_1 weight blocks w (d,
// m, 16 bytes of nibbles) with nb Q8_1 activation blocks x, as ggml's
// AVX2 ggml_vec_dot_q4_1_q8_1: Σ d_w·d_x·Σq·x in eight lanes, plus
// Σ m·s.
func dotQ4_1Generic(w, x []byte, nb int) float32 {
	w, x = w[:nb*20], x[:nb*q8_1Bytes]
	var acc [8]float32
	var summs float32
	for b := range nb {
		wb, xb := w[b*20:b*20+20], x[b*q8_1Bytes:b*q8_1Bytes+q8_1Bytes]
		summs = fma32(f16[le16(wb[2:])], f16[le16(xb[2:])], summs)
		q := decodeQ4_1(wb)
		fmaLanes(&acc, f16[le16(wb)]*f16[le16(xb)], lanes32(&q, xb[4:]))
	}
	return hsum8(acc) + summs
}

// decodeQ5 returns the 32 five-bit codes of a Q5_0 or Q5_1 block's qh (4
// bytes, bit j the high bit of value j) and qs (16 bytes of nibbles).
func decodeQ5(qh, qs []byte) (c [32]uint8) {
	h := binary.LittleEndian.Uint32(qh)
	c = nibbles32(qs)
	for j := range c {
		c[j] |= uint8(h>>j&1) << 4
	}
	return c
}

// dotQ5_0Generic returns the dot product of nb Q5_0 weight blocks w (d,
// qh, qs: x = d·(q-16)) with nb Q8_0 activation blocks x, as ggml's AVX2
// ggml_vec_dot_q5_0_q8_0.
func dotQ5_0Generic(w, x []byte, nb int) float32 {
	w, x = w[:nb*22], x[:nb*34]
	var acc [8]float32
	for b := range nb {
		wb, xb := w[b*22:b*22+22], x[b*34:b*34+34]
		var q [32]int8
		for j, c := range decodeQ5(wb[2:6], wb[6:22]) {
			q[j] = int8(c) - 16
		}
		fmaLanes(&acc, f16[le16(wb)]*f16[le16(xb)], lanes32(&q, xb[2:]))
	}
	return hsum8(acc)
}

// dotQ5_1Generic returns the dot product of nb Q5_1 weight blocks w (d,
// m, qh, qs: x = d·q + m) with nb Q8_1 activation blocks x, as ggml's
// AVX2 ggml_vec_dot_q5_1_q8_1.
func dotQ5_1Generic(w, x []byte, nb int) float32 {
	w, x = w[:nb*24], x[:nb*q8_1Bytes]
	var acc [8]float32
	var summs float32
	for b := range nb {
		wb, xb := w[b*24:b*24+24], x[b*q8_1Bytes:b*q8_1Bytes+q8_1Bytes]
		summs = fma32(f16[le16(wb[2:])], f16[le16(xb[2:])], summs)
		var q [32]int8
		for j, c := range decodeQ5(wb[4:8], wb[8:24]) {
			q[j] = int8(c)
		}
		l := lanes32(&q, xb[4:])
		d := f16[le16(wb)] * f16[le16(xb)]
		for j := range acc {
			acc[j] = fma32(float32(l[j]), d, acc[j])
		}
	}
	return hsum8(acc) + summs
}

// dotPairs32 is the order of ggml's AVX2 IQ4_NL and MXFP4 kernels: blocks
// in pairs, the first of each pair into one set of eight accumulators and
// the second into another, added lane by lane and reduced; an odd last
// block is added after, as a scalar. scale is block b's d_w·d_x; code its
// 32 values.
func dotPairs32(x []byte, nb int, scale func(b int) float32, code func(b int) [32]int8) float32 {
	var acc [2][8]float32
	b := 0
	for ; b+1 < nb; b += 2 {
		for k := range 2 {
			q := code(b + k)
			fmaLanes(&acc[k], scale(b+k), lanes32(&q, x[(b+k)*34+2:]))
		}
	}
	var sum [8]float32
	for j := range sum {
		sum[j] = acc[0][j] + acc[1][j]
	}
	s := hsum8(sum)
	for ; b < nb; b++ {
		q := code(b)
		var isum int32
		for _, v := range lanes32(&q, x[b*34+2:]) {
			isum += v
		}
		s = fma32(scale(b), float32(isum), s)
	}
	return s
}

// decodeIQ4NL returns the 32 values of an IQ4_NL or IQ4_XS group of 16
// code bytes.
func decodeIQ4NL(qs []byte) (q [32]int8) {
	for j, c := range nibbles32(qs) {
		q[j] = KValuesIQ4NL[c]
	}
	return q
}

// dotIQ4_NLGeneric returns the dot product of nb IQ4_NL weight blocks w
// (d, 16 bytes of codes into KValuesIQ4NL) with nb Q8_0 activation blocks
// x, as ggml's AVX2 ggml_vec_dot_iq4_nl_q8_0.
func dotIQ4_NLGeneric(w, x []byte, nb int) float32 {
	w, x = w[:nb*18], x[:nb*34]
	return dotPairs32(x, nb, func(b int) float32 {
		return f16[le16(x[b*34:])] * f16[le16(w[b*18:])]
	}, func(b int) [32]int8 { return decodeIQ4NL(w[b*18+2 : b*18+18]) })
}

// decodeMXFP4 returns the 32 doubled FP4 values of an MXFP4 block.
func decodeMXFP4(qs []byte) (q [32]int8) {
	for j, c := range nibbles32(qs) {
		q[j] = KValuesMXFP4[c]
	}
	return q
}

// dotMXFP4Generic returns the dot product of nb MXFP4 weight blocks w
// (E8M0 scale e, 16 bytes of FP4 codes) with nb Q8_0 activation blocks
// x, as ggml's AVX2 ggml_vec_dot_mxfp4_q8_0.
func dotMXFP4Generic(w, x []byte, nb int) float32 {
	w, x = w[:nb*17], x[:nb*34]
	return dotPairs32(x, nb, func(b int) float32 {
		return f16[le16(x[b*34:])] * E8M0HalfToF32(w[b*17])
	}, func(b int) [32]int8 { return decodeMXFP4(w[b*17+1 : b*17+17]) })
}

// lanesK returns the eight integer lanes of a super-block as ggml's AVX2
// K-quant kernels sum it: lane i is Σ sc[p/16]·q[p]·x[p] over the values
// p with p mod 32 in 4i…4i+3.
func lanesK(q *[256]int8, sc *[16]int32, x []byte) (l [8]int32) {
	x = x[:256]
	for p := range 256 {
		l[p%32/4] += sc[p/16] * int32(q[p]) * int32(int8(x[p]))
	}
	return l
}

func q8KScale(xb []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(xb)) }

func q8KBsum(xb []byte, j int) int32 { return int32(int16(le16(xb[260+2*j:]))) }

// decodeQ2_K returns a Q2_K block's 256 two-bit codes and the low
// (scale) nibbles of its 16 scale bytes; x = d·sc·q - dmin·m, m the high
// nibbles. Layout: scales [16], qs [64], d f16, dmin f16.
func decodeQ2_K(blk []byte) (q [256]int8, sc [16]int32) {
	qs := blk[16:80]
	for p := range 256 {
		half, k, l := p/128, p%128/32, p%32
		q[p] = int8(qs[32*half+l] >> (2 * k) & 3)
	}
	for j := range 16 {
		sc[j] = int32(blk[j] & 0xf)
	}
	return q, sc
}

// dotQ2_KGeneric returns the dot product of nb Q2_K weight blocks with nb
// Q8_K activation blocks, as ggml's AVX2 ggml_vec_dot_q2_K_q8_K: per
// block, the mins times the bsums (pairs of them) into the eight float
// lanes scaled by -dmin, then the scaled products scaled by d.
func dotQ2_KGeneric(w, x []byte, nb int) float32 {
	w, x = w[:nb*84], x[:nb*292]
	var acc [8]float32
	for b := range nb {
		wb, xb := w[b*84:b*84+84], x[b*292:b*292+292]
		dy := q8KScale(xb)
		d := dy * f16[le16(wb[80:])]
		dmin := -dy * f16[le16(wb[82:])]
		var prod [8]int32
		for i := range prod {
			prod[i] = int32(wb[2*i]>>4)*q8KBsum(xb, 2*i) + int32(wb[2*i+1]>>4)*q8KBsum(xb, 2*i+1)
		}
		fmaLanes(&acc, dmin, prod)
		q, sc := decodeQ2_K(wb)
		fmaLanes(&acc, d, lanesK(&q, &sc, xb[4:]))
	}
	return hsum8(acc)
}

// q3KScales unpacks the 16 six-bit scales of a Q3_K block (12 bytes),
// less 32.
func q3KScales(s []byte) (sc [16]int32) {
	for i := range 16 {
		var lo, hi uint8
		switch {
		case i < 8:
			lo = s[i] & 0xf
		default:
			lo = s[i-8] >> 4
		}
		hi = s[8+i%4] >> (2 * (i / 4)) & 3
		sc[i] = int32(lo|hi<<4) - 32
	}
	return sc
}

// decodeQ3_K returns a Q3_K block's 256 values (-4…3) and 16 scales;
// x = d·sc·q. Layout: hmask [32], qs [64], scales [12], d f16.
func decodeQ3_K(blk []byte) (q [256]int8, sc [16]int32) {
	hm, qs := blk[0:32], blk[32:96]
	for p := range 256 {
		half, k, l := p/128, p%128/32, p%32
		lo := qs[32*half+l] >> (2 * k) & 3
		hi := hm[l] >> (4*half + k) & 1
		q[p] = int8(lo|hi<<2) - 4
	}
	return q, q3KScales(blk[96:108])
}

// dotQ3_KGeneric returns the dot product of nb Q3_K weight blocks with nb
// Q8_K activation blocks, as ggml's AVX2 ggml_vec_dot_q3_K_q8_K.
func dotQ3_KGeneric(w, x []byte, nb int) float32 {
	w, x = w[:nb*110], x[:nb*292]
	var acc [8]float32
	for b := range nb {
		wb, xb := w[b*110:b*110+110], x[b*292:b*292+292]
		q, sc := decodeQ3_K(wb)
		fmaLanes(&acc, q8KScale(xb)*f16[le16(wb[108:])], lanesK(&q, &sc, xb[4:]))
	}
	return hsum8(acc)
}

// scaleMinK4 unpacks the j-th six-bit scale and min of a Q4_K or Q5_K
// block's 12 scale bytes.
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// decodeQ5_K returns a Q5_K block's 256 five-bit codes, 8 scales (each
// twice, per 16 values) and 8 mins; x = d·sc·q - dmin·m. Layout: d f16,
// dmin f16, scales [12], qh [32], qs [128].
func decodeQ5_K(blk []byte) (q [256]int8, sc [16]int32, mins [8]int32) {
	qh, qs := blk[16:48], blk[48:176]
	for p := range 256 {
		pair, h, l := p/64, p%64/32, p%32
		lo := qs[32*pair+l] >> (4 * h) & 0xf
		hi := qh[l] >> (2*pair + h) & 1
		q[p] = int8(lo | hi<<4)
	}
	for j := range 8 {
		s, m := scaleMinK4(j, blk[4:16])
		sc[2*j], sc[2*j+1], mins[j] = int32(s), int32(s), int32(m)
	}
	return q, sc, mins
}

// dotQ5_KGeneric returns the dot product of nb Q5_K weight blocks with nb
// Q8_K activation blocks, as ggml's AVX2 ggml_vec_dot_q5_K_q8_K: the
// scaled products in eight float lanes, and -dmin·Σ m·bsum in a scalar
// added at the end.
func dotQ5_KGeneric(w, x []byte, nb int) float32 {
	w, x = w[:nb*176], x[:nb*292]
	var acc [8]float32
	var summs float32
	for b := range nb {
		wb, xb := w[b*176:b*176+176], x[b*292:b*292+292]
		dy := q8KScale(xb)
		d := dy * f16[le16(wb)]
		dmin := -dy * f16[le16(wb[2:])]
		q, sc, mins := decodeQ5_K(wb)
		var msum int32
		for j, m := range mins {
			msum += m * (q8KBsum(xb, 2*j) + q8KBsum(xb, 2*j+1))
		}
		summs = fma32(dmin, float32(msum), summs)
		fmaLanes(&acc, d, lanesK(&q, &sc, xb[4:]))
	}
	return hsum8(acc) + summs
}

// decodeIQ4_XS returns an IQ4_XS block's 256 values and 8 six-bit scales
// less 32 (each twice, per 16 values); x = d·sc·v. Layout: d f16,
// scales_h u16, scales_l [4], qs [128].
func decodeIQ4_XS(blk []byte) (q [256]int8, sc [16]int32) {
	sh := le16(blk[2:])
	for ib := range 8 {
		ls := blk[4+ib/2]>>(4*(ib%2))&0xf | uint8(sh>>(2*ib)&3)<<4
		sc[2*ib], sc[2*ib+1] = int32(ls)-32, int32(ls)-32
		v := decodeIQ4NL(blk[8+16*ib : 8+16*ib+16])
		copy(q[32*ib:], v[:])
	}
	return q, sc
}

// dotIQ4_XSGeneric returns the dot product of nb IQ4_XS weight blocks
// with nb Q8_K activation blocks, as ggml's AVX2 ggml_vec_dot_iq4_xs_q8_K.
func dotIQ4_XSGeneric(w, x []byte, nb int) float32 {
	w, x = w[:nb*136], x[:nb*292]
	var acc [8]float32
	for b := range nb {
		wb, xb := w[b*136:b*136+136], x[b*292:b*292+292]
		q, sc := decodeIQ4_XS(wb)
		fmaLanes(&acc, f16[le16(wb)]*q8KScale(xb), lanesK(&q, &sc, xb[4:]))
	}
	return hsum8(acc)
}

// dotxNBlocks is dot of one weight row w with rows (2 to 4) activation
// rows x[c*stride:] into out[:rows].
func dotxNBlocks(dot func(w, x []byte, nb int) float32, w, x []byte, stride, nb, rows int, out *[4]float32) {
	for c := range out[:rows] {
		out[c] = dot(w, x[c*stride:], nb)
	}
}
