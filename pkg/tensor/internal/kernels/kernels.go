// Package kernels holds the inner loops of the tensor products: dot
// products of weight rows with activation rows, per block format, and the
// element-wise loops around them. On amd64 they are assembly generated
// with avo (_generate), chosen at run time from the CPU's features; each
// has a Go twin here that gives the same bits, which the noasm build tag,
// other architectures and CPUs without AVX2 use.
package kernels

import (
	"encoding/binary"
	"math"
	"slices"
)

var f16 = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = halfToFloat(uint16(i))
	}
	return &t
}()

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToF16 converts float32 to half precision, rounding to nearest even
// as F16C's VCVTPS2PH does.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff { // inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which is still correct
	}
	return sign | uint16(r)
}

// F16 converts a half-precision value to float32.
func F16(h uint16) float32 { return f16[h] }

//go:generate sh -c "cd _generate && GOFLAGS=-mod=mod go run . -out ../dot_amd64.s -stubs ../dot_amd64_stubs.go -pkg kernels"

// dotxNGeneric is dot of one weight row w with rows activation rows
// x[c*stride:] into out[:rows].
func dotxNGeneric[T float32 | uint16](dot func(a, b []T) float32, w, x []T, stride, rows int, out *[4]float32) {
	for c := range out[:rows] {
		out[c] = dot(w, x[c*stride:])
	}
}

// dotF32Generic returns Σ a[i]·b[i] over len(a) elements in the order of
// the assembly and of ggml_vec_dot_f32 on AVX2: four 8-lane accumulators
// of fused multiply-adds over steps of 32, reduced by reduce4, then the
// tail added in float64.
func dotF32Generic(a, b []float32) float32 {
	b = b[:len(a)]
	var acc [4][8]float32
	n := len(a) &^ 31
	for i := 0; i < n; i += 32 {
		for k := range 4 {
			for j := range 8 {
				acc[k][j] = float32(math.FMA(float64(a[i+8*k+j]), float64(b[i+8*k+j]), float64(acc[k][j])))
			}
		}
	}
	s := float64(reduce4(acc))
	for i := n; i < len(a); i++ {
		s += float64(a[i] * b[i])
	}
	return float32(s)
}

// dotF16Generic is dotF32Generic for half-precision rows.
func dotF16Generic(a, b []uint16) float32 {
	b = b[:len(a)]
	var acc [4][8]float32
	n := len(a) &^ 31
	for i := 0; i < n; i += 32 {
		for k := range 4 {
			for j := range 8 {
				x, y := f16[a[i+8*k+j]], f16[b[i+8*k+j]]
				acc[k][j] = float32(math.FMA(float64(x), float64(y), float64(acc[k][j])))
			}
		}
	}
	s := float64(reduce4(acc))
	for i := n; i < len(a); i++ {
		s += float64(f16[a[i]] * f16[b[i]])
	}
	return float32(s)
}

// reduce4 sums four 8-lane accumulators as ggml's GGML_F32x8_REDUCE does:
// (x0+x2)+(x1+x3) lane-wise, low half plus high half, two horizontal adds.
func reduce4(acc [4][8]float32) float32 {
	var x [8]float32
	for j := range 8 {
		x[j] = (acc[0][j] + acc[2][j]) + (acc[1][j] + acc[3][j])
	}
	t0, t1, t2, t3 := x[0]+x[4], x[1]+x[5], x[2]+x[6], x[3]+x[7]
	return (t0 + t1) + (t2 + t3)
}

