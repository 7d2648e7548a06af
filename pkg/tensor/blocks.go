package tensor

import (
	"encoding/binary"
	"math"

	k "github.com/switchyard-llm/switchyard/pkg/tensor/internal/kernels"
)

// The decoders of this file follow ggml's dequantize_row_* loops and
// round as they do (one rounding per multiplication and per addition:
// ggml-quants.c is built without fused multiply-adds), so that a decoded
// row, an embedding say, is llama.cpp's bit for bit. The quantisers are
// plain ones (ggml's reference for Q4_1, Q5_0, Q5_1 and MXFP4, min/max or
// absmax scales for the others), for tests and synthetic models.

// dequant32 decodes one block of a 32-value type.
func dequant32(t DType, y []float32, blk []byte) {
	y = y[:QK]
	switch t {
	case Q4_1:
		d, m := f16At(blk), f16At(blk[2:])
		for j := range QK / 2 {
			y[j] = float32(float32(blk[4+j]&0xf)*d) + m
			y[j+16] = float32(float32(blk[4+j]>>4)*d) + m
		}
	case Q5_0, Q5_1:
		d, m, qh, qs := f16At(blk), float32(0), blk[2:6], blk[6:22] // Q5_0
		if t == Q5_1 {
			m, qh, qs = f16At(blk[2:]), blk[4:8], blk[8:24]
		}
		h := binary.LittleEndian.Uint32(qh)
		for j := range QK / 2 {
			x0 := int32(qs[j]&0xf) | int32(h>>j&1)<<4
			x1 := int32(qs[j]>>4) | int32(h>>(j+16)&1)<<4
			if t == Q5_0 {
				y[j], y[j+16] = float32(x0-16)*d, float32(x1-16)*d
			} else {
				y[j], y[j+16] = float32(float32(x0)*d)+m, float32(float32(x1)*d)+m
			}
		}
	case IQ4_NL, MXFP4:
		var d float32
		var qs []byte
		kv := &k.KValuesIQ4NL
		if t == MXFP4 {
			d, qs, kv = k.E8M0HalfToF32(blk[0]), blk[1:17], &k.KValuesMXFP4
		} else {
			d, qs = f16At(blk), blk[2:18]
		}
		for j := range QK / 2 {
			y[j] = float32(kv[qs[j]&0xf]) * d
			y[j+16] = float32(kv[qs[j]>>4]) * d
		}
	case Q8_1:
		d := f16At(blk)
		for j := range QK {
			y[j] = d * float32(int8(blk[4+j]))
		}
	}
}

// dequant256 decodes one super-block of a 256-value type.
func dequant256(t DType, y []float32, blk []byte) {
	y = y[:QKK]
	switch t {
	case Q2_K:
		sc, q := blk[0:16], blk[16:80]
		d, dmin := f16At(blk[80:]), f16At(blk[82:])
		is := 0
		for n := 0; n < QKK; n += 128 {
			for shift := uint(0); shift < 8; shift += 2 {
				for half := 0; half < 2; half++ {
					dl, ml := d*float32(sc[is]&0xf), dmin*float32(sc[is]>>4)
					is++
					for l := range 16 {
						y[0] = float32(dl*float32(q[16*half+l]>>shift&3)) - ml
						y = y[1:]
					}
				}
			}
			q = q[32:]
		}
	case Q3_K:
		hm, q := blk[0:32], blk[32:96]
		scales := q3KScales(blk[96:108])
		d := f16At(blk[108:])
		is, m := 0, uint8(1)
		for n := 0; n < QKK; n += 128 {
			for shift := uint(0); shift < 8; shift += 2 {
				for half := 0; half < 2; half++ {
					dl := d * float32(scales[is]-32)
					is++
					for l := 16 * half; l < 16*half+16; l++ {
						v := int32(q[l] >> shift & 3)
						if hm[l]&m == 0 {
							v -= 4
						}
						y[0] = dl * float32(v)
						y = y[1:]
					}
				}
				m <<= 1
			}
			q = q[32:]
		}
	case Q5_K:
		d, dmin := f16At(blk), f16At(blk[2:])
		scales, qh, ql := blk[4:16], blk[16:48], blk[48:176]
		u1, u2 := uint8(1), uint8(2)
		for j, is := 0, 0; j < QKK; j, is = j+64, is+2 {
			sc, m := scaleMinK4(is, scales)
			d1, m1 := d*float32(sc), dmin*float32(m)
			sc, m = scaleMinK4(is+1, scales)
			d2, m2 := d*float32(sc), dmin*float32(m)
			for l := range 32 {
				v := int32(ql[l] & 0xf)
				if qh[l]&u1 != 0 {
					v += 16
				}
				y[j+l] = float32(d1*float32(v)) - m1
			}
			for l := range 32 {
				v := int32(ql[l] >> 4)
				if qh[l]&u2 != 0 {
					v += 16
				}
				y[j+32+l] = float32(d2*float32(v)) - m2
			}
			ql, u1, u2 = ql[32:], u1<<2, u2<<2
		}
	case IQ4_XS:
		d, sh := f16At(blk), binary.LittleEndian.Uint16(blk[2:])
		for ib := range QKK / 32 {
			ls := int32(blk[4+ib/2]>>(4*(ib%2))&0xf) | int32(sh>>(2*ib)&3)<<4
			dl := d * float32(ls-32)
			qs := blk[8+16*ib : 8+16*ib+16]
			for j := range 16 {
				y[32*ib+j] = dl * float32(k.KValuesIQ4NL[qs[j]&0xf])
				y[32*ib+j+16] = dl * float32(k.KValuesIQ4NL[qs[j]>>4])
			}
		}
	}
}

