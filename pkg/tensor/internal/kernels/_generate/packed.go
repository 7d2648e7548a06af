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

// dotQ5KR16: per lane s and sub-block j, the five-bit values times the
// token's activations by VPDPBUSD, each row's sum times its scale by
// VPDPWSSD against the scale in the low half of the row's dword; the mins
// in pairs times pairs of bsum pairs (minPairs), -dmin·Σ into a per-token
// accumulator. A pair of sub-blocks (the low and high nibbles of the same
// bytes) takes its two fifth bits from one shift of the qh bytes, to bits
// 4 and 5 (none for the pair whose bits are there already): the even
// sub-block's value is the low nibble with bit 4, times twice its scale
// (PackQ5_KR16 stores it doubled); the odd one's value is taken doubled,
// the high nibble shifted to bits 1…4 with bit 5 (2D stays under 2^15, as
// VPDPWSSD needs), times its scale. The lane's sum, twice the exact one,
// is halved before it is scaled.
func dotQ5KR16(tokens int) {
	name := fmt.Sprintf("dotQ5_KR16x%d", tokens)
	var (
		acc   [][]Mem
		summs []Mem
		spair []Mem // per token: the 8 bsum pairs' sums as int16
		low   reg.VecVirtual
	)
	r16Kernel(name, fmt.Sprintf("%s is dotQ5_KGeneric of 16 packed rows with %d tokens (a store mask of rows).", name, tokens),
		tokens, 2944, 292, r16Prefetch, func(_, _ reg.Register) {
			acc, summs = laneAccs(tokens, true)
			for range tokens {
				spair = append(spair, AllocLocal(16))
			}
			low = ZMM()
			t := GP32()
			MOVL(U32(0x0f0f0f0f), t)
			VPBROADCASTD(t, low)
		}, func(pw reg.Register, addr []Mem, _ []reg.VecVirtual) {
			msum := minPairs(pw, addr, spair, 256)
			f, sm := ZMM(), ZMM()
			for c, dmin := range rowScales(addr, Mem{Base: pw, Disp: 64}) {
				VCVTDQ2PS(msum[c], f)
				VMOVUPS(summs[c], sm)
				VFNMADD231PS(f, dmin, sm) // s - dmin·f: ggml's fma(-dmin, f, s)
				VMOVUPS(sm, summs[c])
			}
			ds := rowScales(addr, Mem{Base: pw})
			// One set of registers for every lane and sub-block (avo's
			// allocator does not backtrack).
			sumi := make([]reg.VecVirtual, tokens)
			for c := range sumi {
				sumi[c] = ZMM()
			}
			// For one token, a second chain of VPDPWSSD a lane (the odd
			// sub-blocks'), so that the lane does not wait on one chain's
			// latency.
			var sumi2 reg.VecVirtual
			if tokens == 1 {
				sumi2 = ZMM()
			}
			qh, hb, w, d, a := ZMM(), ZMM(), ZMM(), ZMM(), ZMM()
			var scs [8]reg.VecVirtual // the rows' scales, in the low half of each dword
			for j := range scs {
				scs[j] = ZMM()
				VPMOVZXBD(Mem{Base: pw, Disp: 128 + 16*j}, scs[j])
			}
			for s := range 8 {
				for c := range sumi {
					VPXORD(sumi[c], sumi[c], sumi[c])
				}
				if sumi2 != nil {
					VPXORD(sumi2, sumi2, sumi2)
				}
				VMOVDQU32(Mem{Base: pw, Disp: 2432 + 64*s}, qh)
				for pr := range 4 {
					bits := hb // qh bits 2pr, 2pr+1 at 4, 5
					switch pr {
					case 0:
						VPSLLD(U8(4), qh, hb)
					case 1:
						VPSLLD(U8(2), qh, hb)
					case 2:
						bits = qh
					case 3:
						VPSRLD(U8(2), qh, hb)
					}
					q := Mem{Base: pw, Disp: 384 + 512*pr + 64*s}
					for h := range 2 {
						j := 2*pr + h
						if h == 0 {
							VPANDD(q, low, w)
							VPTERNLOGD_BCST(U8(0xF8), bytes4(0x10), bits, w) // w | (bits & 0x10)
						} else {
							VMOVDQU32(q, w)
							VPSRLW(U8(3), w, w)
							VPANDD_BCST(bytes4(0x1E), w, w)
							VPTERNLOGD_BCST(U8(0xF8), bytes4(0x20), bits, w) // twice the value
						}
						for c := range tokens {
							VPXORD(d, d, d)
							vnniBcst("VPDPBUSD", addr[c].Offset(4+32*j+4*s), w, d)
							dst := sumi[c]
							if sumi2 != nil && h == 1 {
								dst = sumi2
							}
							vnni("VPDPWSSD", scs[j], d, dst)
						}
					}
				}
				if sumi2 != nil {
					VPADDD(sumi2, sumi[0], sumi[0])
				}
				for c := range tokens {
					VPSRAD(U8(1), sumi[c], sumi[c]) // exact: every term is even
					scaleLane(sumi[c], ds[c], acc[c][s], f, a)
				}
			}
		}, func(accs []reg.VecVirtual) {
			for c := range tokens {
				hsumLanes(acc[c], &summs[c], accs[c])
			}
		})
}