// The bfloat16 products follow llama.cpp on a CPU with AVX512-BF16, where
// VDPBF16PS sums pairs of elements into 16 float32 lanes (bf16Lanes), in
// one of two orders:
//   - DotBF16 is ggml_vec_dot_bf16: two accumulators, the first and
//     second 32 elements of every 64, each reduced as
//     _mm512_reduce_add_ps does, then summed with the tail in float64.
//     ggml multiplies a token at a time with it, and always an expert's
//     rows (mul_mat_id).
//   - DotBF16Gemm is llamafile's tinyBLAS, which llama.cpp's dense
//     products of two tokens or more go through: one accumulator over
//     steps of 32, reduced the same way. tinyBLAS takes rows of a
//     multiple of 32 only.
// Both are exact about VDPBF16PS's rounding (checked against the
// instruction on a Sapphire Rapids CPU) but for denormals, which it
// flushes to zero.

// DotBF16 returns Σ a[i]·b[i] for bfloat16 rows in ggml_vec_dot_bf16's
// order.
func DotBF16(a, b []uint16) float32 {
	b = b[:len(a)]
	var acc [32]float32
	n := len(a) &^ 63
	bf16Lanes(a[:n], b[:n], acc[:])
	s := float64(reduce16(acc[:16]))
	s += float64(reduce16(acc[16:]))
	for i := n; i < len(a); i++ {
		s += float64(bf(a[i]) * bf(b[i]))
	}
	return float32(s)
}

// DotBF16Gemm returns Σ a[i]·b[i] for bfloat16 rows of a multiple of 32
// elements in tinyBLAS's order.
func DotBF16Gemm(a, b []uint16) float32 {
	if len(a)%32 != 0 {
		panic("kernels: DotBF16Gemm needs rows of a multiple of 32")
	}
	var acc [16]float32
	bf16Lanes(a, b[:len(a)], acc[:])
	return reduce16(acc[:])
}

// bf16LanesGeneric adds to acc (16·k lanes) what VDPBF16PS adds over the
// first len(a) &^ (32k-1) elements of a and b in steps of 32k, step part
// c going to acc[16c:16c+16]: lane j of a part adds the product of its
// elements 2j+1, then that of 2j, rounding each sum once.
func bf16LanesGeneric(a, b []uint16, acc []float32) {
	step := 2 * len(acc)
	n := len(a) / step * step
	for i := 0; i < n; i += step {
		for l := range acc {
			e := i + 2*l
			x := float32(math.FMA(float64(bf(a[e+1])), float64(bf(b[e+1])), float64(acc[l])))
			acc[l] = float32(math.FMA(float64(bf(a[e])), float64(bf(b[e])), float64(x)))
		}
	}
}

// reduce16 sums 16 lanes as _mm512_reduce_add_ps does: halves added
// lane-wise down to four lanes, then (x0+x2)+(x1+x3).
func reduce16(x []float32) float32 {
	var t [8]float32
	for j := range 8 {
		t[j] = x[j] + x[j+8]
	}
	return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]))
}