// q3KScales unpacks the 16 six-bit scales of a Q3_K block (stored with
// an offset of 32) from its 12 scale bytes, as ggml's kmask shuffle does.
func q3KScales(s []byte) (sc [16]int32) {
	for i := range 16 {
		lo := s[i%8] & 0xf
		if i >= 8 {
			lo = s[i-8] >> 4
		}
		sc[i] = int32(lo | (s[8+i%4]>>(2*(i/4))&3)<<4)
	}
	return sc
}

// quant32 appends one block of a 32-value type quantised from x.
func quant32(t DType, dst []byte, x []float32) []byte {
	x = x[:QK]
	switch t {
	case Q4_1, Q5_1: // ggml's reference: d = (max-min)/levels, m = min
		lo, hi := x[0], x[0]
		for _, v := range x {
			lo, hi = min(lo, v), max(hi, v)
		}
		levels := float32(15)
		if t == Q5_1 {
			levels = 31
		}
		d := (hi - lo) / levels
		var id float32
		if d != 0 {
			id = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(lo))
		var q [QK]uint8
		for j, v := range x {
			q[j] = uint8(min(levels, (v-lo)*id+0.5))
		}
		if t == Q5_1 {
			dst = appendQ5High(dst, &q)
		}
		return appendNibbles(dst, &q)
	case Q5_0: // ggml's reference: d = max/-16 where max is the value of largest magnitude
		var amax, mx float32
		for _, v := range x {
			if abs32(v) > amax {
				amax, mx = abs32(v), v
			}
		}
		d := mx / -16
		var id float32
		if d != 0 {
			id = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		var q [QK]uint8
		for j, v := range x {
			q[j] = uint8(min(31, int8(v*id+16.5)))
		}
		return appendNibbles(appendQ5High(dst, &q), &q)
	case IQ4_NL: // absmax onto the code's extreme value, then nearest code
		var amax, mx float32
		for _, v := range x {
			if abs32(v) > amax {
				amax, mx = abs32(v), v
			}
		}
		d := F16ToF32(F32ToF16(mx / float32(k.KValuesIQ4NL[0])))
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		var q [QK]uint8
		for j, v := range x {
			q[j] = nearestCode(&k.KValuesIQ4NL, v, d)
		}
		return appendNibbles(dst, &q)
	case MXFP4: // ggml's reference: e = floor(log2 max|x|) - 2 + 127
		var amax float32
		for _, v := range x {
			amax = max(amax, abs32(v))
		}
		var e uint8
		if amax > 0 {
			e = uint8(math.Floor(math.Log2(float64(amax))) - 2 + 127)
		}
		d := k.E8M0HalfToF32(e)
		var q [QK]uint8
		for j, v := range x {
			q[j] = nearestCode(&k.KValuesMXFP4, v, d)
		}
		return appendNibbles(append(dst, e), &q)
	}
	panic("tensor: quant32 of " + t.String())
}

// nearestCode is the index of the value of kv nearest x/d (the first of
// equals).
func nearestCode(kv *[16]int8, x, d float32) uint8 {
	if d == 0 {
		return nearestCode(kv, 0, 1)
	}
	v, best, bi := x/d, float32(math.Inf(1)), 0
	for i, c := range kv {
		if e := abs32(v - float32(c)); e < best {
			best, bi = e, i
		}
	}
	return uint8(bi)
}

// appendNibbles appends 32 four-bit codes (the low four bits of q) as
// ggml lays them out: byte j holds value j low and value j+16 high.
func appendNibbles(dst []byte, q *[QK]uint8) []byte {
	for j := range QK / 2 {
		dst = append(dst, q[j]&0xf|(q[j+16]&0xf)<<4)
	}
	return dst
}

// appendQ5High appends the fifth bits of 32 codes, bit j of a
// little-endian uint32 for value j.
func appendQ5High(dst []byte, q *[QK]uint8) []byte {
	var h uint32
	for j, v := range q {
		h |= uint32(v>>4&1) << j
	}
	return binary.LittleEndian.AppendUint32(dst, h)
}

// quant256 appends one super-block of a 256-value type quantised from x.
func quant256(t DType, dst []byte, x []float32) []byte {
	x = x[:QKK]
	switch t {
	case Q2_K:
		return quantQ2K(dst, x)
	case Q3_K:
		return quantQ3K(dst, x)
	case Q5_K:
		return quantQ5K(dst, x)
	case IQ4_XS:
		return quantIQ4XS(dst, x)
	}
	panic("tensor: quant256 of " + t.String())
}

// quantQ2K gives each sub-block of 16 a scale (max-min)/3 and min
// -min(0, lowest), both as four-bit multiples of the block's d and dmin.
func quantQ2K(dst []byte, x []float32) []byte {
	var scales, mins [16]float32
	var maxScale, maxMin float32
	for j := range 16 {
		lo, hi := float32(0), float32(0)
		for _, v := range x[16*j : 16*j+16] {
			lo, hi = min(lo, v), max(hi, v)
		}
		scales[j], mins[j] = (hi-lo)/3, -lo
		maxScale, maxMin = max(maxScale, scales[j]), max(maxMin, mins[j])
	}
	d, dmin := F16ToF32(F32ToF16(maxScale/15)), F16ToF32(F32ToF16(maxMin/15))
	var sc [16]byte
	var L [QKK]uint8
	for j := range 16 {
		ls, lm := quantLevel(scales[j], d, 15), quantLevel(mins[j], dmin, 15)
		sc[j] = ls | lm<<4
		step, off := d*float32(ls), dmin*float32(lm)
		for i := range 16 {
			if step > 0 {
				L[16*j+i] = uint8(max(0, min(3, math.Round(float64((x[16*j+i]+off)/step)))))
			}
		}
	}
	dst = append(dst, sc[:]...)
	for n := 0; n < QKK; n += 128 {
		for l := range 32 {
			dst = append(dst, L[n+l]|L[n+l+32]<<2|L[n+l+64]<<4|L[n+l+96]<<6)
		}
	}
	dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
	return binary.LittleEndian.AppendUint16(dst, F32ToF16(dmin))
}

// quantLevel is v/step rounded into 0…top (0 when step is 0).
func quantLevel(v, step float32, top float64) uint8 {
	if step <= 0 {
		return 0
	}
	return uint8(max(0, min(top, math.Round(float64(v/step)))))
}

// quantQ3K gives each sub-block of 16 a scale max|x|/4, stored as a
// signed six-bit multiple of the block's d; values -4…3.
func quantQ3K(dst []byte, x []float32) []byte {
	var scales [16]float32
	var maxScale float32
	for j := range 16 {
		var amax float32
		for _, v := range x[16*j : 16*j+16] {
			amax = max(amax, abs32(v))
		}
		scales[j] = amax / 4
		maxScale = max(maxScale, scales[j])
	}
	d := F16ToF32(F32ToF16(maxScale / 31))
	var ls [16]uint8
	var L [QKK]uint8
	for j := range 16 {
		ls[j] = quantLevel(scales[j], d, 31) + 32
		step := d * float32(int(ls[j])-32)
		for i := range 16 {
			q := 0.0
			if step > 0 {
				q = max(-4, min(3, math.Round(float64(x[16*j+i]/step))))
			}
			L[16*j+i] = uint8(int(q) + 4)
		}
	}
	var hm [32]byte
	var qs [64]byte
	for p, v := range L {
		half, kk, l := p/128, p%128/32, p%32
		qs[32*half+l] |= (v & 3) << (2 * kk)
		hm[l] |= (v >> 2) << (4*half + kk)
	}
	var sc [12]byte
	for i, v := range ls {
		if i < 8 {
			sc[i] |= v & 0xf
		} else {
			sc[i-8] |= (v & 0xf) << 4
		}
		sc[8+i%4] |= (v >> 4) << (2 * (i / 4))
	}
	dst = append(dst, hm[:]...)
	dst = append(dst, qs[:]...)
	dst = append(dst, sc[:]...)
	return binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
}

// quantQ5K is quantQ4K with 32 levels and the fifth bits in qh.
func quantQ5K(dst []byte, x []float32) []byte {
	var scales, mins [8]float32
	var maxScale, maxMin float32
	for j := range 8 {
		lo, hi := float32(0), float32(0)
		for _, v := range x[32*j : 32*j+32] {
			lo, hi = min(lo, v), max(hi, v)
		}
		scales[j], mins[j] = (hi-lo)/31, -lo
		maxScale, maxMin = max(maxScale, scales[j]), max(maxMin, mins[j])
	}
	d, dmin := F16ToF32(F32ToF16(maxScale/63)), F16ToF32(F32ToF16(maxMin/63))
	var ls, lm [8]uint8
	var L [QKK]uint8
	for j := range 8 {
		ls[j], lm[j] = quantLevel(scales[j], d, 63), quantLevel(mins[j], dmin, 63)
		step, off := d*float32(ls[j]), dmin*float32(lm[j])
		for i := range 32 {
			if step > 0 {
				L[32*j+i] = uint8(max(0, min(31, math.Round(float64((x[32*j+i]+off)/step)))))
			}
		}
	}
	dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
	dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(dmin))
	dst = append(dst, packScalesK4(&ls, &lm)...)
	var qh [32]byte
	for p, v := range L {
		qh[p%32] |= (v >> 4) << (p / 32)
	}
	dst = append(dst, qh[:]...)
	for j := 0; j < QKK; j += 64 {
		for l := range 32 {
			dst = append(dst, L[j+l]&0xf|(L[j+l+32]&0xf)<<4)
		}
	}
	return dst
}