var bytes4Mem = map[uint8]Mem{}

// bytes4 is four bytes of b in memory, for an embedded broadcast.
func bytes4(b uint8) Mem {
	m, ok := bytes4Mem[b]
	if !ok {
		m = GLOBL(fmt.Sprintf("bytes4_%02x", b), RODATA|NOPTR)
		DATA(0, U32(uint32(b)*0x01010101))
		bytes4Mem[b] = m
	}
	return m
}

// minPairs returns, per token, the rows' Σ_j m_j·(bsum_2j + bsum_2j+1)
// in 16 int32 lanes, from the mins at pw+off in pairs (m_2i and m_2i+1 of
// row r at off+32i+2r: one VPMOVZXBW gives each row's pair as a dword of
// two words) and the token's sums of bsum pairs (one VPHADDW, stored as
// 8 int16 at spair[c]): one VPDPWSSD per pair of mins. Pair i's product
// alone, m_2i·S_2i + m_2i+1·S_2i+1, is Q4_K's min lane i (minPairLanes).
func minPairs(pw reg.Register, addr []Mem, spair []Mem, off int) []reg.VecVirtual {
	msum := make([]reg.VecVirtual, len(addr))
	for c := range msum {
		msum[c] = ZMM()
		VPXORD(msum[c], msum[c], msum[c])
	}
	storeBsumPairs(addr, spair)
	m := ZMM()
	for i := range 4 {
		VPMOVZXBW(Mem{Base: pw, Disp: off + 32*i}, m)
		for c := range addr {
			vnniBcst("VPDPWSSD", spair[c].Offset(4*i), m, msum[c])
		}
	}
	return msum
}