func bf(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// dotQ8_0Generic returns the dot product of nb Q8_0 weight blocks w with
// nb Q8_0 activation blocks x: Σ_b d_w·d_x·Σ q_w·q_x. It keeps the
// assembly's (and ggml's AVX2) order exactly — eight lanes, lane j holding
// bytes 4j…4j+3 of every block, scaled with a fused multiply-add, summed
// pairwise at the end — so both builds give the same numbers, which are
// llama.cpp's.
func dotQ8_0Generic(w, x []byte, nb int) float32 {
	w, x = w[:nb*34], x[:nb*34]
	var acc [8]float32
	for b := 0; b < nb; b++ {
		wb, xb := w[b*34:b*34+34], x[b*34:b*34+34]
		d := f16[binary.LittleEndian.Uint16(wb)] * f16[binary.LittleEndian.Uint16(xb)]
		for j := range 8 {
			q := wb[2+4*j : 6+4*j]
			p := xb[2+4*j : 6+4*j]
			lane := int32(int8(q[0]))*int32(int8(p[0])) + int32(int8(q[1]))*int32(int8(p[1])) +
				int32(int8(q[2]))*int32(int8(p[2])) + int32(int8(q[3]))*int32(int8(p[3]))
			acc[j] = float32(math.FMA(float64(d), float64(lane), float64(acc[j])))
		}
	}
	return hsum8(acc)
}

// quantQ8_0Generic writes the Q8_0 blocks of x (len(x)/32 of them) into
// dst, as ggml's AVX2 quantizer does: d = max|x|/127, q = x·(127/max|x|)
// rounded to nearest even.
func quantQ8_0Generic(dst []byte, x []float32) {
	for b := 0; b+32 <= len(x); b += 32 {
		blk, xs := dst[b/32*34:b/32*34+34], x[b:b+32]
		var amax float32
		for _, v := range xs {
			amax = max(amax, math.Float32frombits(math.Float32bits(v)&^(1<<31)))
		}
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		binary.LittleEndian.PutUint16(blk, F32ToF16(amax/127))
		for j, v := range xs {
			blk[2+j] = byte(int8(math.RoundToEven(float64(v * id))))
		}
	}
}

// quantQ8_KGeneric writes the len(x)/256 Q8_K blocks of x into dst (292
// bytes each) as ggml's quantize_row_q8_K_ref: the scale from the first
// value of largest magnitude (-127/that value), quants rounded to nearest
// even, and each 16 quants' sum.
func quantQ8_KGeneric(dst []byte, x []float32) {
	for b := 0; b+256 <= len(x); b += 256 {
		blk, xs := dst[b/256*292:b/256*292+292], x[b:b+256]
		var amax, mx float32
		for _, v := range xs {
			if a := math.Float32frombits(math.Float32bits(v) &^ (1 << 31)); a > amax {
				amax, mx = a, v
			}
		}
		clear(blk)
		if amax == 0 {
			continue
		}
		iscale := -127 / mx
		binary.LittleEndian.PutUint32(blk, math.Float32bits(1/iscale))
		for j, v := range xs {
			blk[4+j] = byte(int8(min(127, math.RoundToEven(float64(iscale*v)))))
		}
		for j := range 16 {
			var s int16
			for _, q := range blk[4+j*16 : 4+j*16+16] {
				s += int16(int8(q))
			}
			binary.LittleEndian.PutUint16(blk[260+2*j:], uint16(s))
		}
	}
}

// dotQ8_0xNGeneric is dotQ8_0Generic for each weight row and activation
// row.
func dotQ8_0xNGeneric(w, x []byte, stride, nb, rows, nrows int, dst []float32, dstride int) {
	for r := range nrows {
		for c := range rows {
			dst[c*dstride+r] = dotQ8_0Generic(w[r*nb*34:], x[c*stride:], nb)
		}
	}
}

// hsum8 adds eight lanes in the order VEXTRACTF128/MOVHLPS/MOVSHDUP do.
func hsum8(l [8]float32) float32 {
	v0, v1, v2, v3 := l[0]+l[4], l[1]+l[5], l[2]+l[6], l[3]+l[7]
	return (v0 + v2) + (v1 + v3)
}

// dotQ4_0Generic returns the dot product of nb Q4_0 weight blocks w with
// nb Q8_0 activation blocks x, in the order of the assembly and ggml's AVX2
// kernel: eight lanes (lanes 0–3 the low nibbles, 4–7 the high ones).
func dotQ4_0Generic(w, x []byte, nb int) float32 {
	w, x = w[:nb*18], x[:nb*34]
	var acc [8]float32
	for b := 0; b < nb; b++ {
		wb, xb := w[b*18:b*18+18], x[b*34:b*34+34]
		d := f16[binary.LittleEndian.Uint16(wb)] * f16[binary.LittleEndian.Uint16(xb)]
		for j := range 8 {
			var lane int32
			for e := 4 * j; e < 4*j+4; e++ {
				q := wb[2+e%16]
				if e < 16 {
					q &= 0xf
				} else {
					q >>= 4
				}
				lane += (int32(q) - 8) * int32(int8(xb[2+e]))
			}
			acc[j] = float32(math.FMA(float64(d), float64(lane), float64(acc[j])))
		}
	}
	return hsum8(acc)
}

func dotQ4_0xNGeneric(w, x []byte, stride, nb, rows int, out *[4]float32) {
	for c := range out[:rows] {
		out[c] = dotQ4_0Generic(w, x[c*stride:], nb)
	}
}

// dotQ4_KGeneric returns the dot product of nb Q4_K weight blocks w with
// nb Q8_K activation blocks x in the order of ggml's AVX2
// ggml_vec_dot_q4_K_q8_K: per block the nibbles times the activations
// times the six-bit scales in eight integer lanes (lanesK), scaled by
// dx·d into eight float lanes, and the mins times pairs of bsum pairs in
// four, scaled by -dx·dmin into four more, block after block; at the end
// hsum8 of the eight plus the four reduced pairwise. (This kernel's order
// before, d·Σ - dmin·Σ a block into one float, left llama.cpp's prompt
// logits of a Q4_K_M model off by flips of 0.02.)
func dotQ4_KGeneric(w, x []byte, nb int) float32 {
	w, x = w[:nb*144], x[:nb*292]
	var acc [8]float32
	var accm [4]float32
	for b := 0; b < nb; b++ {
		wb, xb := w[b*144:b*144+144], x[b*292:b*292+292]
		dy := q8KScale(xb)
		d := dy * f16[le16(wb)]
		dmin := -dy * f16[le16(wb[2:])]
		var q [256]int8
		for p := range 256 {
			pair, h, l := p/64, p%64/32, p%32
			q[p] = int8(wb[16+32*pair+l] >> (4 * h) & 0xf)
		}
		var sc [16]int32
		var mins [8]int32
		for j := range 8 {
			s, m := scaleMinK4(j, wb[4:16])
			sc[2*j], sc[2*j+1], mins[j] = int32(s), int32(s), int32(m)
		}
		for k := range accm {
			prod := mins[2*k]*(q8KBsum(xb, 4*k)+q8KBsum(xb, 4*k+1)) + mins[2*k+1]*(q8KBsum(xb, 4*k+2)+q8KBsum(xb, 4*k+3))
			accm[k] = fma32(dmin, float32(prod), accm[k])
		}
		fmaLanes(&acc, d, lanesK(&q, &sc, xb[4:]))
	}
	return hsum8(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]))
}

