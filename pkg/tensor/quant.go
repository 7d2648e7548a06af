package tensor

import (
	"encoding/binary"
	"math"
	"slices"

	k "github.com/switchyard-llm/switchyard/pkg/tensor/internal/kernels"
)

// Block layouts, as ggml lays them out (little-endian):
//
//	Q8_0  (34 B / 32): d f16, qs [32]int8;            x = d·q
//	Q4_0  (18 B / 32): d f16, qs [16]byte;            x[j] = d·(lo(qs[j])-8), x[j+16] = d·(hi(qs[j])-8)
//	Q4_K (144 B / 256): d f16, dmin f16, scales [12]byte (8 six-bit scale/min pairs), qs [128]byte
//	Q6_K (210 B / 256): ql [128]byte, qh [64]byte, scales [16]int8, d f16
//	Q8_K (292 B / 256): d f32, qs [256]int8, bsums [16]int16 (activations only)
//	Q8_1  (36 B / 32): d f16, s f16 (d·Σq), qs [32]int8 (activations only)
//	Q4_1  (20 B / 32): d f16, m f16, qs [16]byte;     x = d·q + m, q a nibble as in Q4_0
//	Q5_0  (22 B / 32): d f16, qh [4]byte, qs [16]byte; x = d·(q-16), bit j of qh the fifth bit of value j
//	Q5_1  (24 B / 32): d f16, m f16, qh, qs;          x = d·q + m
//	IQ4_NL (18 B / 32): d f16, qs [16]byte;           x = d·kvalues_iq4nl[q]
//	MXFP4 (17 B / 32): e E8M0, qs [16]byte;           x = 2^(e-128)·kvalues_mxfp4[q] (doubled FP4)
//	Q2_K  (84 B / 256): scales [16]byte (scale | min<<4 per 16), qs [64]byte (2 bits), d f16, dmin f16
//	Q3_K (110 B / 256): hmask [32]byte, qs [64]byte, scales [12]byte (16 six-bit, -32), d f16
//	Q5_K (176 B / 256): d f16, dmin f16, scales [12]byte (as Q4_K), qh [32]byte, qs [128]byte
//	IQ4_XS (136 B / 256): d f16, scales_h u16, scales_l [4]byte (8 six-bit, -32), qs [128]byte

func f16At(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

// Dequantize converts n elements of type t stored in src to float32 in dst.
// n must be a whole number of blocks; t must be Supported.
func Dequantize(t DType, dst []float32, src []byte, n int) {
	switch t {
	case F32:
		copy(dst[:n], asF32(src[:4*n]))
	case F16:
		for i, h := range asU16(src[:2*n]) {
			dst[i] = F16ToF32(h)
		}
	case BF16:
		for i, h := range asU16(src[:2*n]) {
			dst[i] = BF16ToF32(h)
		}
	case Q8_0:
		for b := 0; b < n/QK; b++ {
			blk := src[b*34 : b*34+34]
			d := f16At(blk)
			for j := range QK {
				dst[b*QK+j] = d * float32(int8(blk[2+j]))
			}
		}
	case Q4_0:
		for b := 0; b < n/QK; b++ {
			blk := src[b*18 : b*18+18]
			d := f16At(blk)
			y := dst[b*QK : b*QK+QK]
			for j := range QK / 2 {
				y[j] = d * float32(int(blk[2+j]&0xf)-8)
				y[j+16] = d * float32(int(blk[2+j]>>4)-8)
			}
		}
	case Q4_K:
		for b := 0; b < n/QKK; b++ {
			dequantQ4K(dst[b*QKK:b*QKK+QKK], src[b*144:b*144+144])
		}
	case Q6_K:
		for b := 0; b < n/QKK; b++ {
			dequantQ6K(dst[b*QKK:b*QKK+QKK], src[b*210:b*210+210])
		}
	case Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, Q8_1:
		bb := t.BlockBytes()
		for b := 0; b < n/QK; b++ {
			dequant32(t, dst[b*QK:b*QK+QK], src[b*bb:b*bb+bb])
		}
	case Q2_K, Q3_K, Q5_K, IQ4_XS:
		bb := t.BlockBytes()
		for b := 0; b < n/QKK; b++ {
			dequant256(t, dst[b*QKK:b*QKK+QKK], src[b*bb:b*bb+bb])
		}
	case Q8_K:
		for b := 0; b < n/QKK; b++ {
			blk := src[b*292 : b*292+292]
			d := math.Float32frombits(binary.LittleEndian.Uint32(blk))
			for j := range QKK {
				dst[b*QKK+j] = d * float32(int8(blk[4+j]))
			}
		}
	default:
		panic("tensor: Dequantize of unsupported type " + t.String())
	}
}

// scaleMinK4 unpacks the j-th six-bit scale and min of a Q4_K block.
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

func dequantQ4K(y []float32, blk []byte) {
	d, dmin := f16At(blk), f16At(blk[2:])
	scales, q := blk[4:16], blk[16:144]
	for j, is := 0, 0; j < QKK; j, is = j+64, is+2 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := range 32 {
			y[j+l] = d1*float32(q[l]&0xf) - m1
			y[j+32+l] = d2*float32(q[l]>>4) - m2
		}
		q = q[32:]
	}
}