// storeBsumPairs stores each token's eight bsum_2j + bsum_2j+1 (under
// 2^12 in magnitude) as int16 at spair[c].
func storeBsumPairs(addr []Mem, spair []Mem) {
	for c := range addr {
		b := XMM()
		VMOVDQU(addr[c].Offset(260), b)
		VPHADDW(addr[c].Offset(276), b, b)
		VMOVDQU(b, spair[c])
	}
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
// kvalue+128 (unsigned for VPDPBUSD), times the token's activations,
// accumulated onto -128 times the sum of those four activations
// (precomputed a block for each token, by VPDPBUSD with 128s, and
// broadcast from memory, a load); times the row's scale in float (the
// sums reach 2^16, past VPDPWSSD's int16 halves; the float products and
// sums are exact).
func dotIQ4XSR16(tokens int) {
	name := fmt.Sprintf("dotIQ4_XSR16x%d", tokens)
	var (
		acc      [][]Mem
		xs       []Mem // per token: 64 dwords, -128·Σ of activations 4k…4k+3
		low, lut reg.VecVirtual
	)
	r16Kernel(name, fmt.Sprintf("%s is dotIQ4_XSGeneric of 16 packed rows with %d tokens (a store mask of rows).", name, tokens),
		tokens, 2368, 292, r16Prefetch, func(_, _ reg.Register) {
			acc, _ = laneAccs(tokens, false)
			for range tokens {
				xs = append(xs, AllocLocal(256))
			}
			low = ZMM()
			t := GP32()
			MOVL(U32(0x0f0f0f0f), t)
			VPBROADCASTD(t, low)
			lut = iq4Lut512()
		}, func(pw reg.Register, addr []Mem, _ []reg.VecVirtual) {
			t, b128, z := ZMM(), ZMM(), ZMM()
			VPBROADCASTD(bytes4(0x80), b128)
			VPXORD(z, z, z)
			for c := range tokens {
				for k := range 4 {
					VPXORD(t, t, t)
					vnni("VPDPBUSD", addr[c].Offset(4+64*k), b128, t)
					VPSUBD(t, z, t)
					VMOVDQU32(t, xs[c].Offset(64*k))
				}
			}
			ds := rowScales(addr, Mem{Base: pw})
			// A lane's sum, Σ_j sc_j·D_j, is below 2^24 (|sc| ≤ 32, |D| ≤
			// 4·127·128): its float, built with fused multiply-adds of the
			// float scales and sums, is the integer's exactly.
			lanes := make([]reg.VecVirtual, tokens)
			for c := range lanes {
				lanes[c] = ZMM()
			}
			// A second chain of FMAs a lane for few tokens, whose one chain
			// would wait on its latency; the partial sums are exact.
			var lanes2 []reg.VecVirtual
			if tokens <= 2 {
				for range tokens {
					lanes2 = append(lanes2, ZMM())
				}
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
				for c := range lanes2 {
					VXORPS(lanes2[c], lanes2[c], lanes2[c])
				}
				for j := range 8 {
					src := Mem{Base: pw, Disp: 320 + 256*j + 64*(s%4)}
					if s < 4 {
						VPANDD(src, low, w)
					} else {
						VPSRLW(U8(4), src, w)
						VPANDD(low, w, w)
					}
					VPSHUFB(w, lut, w)
					for c := range tokens {
						VPBROADCASTD(xs[c].Offset(4*(8*j+s)), d)
						vnniBcst("VPDPBUSD", addr[c].Offset(4+32*j+4*s), w, d)
						VCVTDQ2PS(d, d)
						l := lanes[c]
						if lanes2 != nil && j%2 == 1 {
							l = lanes2[c]
						}
						VFMADD231PS(d, scs[j], l)
					}
				}
				for c := range lanes2 {
					VADDPS(lanes2[c], lanes[c], lanes[c])
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
		tokens, 4416, 292, 0, func(_, _ reg.Register) {
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
// the mins, in pairs, times pairs of sums of bsum pairs (one VPDPWSSD a
// lane, as minPairs), each scaled into its own
// float accumulator block after block, then reduced as
// ggml_vec_dot_q4_K_q8_K does.
func dotQ4KR16(tokens int) {
	name := fmt.Sprintf("dotQ4_KR16x%d", tokens)
	var (
		acc, accm [][]Mem
		spair     []Mem // per token: the 8 bsum pairs' sums as int16
		low       reg.VecVirtual
	)
	r16Kernel(name, fmt.Sprintf("%s is dotQ4_KGeneric of 16 packed rows with %d tokens (a store mask of rows).", name, tokens),
		tokens, 2432, 292, r16Prefetch, func(_, _ reg.Register) {
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
				spair = append(spair, AllocLocal(16))
			}
			low = ZMM()
			t := GP32()
			MOVL(U32(0x0f0f0f0f), t)
			VPBROADCASTD(t, low)
		}, func(pw reg.Register, addr []Mem, _ []reg.VecVirtual) {
			// mins: lane k of a row is m_2k·(b_4k+b_4k+1) + m_2k+1·(b_4k+2+b_4k+3),
			// one VPDPWSSD of the row's pair of mins (PackQ4_KR16 stores them
			// in pairs) against the token's pair of bsum-pair sums
			prod := make([]reg.VecVirtual, tokens)
			for c := range prod {
				prod[c] = ZMM()
			}
			storeBsumPairs(addr, spair)
			m, f, a := ZMM(), ZMM(), ZMM()
			dmins := rowScales(addr, Mem{Base: pw, Disp: 64})
			for k := range 4 {
				VPMOVZXBW(Mem{Base: pw, Disp: 256 + 32*k}, m)
				for c := range tokens {
					VPXORD(prod[c], prod[c], prod[c])
					vnniBcst("VPDPWSSD", spair[c].Offset(4*k), m, prod[c])
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