// dotQ4_KxNGeneric is dotQ4_KGeneric for each of rows activation rows.
func dotQ4_KxNGeneric(w, x []byte, stride, nb, rows int, out *[4]float32) {
	for c := range out[:rows] {
		out[c] = dotQ4_KGeneric(w, x[c*stride:], nb)
	}
}

// decodeQ6_K returns the 256 six-bit values of a Q6_K block (low four bits
// in ql, high two in qh), each minus 32.
func decodeQ6_K(blk []byte) (q6 [256]int8) {
	ql, qh := blk[0:128], blk[128:192]
	for n := 0; n < 2; n++ {
		l0, h0, y := ql[n*64:], qh[n*32:], q6[n*128:]
		for l := range 32 {
			y[l] = int8(l0[l]&0xf|(h0[l]&3)<<4) - 32
			y[l+32] = int8(l0[l+32]&0xf|(h0[l]>>2&3)<<4) - 32
			y[l+64] = int8(l0[l]>>4|(h0[l]>>4&3)<<4) - 32
			y[l+96] = int8(l0[l+32]>>4|(h0[l]>>6&3)<<4) - 32
		}
	}
	return q6
}

// dotQ6_KGeneric returns the dot product of nb Q6_K weight blocks w with
// nb Q8_K activation blocks x in the order of ggml's AVX2
// ggml_vec_dot_q6_K_q8_K: per block eight integer lanes (lanesK) of the
// scaled products, each scaled by dx·d into its own float lane with a
// fused multiply-add, block after block, reduced as hsum8 at the end.
// (A scalar per-block sum, this kernel's order before, matches llama.cpp's
// logits less well: a Q6_K model's prompt logits moved by flips of 0.07.)
func dotQ6_KGeneric(w, x []byte, nb int) float32 {
	w, x = w[:nb*210], x[:nb*292]
	var acc [8]float32
	for b := 0; b < nb; b++ {
		wb, xb := w[b*210:b*210+210], x[b*292:b*292+292]
		q6 := decodeQ6_K(wb)
		var sc [16]int32
		for j := range sc {
			sc[j] = int32(int8(wb[192+j]))
		}
		fmaLanes(&acc, q8KScale(xb)*f16[le16(wb[208:])], lanesK(&q6, &sc, xb[4:]))
	}
	return hsum8(acc)
}