func dequantQ6K(y []float32, blk []byte) {
	ql, qh, sc := blk[0:128], blk[128:192], blk[192:208]
	d := f16At(blk[208:])
	for n := 0; n < QKK; n += 128 {
		for l := range 32 {
			is := l / 16
			q1 := int(ql[l]&0xf|(qh[l]>>0&3)<<4) - 32
			q2 := int(ql[l+32]&0xf|(qh[l]>>2&3)<<4) - 32
			q3 := int(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
			q4 := int(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			y[n+l] = d * float32(int8(sc[is])) * float32(q1)
			y[n+l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[n+l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[n+l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
		ql, qh, sc = ql[64:], qh[32:], sc[8:]
	}
}

// Quantize converts n float32 values to type t, appending to dst. It is
// used to write files and to convert activations to the type a kernel
// multiplies with; n must be a whole number of blocks.
func Quantize(t DType, dst []byte, x []float32) []byte {
	switch t {
	case F32:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(v))
		}
	case BF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToBF16(v))
		}
	case Q8_0:
		n := len(x) / QK * 34
		dst = slices.Grow(dst, n)
		k.QuantQ8_0(dst[len(dst):len(dst)+n], x)
		dst = dst[:len(dst)+n]
	case Q4_0:
		for b := 0; b+QK <= len(x); b += QK {
			dst = quantQ4_0(dst, x[b:b+QK])
		}
	case Q4_K:
		for b := 0; b+QKK <= len(x); b += QKK {
			dst = quantQ4K(dst, x[b:b+QKK])
		}
	case Q6_K:
		for b := 0; b+QKK <= len(x); b += QKK {
			dst = quantQ6K(dst, x[b:b+QKK])
		}
	case Q8_K:
		n := len(x) / QKK * 292
		dst = slices.Grow(dst, n)
		k.QuantQ8_K(dst[len(dst):len(dst)+n], x)
		dst = dst[:len(dst)+n]
	case Q8_1:
		n := len(x) / QK * 36
		dst = slices.Grow(dst, n)
		k.QuantQ8_1(dst[len(dst):len(dst)+n], x)
		dst = dst[:len(dst)+n]
	case Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4:
		for b := 0; b+QK <= len(x); b += QK {
			dst = quant32(t, dst, x[b:b+QK])
		}
	case Q2_K, Q3_K, Q5_K, IQ4_XS:
		for b := 0; b+QKK <= len(x); b += QKK {
			dst = quant256(t, dst, x[b:b+QKK])
		}
	default:
		panic("tensor: Quantize to unsupported type " + t.String())
	}
	return dst
}

// quantQ4_0 follows ggml's reference: d = max/-8 where max is the value of
// largest magnitude.
func quantQ4_0(dst []byte, x []float32) []byte {
	var amax, mx float32
	for _, v := range x {
		if abs32(v) > amax {
			amax, mx = abs32(v), v
		}
	}
	d := mx / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
	for j := range QK / 2 {
		lo := min(15, int8(x[j]*id+8.5))
		hi := min(15, int8(x[j+16]*id+8.5))
		dst = append(dst, byte(lo)|byte(hi)<<4)
	}
	return dst
}

// quantQ4K is a plain min/max Q4_K quantiser (not ggml's iterative search):
// each sub-block of 32 gets scale (max-min)/15 and min -min(0, lowest).
func quantQ4K(dst []byte, x []float32) []byte {
	var scales, mins [8]float32
	for j := range 8 {
		lo, hi := float32(0), float32(0)
		for _, v := range x[j*32 : j*32+32] {
			lo, hi = min(lo, v), max(hi, v)
		}
		scales[j], mins[j] = (hi-lo)/15, -lo
	}
	var maxScale, maxMin float32
	for j := range 8 {
		maxScale, maxMin = max(maxScale, scales[j]), max(maxMin, mins[j])
	}
	d, dmin := maxScale/63, maxMin/63
	d, dmin = F16ToF32(F32ToF16(d)), F16ToF32(F32ToF16(dmin))
	var ls, lm [8]uint8
	for j := range 8 {
		if d > 0 {
			ls[j] = uint8(min(63, math.Round(float64(scales[j]/d))))
		}
		if dmin > 0 {
			lm[j] = uint8(min(63, math.Round(float64(mins[j]/dmin))))
		}
	}
	var sc [12]byte
	for j := range 8 {
		if j < 4 {
			sc[j], sc[j+4] = ls[j], lm[j]
		} else {
			sc[j+4] = ls[j]&0xf | (lm[j]&0xf)<<4
			sc[j-4] |= (ls[j] >> 4) << 6
			sc[j] |= (lm[j] >> 4) << 6
		}
	}
	var L [QKK]uint8
	for j := range 8 {
		step, off := d*float32(ls[j]), dmin*float32(lm[j])
		for i := range 32 {
			if step > 0 {
				L[j*32+i] = uint8(max(0, min(15, math.Round(float64((x[j*32+i]+off)/step)))))
			}
		}
	}
	dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
	dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(dmin))
	dst = append(dst, sc[:]...)
	for j := 0; j < QKK; j += 64 {
		for l := range 32 {
			dst = append(dst, L[j+l]|L[j+l+32]<<4)
		}
	}
	return dst
}

// quantQ6K is a plain absmax Q6_K quantiser: each sub-block of 16 gets
// scale max|x|/31, stored as an int8 multiple of the block scale d.
func quantQ6K(dst []byte, x []float32) []byte {
	var scales [16]float32
	var maxScale float32
	for j := range 16 {
		var amax float32
		for _, v := range x[j*16 : j*16+16] {
			amax = max(amax, abs32(v))
		}
		scales[j] = amax / 31
		maxScale = max(maxScale, scales[j])
	}
	d := F16ToF32(F32ToF16(maxScale / 127))
	var sc [16]int8
	var L [QKK]uint8
	for j := range 16 {
		if d > 0 {
			sc[j] = int8(min(127, math.Round(float64(scales[j]/d))))
		}
		step := d * float32(sc[j])
		for i := range 16 {
			q := 0.0
			if step > 0 {
				q = max(-32, min(31, math.Round(float64(x[j*16+i]/step))))
			}
			L[j*16+i] = uint8(int(q) + 32)
		}
	}
	var ql [128]byte
	var qh [64]byte
	for j, o := 0, 0; j < QKK; j, o = j+128, o+1 {
		for l := range 32 {
			q1, q2, q3, q4 := L[j+l], L[j+l+32], L[j+l+64], L[j+l+96]
			ql[o*64+l] = q1&0xf | (q3&0xf)<<4
			ql[o*64+l+32] = q2&0xf | (q4&0xf)<<4
			qh[o*32+l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
	dst = append(dst, ql[:]...)
	dst = append(dst, qh[:]...)
	for _, s := range sc {
		dst = append(dst, byte(s))
	}
	return binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }
