package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// The packed (row-interleaved) Q5_K and IQ4_XS kernels on AVX-512 VNNI,
// 16 weight rows (PackQ5_KR16, PackIQ4_XSR16) with 1 to 4 tokens. They
// keep ggml's eight integer lanes per row: lane s of a super-block is
// Σ_j sc_j·(Σ of four products), the four the values at offsets
// 4s…4s+3 of sub-block j, which one VPDPBUSD with the token's four
// activations broadcast gives for all 16 rows. Each lane is then scaled
// into its own float accumulator with a fused multiply-add, block after
// block, and the eight reduced as hsum8 does: the results are the Go
// twins', bit for bit. The float accumulators, 8 a token, live on the
// stack.

func packedKernels() {
	for tokens := 1; tokens <= 4; tokens++ {
		dotQ5KR16(tokens)
	}
	for tokens := 1; tokens <= 4; tokens++ {
		dotIQ4XSR16(tokens)
	}
}

// vnni writes a VNNI instruction with a register or full-width memory
// source.
func vnni(op string, s Op, u, acc reg.Register) {
	Instruction(&ir.Instruction{
		Opcode:   op,
		Operands: []Op{s, u, acc},
		Inputs:   []Op{s, u, acc},
		Outputs:  []Op{acc},
		ISA:      []string{"AVX512_VNNI"},
	})
}

// laneAccs allocates and zeroes tokens × 8 float accumulators (and, if
// extra, one more a token) on the stack.
func laneAccs(tokens int, extra bool) (acc [][]Mem, ext []Mem) {
	z := ZMM()
	VPXORD(z, z, z)
	for range tokens {
		var a []Mem
		for range 8 {
			m := AllocLocal(64)
			VMOVUPS(z, m)
			a = append(a, m)
		}
		acc = append(acc, a)
		if extra {
			m := AllocLocal(64)
			VMOVUPS(z, m)
			ext = append(ext, m)
		}
	}
	return acc, ext
}

// scaleLane adds d·float(lane) to the stack accumulator a, with f and s
// for scratch.
func scaleLane(lane, d reg.VecVirtual, a Mem, f, s reg.VecVirtual) {
	VCVTDQ2PS(lane, f)
	VMOVUPS(a, s)
	VFMADD231PS(f, d, s)
	VMOVUPS(s, a)
}

// hsumLanes sets out to hsum8 of the eight lane accumulators of a token,
// plus ext if given: (v0+v2)+(v1+v3), v_i = a_i+a_{i+4}.
func hsumLanes(acc []Mem, ext *Mem, out reg.VecVirtual) {
	v := make([]reg.VecVirtual, 4)
	for i := range v {
		v[i] = ZMM()
		VMOVUPS(acc[i], v[i])
		VADDPS(acc[i+4], v[i], v[i])
	}
	VADDPS(v[2], v[0], v[0])
	VADDPS(v[3], v[1], v[1])
	VADDPS(v[1], v[0], out)
	if ext != nil {
		VADDPS(*ext, out, out)
	}
}

// rowScales returns, per token, d_x·w for the 16 rows' float32 scales w
// at m.
func rowScales(addr []Mem, m Mem) []reg.VecVirtual {
	var ds []reg.VecVirtual
	for _, a := range addr {
		d := ZMM()
		VBROADCASTSS(a, d)
		VMULPS(m, d, d)
		ds = append(ds, d)
	}
	return ds
}

// ternOr is VPTERNLOGD's table for a | (b & c) (a the destination).
const ternOr = 0xF8

// dotQ5KR16: per lane s and sub-block j, the five-bit values (nibble |
// the qh bit j moved to bit 4, by VPTERNLOGD) times the token's
// activations by VPDPBUSD, each row's sum (under 2^15) times its scale by
// VPDPWSSD against the scale in the low half of the row's dword; the mins
// times the bsum pairs by VPDPWSSD, -dmin·Σ into a per-token accumulator.
func dotQ5KR16(tokens int) {
	name := fmt.Sprintf("dotQ5_KR16x%d", tokens)
	var (
		acc     [][]Mem
		summs   []Mem
		low, b4 reg.VecVirtual
	)
	r16Kernel(name, fmt.Sprintf("%s is dotQ5_KGeneric of 16 packed rows with %d tokens (a store mask of rows).", name, tokens),
		tokens, 2944, 292, r16Prefetch, func() {
			acc, summs = laneAccs(tokens, true)
			low, b4 = ZMM(), ZMM()
			t := GP32()
			MOVL(U32(0x0f0f0f0f), t)
			VPBROADCASTD(t, low)
			MOVL(U32(0x10101010), t)
			VPBROADCASTD(t, b4)
		}, func(pw reg.Register, addr []Mem, _ []reg.VecVirtual) {
			// mins: m_j in both halves of each dword, times bsums 2j, 2j+1
			msum := make([]reg.VecVirtual, tokens)
			for c := range msum {
				msum[c] = ZMM()
				VPXORD(msum[c], msum[c], msum[c])
			}
			m, m2 := ZMM(), ZMM()
			for j := range 8 {
				VPMOVZXBD(Mem{Base: pw, Disp: 256 + 16*j}, m)
				VPSLLD(U8(16), m, m2)
				VPORD(m2, m, m)
				for c := range tokens {
					vnniBcst("VPDPWSSD", addr[c].Offset(260+4*j), m, msum[c])
				}
			}
			f, sm := ZMM(), ZMM()
			for c, dmin := range rowScales(addr, Mem{Base: pw, Disp: 64}) {
				s := sm
				VCVTDQ2PS(msum[c], f)
				VMOVUPS(summs[c], s)
				VFNMADD231PS(f, dmin, s) // s - dmin·f: ggml's fma(-dmin, f, s)
				VMOVUPS(s, summs[c])
			}
			ds := rowScales(addr, Mem{Base: pw})
			// One set of registers for every lane and sub-block (avo's
			// allocator does not backtrack).
			sumi := make([]reg.VecVirtual, tokens)
			for c := range sumi {
				sumi[c] = ZMM()
			}
			qh, w, hb, d, f, a := ZMM(), ZMM(), ZMM(), ZMM(), ZMM(), ZMM()
			var scs [8]reg.VecVirtual // the rows' scales, in the low half of each dword
			for j := range scs {
				scs[j] = ZMM()
				VPMOVZXBD(Mem{Base: pw, Disp: 128 + 16*j}, scs[j])
			}
			for s := range 8 {
				for c := range sumi {
					VPXORD(sumi[c], sumi[c], sumi[c])
				}
				VMOVDQU32(Mem{Base: pw, Disp: 2432 + 64*s}, qh)
				for pr := range 4 {
					for h := range 2 {
						j := 2*pr + h
						if h == 0 {
							VPANDD(Mem{Base: pw, Disp: 384 + 512*pr + 64*s}, low, w)
						} else {
							VMOVDQU32(Mem{Base: pw, Disp: 384 + 512*pr + 64*s}, w)
							VPSRLW(U8(4), w, w)
							VPANDD(low, w, w)
						}
						switch {
						case j < 4:
							VPSLLD(U8(4-j), qh, hb)
						case j == 4:
							VMOVDQA32(qh, hb)
						default:
							VPSRLD(U8(j-4), qh, hb)
						}
						VPTERNLOGD(U8(ternOr), b4, hb, w) // w | (hb & 0x10)
						for c := range tokens {
							VPXORD(d, d, d)
							vnniBcst("VPDPBUSD", addr[c].Offset(4+32*j+4*s), w, d)
							vnni("VPDPWSSD", scs[j], d, sumi[c])
						}
					}
				}
				for c := range tokens {
					scaleLane(sumi[c], ds[c], acc[c][s], f, a)
				}
			}
		}, func(accs []reg.VecVirtual) {
			for c := range tokens {
				hsumLanes(acc[c], &summs[c], accs[c])
			}
		})
}

var iq4LutMem *Mem

// iq4Lut512 is kvalues_iq4nl + 128 (as unsigned bytes, for VPDPBUSD) in
// each 128-bit lane of a ZMM register.
func iq4Lut512() reg.VecVirtual {
	if iq4LutMem == nil {
		m := GLOBL("kvaluesiq4nl128", RODATA|NOPTR)
		for i, v := range kvaluesIQ4NL {
			DATA(i, U8(uint8(int(v)+128)))
		}
		iq4LutMem = &m
	}
	z := ZMM()
	VBROADCASTI32X4(*iq4LutMem, z)
	return z
}

// dotIQ4XSR16: per lane s and sub-block j, the codes looked up as
// kvalue+128 (unsigned for VPDPBUSD), times the token's activations; less
// 128 times the sum of those four activations (precomputed a block for
// each token by VPDPBUSD with ones); times the row's scale in float (the
// sums reach 2^16, past VPDPWSSD's int16 halves; the float products and
// sums are exact).
func dotIQ4XSR16(tokens int) {
	name := fmt.Sprintf("dotIQ4_XSR16x%d", tokens)
	var (
		acc      [][]Mem
		xs       []Mem // per token: 64 dwords, 128·Σ of activations 4k…4k+3
		low, lut reg.VecVirtual
		ones     reg.VecVirtual
	)
	r16Kernel(name, fmt.Sprintf("%s is dotIQ4_XSGeneric of 16 packed rows with %d tokens (a store mask of rows).", name, tokens),
		tokens, 2368, 292, r16Prefetch, func() {
			acc, _ = laneAccs(tokens, false)
			for range tokens {
				xs = append(xs, AllocLocal(256))
			}
			low, ones = ZMM(), ZMM()
			t := GP32()
			MOVL(U32(0x0f0f0f0f), t)
			VPBROADCASTD(t, low)
			MOVL(U32(0x01010101), t)
			VPBROADCASTD(t, ones)
			lut = iq4Lut512()
		}, func(pw reg.Register, addr []Mem, _ []reg.VecVirtual) {
			t := ZMM()
			for c := range tokens {
				for k := range 4 {
					VPXORD(t, t, t)
					vnni("VPDPBUSD", addr[c].Offset(4+64*k), ones, t)
					VPSLLD(U8(7), t, t)
					VMOVDQU32(t, xs[c].Offset(64*k))
				}
			}
			ds := rowScales(addr, Mem{Base: pw})
			// A lane's sum, Σ_j sc_j·D_j, is below 2^24 (|sc| ≤ 32, |D| ≤
			// 4·127·127): its float, built with fused multiply-adds of the
			// float scales and sums, is the integer's exactly.
			lanes := make([]reg.VecVirtual, tokens)
			for c := range lanes {
				lanes[c] = ZMM()
			}
			var scs [8]reg.VecVirtual
			for j := range scs {
				scs[j] = ZMM()
				VPMOVSXWD(Mem{Base: pw, Disp: 64 + 32*j}, scs[j])
				VCVTDQ2PS(scs[j], scs[j])
			}
			w, d, a := ZMM(), ZMM(), ZMM()
			for s := range 8 {
				for c := range lanes {
					VXORPS(lanes[c], lanes[c], lanes[c])
				}
				for j := range 8 {
					src := Mem{Base: pw, Disp: 320 + 256*j + 64*(s%4)}
					if s < 4 {
						VPANDD(src, low, w)
					} else {
						VMOVDQU32(src, w)
						VPSRLW(U8(4), w, w)
						VPANDD(low, w, w)
					}
					VPSHUFB(w, lut, w)
					for c := range tokens {
						VPXORD(d, d, d)
						vnniBcst("VPDPBUSD", addr[c].Offset(4+32*j+4*s), w, d)
						VPSUBD_BCST(xs[c].Offset(4*(8*j+s)), d, d)
						VCVTDQ2PS(d, d)
						VFMADD231PS(d, scs[j], lanes[c])
					}
				}
				for c := range tokens {
					VMOVUPS(acc[c][s], a)
					VFMADD231PS(lanes[c], ds[c], a)
					VMOVUPS(a, acc[c][s])
				}
			}
		}, func(accs []reg.VecVirtual) {
			for c := range tokens {
				hsumLanes(acc[c], nil, accs[c])
			}
		})
}