func dotRowsF32Generic(dst, q, k []float32, stride int) {
	for j := range dst {
		dst[j] = DotF32(q, k[j*stride:j*stride+len(q)])
	}
}

func axpyRowsF32Generic(dst, v []float32, stride int, w []float32) {
	for j, a := range w {
		Axpy(dst, v[j*stride:j*stride+len(dst)], a)
	}
}

// dotQ6_KxNGeneric is dotQ6_KGeneric for each of rows activation rows.
func dotQ6_KxNGeneric(w, x []byte, stride, nb, rows int, out *[4]float32) {
	for c := range out[:rows] {
		out[c] = dotQ6_KGeneric(w, x[c*stride:], nb)
	}
}

// axpyGeneric adds a·x to dst with fused multiply-adds, as the assembly.
func axpyGeneric(dst, x []float32, a float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = float32(math.FMA(float64(a), float64(v), float64(dst[i])))
	}
}

// expGeneric is e^x as the assembly computes it, after ggml's
// ggml_v_expf: x clamped to [-87, 87] (so that 2^n stays a normal float;
// a NaN passes), n = round(x·log2 e) by adding 1.5·2^23, b = x - n·ln 2
// in two parts, and e^x = 2^n + 2^n·p(b), where p(b) ≈ e^b - 1 to within
// about one ulp. Every step rounds to float32 as the assembly's does.
func expGeneric(x float32) float32 {
	const (
		round = 0x1.8p23
		log2e = 0x1.715476p+0
		ln2Hi = 0x1.62e4p-1
		ln2Lo = 0x1.7f7d1cp-20
		c5    = 0x1.0e4020p-7
		c4    = 0x1.573e2ep-5
		c3    = 0x1.555e66p-3
		c2    = 0x1.fffdb6p-2
		c1    = 0x1.ffffecp-1
	)
	if x < -87 {
		x = -87
	}
	if x > 87 {
		x = 87
	}
	z := fma32(x, log2e, round)
	n := z - round
	b := fma32(-n, ln2Hi, x)
	b = fma32(-n, ln2Lo, b)
	k := math.Float32frombits(math.Float32bits(z)<<23 + math.Float32bits(1))
	u := float32(b * b)
	p := fma32(u, fma32(c5, b, c4), fma32(c3, b, c2))
	p = fma32(u, p, float32(c1*b))
	return fma32(k, p, k)
}

// fma32 is a·b + c rounded once to float32 (a·b is exact in float64).
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// expShiftGeneric sets x[i] = e^(x[i]-shift).
func expShiftGeneric(x []float32, shift float32) {
	for i, v := range x {
		x[i] = expGeneric(v - shift)
	}
}

// swigluGeneric sets g[i] = silu(g[i])·u[i], silu(g) = g / (1 + e^-g).
func swigluGeneric(g, u []float32) {
	u = u[:len(g)]
	for i, v := range g {
		d := 1 + expGeneric(-v)
		s := v / d
		g[i] = s * u[i]
	}
}

// The row-interleaved layouts: R16 weight rows a group; R16Q8Act bytes an
// activation block (PackQ8_0R16Act); R16Q4K and R16Q6K bytes a group and
// K-quant super-block.
const (
	R16      = 16
	R16Q8Act = 32 + 4 + 4
)