// packScalesK4 packs eight six-bit scales and mins as Q4_K and Q5_K
// store them (scaleMinK4 unpacks them).
func packScalesK4(ls, lm *[8]uint8) []byte {
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
	return sc[:]
}

// quantIQ4XS gives each sub-block of 32 a scale from its value of
// largest magnitude onto the code's extreme, stored as a signed six-bit
// multiple of the block's d.
func quantIQ4XS(dst []byte, x []float32) []byte {
	var scales [8]float32
	var maxScale float32
	for j := range 8 {
		var amax, mx float32
		for _, v := range x[32*j : 32*j+32] {
			if abs32(v) > amax {
				amax, mx = abs32(v), v
			}
		}
		scales[j] = mx / float32(k.KValuesIQ4NL[0])
		maxScale = max(maxScale, abs32(scales[j]))
	}
	d := F16ToF32(F32ToF16(maxScale / 31))
	var ls [8]int
	var codes [QKK]uint8
	for j := range 8 {
		if d > 0 {
			ls[j] = int(max(-32, min(31, math.Round(float64(scales[j]/d)))))
		}
		step := d * float32(ls[j])
		for i := range 32 {
			codes[32*j+i] = nearestCode(&k.KValuesIQ4NL, x[32*j+i], step)
		}
	}
	var sh uint16
	var sl [4]byte
	for j, v := range ls {
		u := uint8(v + 32)
		sl[j/2] |= (u & 0xf) << (4 * (j % 2))
		sh |= uint16(u>>4) << (2 * j)
	}
	dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
	dst = binary.LittleEndian.AppendUint16(dst, sh)
	dst = append(dst, sl[:]...)
	for j := range 8 {
		var q [QK]uint8
		copy(q[:], codes[32*j:32*j+32])
		dst = appendNibbles(dst, &q)
	}
	return dst
}