// dotQ6KR16 multiplies a group of 16 Q6_K weight rows, packed by
// PackQ6_KR16 (per super-block: the rows' d as float32, their 16 int8
// scales (scale j of row r at 16j+r), then 64 slices of 64 bytes, slice s
// holding values 4s…4s+3 of each row as unsigned bytes q+32), with tokens
// Q8_K activation rows, in ggml's eight lanes per row: lane i is Σ over
// the 32-value chunks c of sc·Σ (q-32)·x over slice 8c+i, the scale that of
// the chunk's half (sub-block 2c+i/4). VPDPBUSD gives Σ (q+32)·x for all 16
// rows, less 32 times the four activations' sum (a block's 64 sums
// precomputed a token, by VPDPBUSD with ones), is under 2^15, and VPDPWSSD
// multiplies it by the scale held in the low half of each row's dword.
func dotQ6KR16(tokens int) {
	name := fmt.Sprintf("dotQ6_KR16x%d", tokens)
	var (
		acc  [][]Mem
		xs   []Mem // per token: 64 dwords, 32·Σ of activations 4k…4k+3
		ones reg.VecVirtual
	)
	r16Kernel(name, fmt.Sprintf("%s is dotQ6_KGeneric of 16 packed rows with %d tokens (a store mask of rows).", name, tokens),
		tokens, 4416, 292, 0, func() {
			acc, _ = laneAccs(tokens, false)
			for range tokens {
				xs = append(xs, AllocLocal(256))
			}
			ones = ZMM()
			t := GP32()
			MOVL(U32(0x01010101), t)
			VPBROADCASTD(t, ones)
		}, func(pw reg.Register, addr []Mem, _ []reg.VecVirtual) {
			t := ZMM()
			for c := range tokens {
				for k := range 4 {
					VPXORD(t, t, t)
					vnni("VPDPBUSD", addr[c].Offset(4+64*k), ones, t)
					VPSLLD(U8(5), t, t)
					VMOVDQU32(t, xs[c].Offset(64*k))
				}
			}
			ds := rowScales(addr, Mem{Base: pw})
			var scs [16]reg.VecVirtual // int16 scales, zero-extended to dwords
			for j := range scs {
				scs[j] = ZMM()
				VPMOVSXBW(Mem{Base: pw, Disp: 64 + 16*j}, scs[j].AsY())
				VPMOVZXWD(scs[j].AsY(), scs[j])
			}
			sumi := make([]reg.VecVirtual, tokens)
			for c := range sumi {
				sumi[c] = ZMM()
			}
			w, d, f, a := ZMM(), ZMM(), ZMM(), ZMM()
			for i := range 8 {
				for c := range sumi {
					VPXORD(sumi[c], sumi[c], sumi[c])
				}
				for ch := range 8 {
					s := 8*ch + i
					VMOVDQU32(Mem{Base: pw, Disp: 320 + 64*s}, w)
					for c := range tokens {
						VPXORD(d, d, d)
						vnniBcst("VPDPBUSD", addr[c].Offset(4+4*s), w, d)
						VPSUBD_BCST(xs[c].Offset(4*s), d, d)
						vnni("VPDPWSSD", scs[2*ch+i/4], d, sumi[c])
					}
				}
				for c := range tokens {
					scaleLane(sumi[c], ds[c], acc[c][i], f, a)
				}
			}
		}, func(accs []reg.VecVirtual) {
			for c := range tokens {
				hsumLanes(acc[c], nil, accs[c])
			}
		})
}

// dotQ4KR16 multiplies a group of 16 Q4_K weight rows, packed by
// PackQ4_KR16 (per super-block: the rows' d and dmin as float32, their 8
// six-bit scales and 8 mins as bytes, then for each pair of sub-blocks 8
// slices of 64 bytes, slice s holding bytes 4s…4s+3 of each row's 32
// quant bytes: low nibbles the even sub-block, high the odd), with tokens
// Q8_K activation rows, in ggml's order: eight lanes a row of the
// nibbles' products (one VPDPBUSD per lane and sub-block for all 16 rows;
// the sums, under 2^15, times the row's scale by VPDPWSSD), and four of
// the mins times pairs of bsum pairs (VPDPWSSD), each scaled into its own
// float accumulator block after block, then reduced as
// ggml_vec_dot_q4_K_q8_K does.
func dotQ4KR16(tokens int) {
	name := fmt.Sprintf("dotQ4_KR16x%d", tokens)
	var (
		acc, accm [][]Mem
		low       reg.VecVirtual
	)
	r16Kernel(name, fmt.Sprintf("%s is dotQ4_KGeneric of 16 packed rows with %d tokens (a store mask of rows).", name, tokens),
		tokens, 2432, 292, r16Prefetch, func() {
			acc, _ = laneAccs(tokens, false)
			z := ZMM()
			VPXORD(z, z, z)
			for range tokens {
				var a []Mem
				for range 4 {
					m := AllocLocal(64)
					VMOVUPS(z, m)
					a = append(a, m)
				}
				accm = append(accm, a)
			}
			low = ZMM()
			t := GP32()
			MOVL(U32(0x0f0f0f0f), t)
			VPBROADCASTD(t, low)
		}, func(pw reg.Register, addr []Mem, _ []reg.VecVirtual) {
			// mins: lane k of a row is m_2k·(b_4k+b_4k+1) + m_2k+1·(b_4k+2+b_4k+3)
			prod := make([]reg.VecVirtual, tokens)
			for c := range prod {
				prod[c] = ZMM()
			}
			m, m2, f, a := ZMM(), ZMM(), ZMM(), ZMM()
			dmins := rowScales(addr, Mem{Base: pw, Disp: 64})
			for k := range 4 {
				for c := range tokens {
					VPXORD(prod[c], prod[c], prod[c])
				}
				for h := range 2 {
					j := 2*k + h
					VPMOVZXBD(Mem{Base: pw, Disp: 256 + 16*j}, m)
					VPSLLD(U8(16), m, m2)
					VPORD(m2, m, m)
					for c := range tokens {
						vnniBcst("VPDPWSSD", addr[c].Offset(260+4*j), m, prod[c])
					}
				}
				for c := range tokens {
					VCVTDQ2PS(prod[c], f)
					VMOVUPS(accm[c][k], a)
					VFNMADD231PS(f, dmins[c], a) // a - dx·dmin·prod: ggml's fma(-dx·dmin, prod, a)
					VMOVUPS(a, accm[c][k])
				}
			}
			ds := rowScales(addr, Mem{Base: pw})
			var scs [8]reg.VecVirtual // the rows' scales, in the low half of each dword
			for j := range scs {
				scs[j] = ZMM()
				VPMOVZXBD(Mem{Base: pw, Disp: 128 + 16*j}, scs[j])
			}
			sumi := make([]reg.VecVirtual, tokens)
			for c := range sumi {
				sumi[c] = ZMM()
			}
			raw, w, d := ZMM(), ZMM(), ZMM()
			for s := range 8 {
				for c := range sumi {
					VPXORD(sumi[c], sumi[c], sumi[c])
				}
				for pr := range 4 {
					VMOVDQU32(Mem{Base: pw, Disp: 384 + 512*pr + 64*s}, raw)
					for h := range 2 {
						j := 2*pr + h
						if h == 0 {
							VPANDD(raw, low, w)
						} else {
							VPSRLW(U8(4), raw, w)
							VPANDD(low, w, w)
						}
						for c := range tokens {
							VPXORD(d, d, d)
							vnniBcst("VPDPBUSD", addr[c].Offset(4+32*j+4*s), w, d)
							vnni("VPDPWSSD", scs[j], d, sumi[c])
						}
					}
				}
				for c := range tokens {
					scaleLane(sumi[c], ds[c], acc[c][s], f, a)
				}
			}
		}, func(accs []reg.VecVirtual) {
			for c := range tokens {
				hsumLanes(acc[c], nil, accs[c])
				v0, v1 := ZMM(), ZMM()
				VMOVUPS(accm[c][0], v0)
				VADDPS(accm[c][2], v0, v0)
				VMOVUPS(accm[c][1], v1)
				VADDPS(accm[c][3], v1, v1)
				VADDPS(v1, v0, v0)
				VADDPS(v0, accs[c], accs[c])
			}
		})
}