// R16Q8Bytes is the bytes of a group of 16 Q8_0 rows of nb blocks packed
// by PackQ8_0R16: the rows' bytes in the file, plus 32 when nb is odd
// (so that every group's quants start 64-byte aligned).
func R16Q8Bytes(nb int) int { return nb*512 + (nb*32+63)&^63 }

// PackQ8_0R16 appends the rows × nb Q8_0 blocks of w (rows contiguous) in
// the row-interleaved layout of the VNNI many-row kernels, in groups of
// 16 rows (R16Q8Bytes each): per block 8 slices of 64 bytes, slice s
// holding bytes 4s…4s+3 of each row's quants offset to unsigned (+128);
// then per block the 16 rows' scales as they are in the file (float16).
// The records of the last group's missing rows stay zero (scale 0: they
// add nothing, and their lanes are not stored).
func PackQ8_0R16(dst, w []byte, rows, nb int) []byte {
	groups := (rows + R16 - 1) / R16
	gb := R16Q8Bytes(nb)
	out := len(dst)
	dst = slices.Grow(dst, groups*gb)[:out+groups*gb]
	p := dst[out:]
	clear(p)
	for g := range groups {
		grp := p[g*gb : (g+1)*gb]
		for r := range min(R16, rows-g*R16) {
			row := w[(g*R16+r)*nb*34 : (g*R16+r+1)*nb*34]
			for b := range nb {
				blk := row[b*34 : b*34+34]
				copy(grp[nb*512+b*32+2*r:], blk[:2])
				for s := range 8 {
					for i := range 4 {
						grp[b*512+64*s+4*r+i] = blk[2+4*s+i] ^ 0x80
					}
				}
			}
		}
	}
	return dst
}

// packR16 appends the rows × nb blocks of w (blockBytes each, rows
// contiguous) in groups of R16 rows, recBytes a group and block: fill
// writes row r of the group's record from the row's block; the records of
// the last group's missing rows stay zero (scale 0: they add nothing,
// and their lanes are not stored).
func packR16(dst, w []byte, rows, nb, blockBytes, recBytes int, fill func(rec, blk []byte, r int)) []byte {
	groups := (rows + R16 - 1) / R16
	out := len(dst)
	dst = slices.Grow(dst, groups*nb*recBytes)[:out+groups*nb*recBytes]
	p := dst[out:]
	clear(p)
	for g := range groups {
		for b := range nb {
			rec := p[(g*nb+b)*recBytes : (g*nb+b+1)*recBytes]
			for r := range min(R16, rows-g*R16) {
				row := g*R16 + r
				fill(rec, w[(row*nb+b)*blockBytes:(row*nb+b+1)*blockBytes], r)
			}
		}
	}
	return dst
}

// PackQ8_0R16Act appends n activation rows of nb Q8_0 blocks, stride
// bytes apart, as the R16 kernels take them: per block 40 bytes, the 32
// quants, −128 times their sum as int32 and the scale as float32.
func PackQ8_0R16Act(dst, x []byte, stride, nb, n int) []byte {
	for t := range n {
		for b := range nb {
			blk := x[t*stride+b*34 : t*stride+b*34+34]
			dst = append(dst, blk[2:]...)
			var s int32
			for _, q := range blk[2:] {
				s += int32(int8(q))
			}
			dst = binary.LittleEndian.AppendUint32(dst, uint32(-128*s))
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f16[binary.LittleEndian.Uint16(blk)]))
		}
	}
	return dst
}

// dotQ8_0R16Generic is, for weight rows r0 ≤ r < r0+16 (those below
// rows) of w (Q8_0, rows contiguous) and tokens activation rows of x
// (Q8_0, stride bytes apart), the R16 kernels' sum: per block the exact
// integer dot product, then acc = fma(float(isum), d(w)·d(x), acc) block
// after block; into dst[t*dstride+r-r0].
func dotQ8_0R16Generic(w []byte, rows, r0, nb int, x []byte, stride, tokens int, dst []float32, dstride int) {
	for t := range tokens {
		for r := r0; r < min(rows, r0+R16); r++ {
			var acc float32
			for b := range nb {
				wb, xb := w[(r*nb+b)*34:(r*nb+b+1)*34], x[t*stride+b*34:t*stride+b*34+34]
				var isum int32
				for i := range 32 {
					isum += int32(int8(wb[2+i])) * int32(int8(xb[2+i]))
				}
				d := f16[binary.LittleEndian.Uint16(wb)] * f16[binary.LittleEndian.Uint16(xb)]
				acc = fma32(float32(isum), d, acc)
			}
			dst[t*dstride+r-r0] = acc
		}
	}
}

// R16Q4K: d and dmin, scales and mins, quants.
const R16Q4K = 4*R16 + 4*R16 + 8*R16 + 8*R16 + 4*8*64

// PackQ4_KR16 appends the rows × nb Q4_K super-blocks of w (rows
// contiguous) for the VNNI Q4_K kernels: groups of 16 rows (the last
// padded with zero rows), and per group and super-block the rows' d and
// dmin as float32, their 8 scales as bytes (scale j of row r at 16j+r),
// their 8 mins as bytes in pairs (mins 2i and 2i+1 of row r at 32i+2r, so
// that a row's pair widens to one dword of two words), then for each pair
// of sub-blocks 8 slices of 64 bytes, slice s holding bytes 4s…4s+3 of
// each row's 32 quant bytes.
func PackQ4_KR16(dst, w []byte, rows, nb int) []byte {
	return packR16(dst, w, rows, nb, 144, R16Q4K, func(rec, blk []byte, r int) {
		binary.LittleEndian.PutUint32(rec[4*r:], math.Float32bits(f16[binary.LittleEndian.Uint16(blk)]))
		binary.LittleEndian.PutUint32(rec[64+4*r:], math.Float32bits(f16[binary.LittleEndian.Uint16(blk[2:])]))
		scales := blk[4:16]
		for j := range 8 {
			var sc, m uint8
			if j < 4 {
				sc, m = scales[j]&63, scales[j+4]&63
			} else {
				sc, m = scales[j+4]&0xf|(scales[j-4]>>6)<<4, scales[j+4]>>4|(scales[j]>>6)<<4
			}
			rec[128+16*j+r], rec[256+32*(j/2)+2*r+j%2] = sc, m
		}
		for pr := range 4 {
			for s := range 8 {
				copy(rec[384+512*pr+64*s+4*r:384+512*pr+64*s+4*r+4], blk[16+32*pr+4*s:16+32*pr+4*s+4])
			}
		}
	})
}

// R16Q6K: d, scales, decoded values.
const R16Q6K = 4*R16 + 16*R16 + 64*64

// PackQ6_KR16 appends the rows × nb Q6_K super-blocks of w (rows
// contiguous) for the VNNI Q6_K kernels: groups of 16 rows (the last
// padded with zero rows), and per group and super-block the rows' d as
// float32, their 16 scales (scale j of row r at 16j+r), then 64 slices of
// 64 bytes, slice s holding values 4s…4s+3 of each row decoded and
// offset to unsigned (q+32, 0 to 63).
func PackQ6_KR16(dst, w []byte, rows, nb int) []byte {
	return packR16(dst, w, rows, nb, 210, R16Q6K, func(rec, blk []byte, r int) {
		binary.LittleEndian.PutUint32(rec[4*r:], math.Float32bits(f16[binary.LittleEndian.Uint16(blk[208:])]))
		for j := range 16 {
			rec[64+16*j+r] = blk[192+j]
		}
		q6 := decodeQ6_K(blk)
		for s := range 64 {
			for i := range 4 {
				rec[320+64*s+4*r+i] = byte(q6[4*s+i] + 32)
			}
		}
	})
}
