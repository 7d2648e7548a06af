// Command gen writes the AVX2/FMA/F16C kernels of package kernels with
// avo: go run . -out ../dot_amd64.s -stubs ../dot_amd64_stubs.go -pkg kernels
// (kernels.go's go:generate line runs it).
package main

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("amd64,!noasm")
	dotF32()
	dotF16()
	dotQ8()
	for rows := 1; rows <= 4; rows++ {
		dotQ8xN(rows)
	}
	for tokens := 1; tokens <= 8; tokens++ {
		dotQ8R16(tokens)
	}
	for tokens := 1; tokens <= 4; tokens++ {
		dotQ4KR16(tokens)
	}
	for tokens := 1; tokens <= 4; tokens++ {
		dotQ6KR16(tokens)
	}
	dotQ4()
	for rows := 2; rows <= 4; rows++ {
		dotQ4xN(rows)
	}
	for rows := 1; rows <= 4; rows++ {
		dotQ4KxN(rows)
	}
	for rows := 1; rows <= 4; rows++ {
		dotQ6KxN(rows)
	}
	for accs := 1; accs <= 2; accs++ {
		bf16Lanes(accs)
	}
	for _, f := range floatRows {
		for rows := 2; rows <= 3; rows++ {
			dotFloatxN(f, rows)
		}
	}
	axpy()
	quantQ8()
	quantQ8K()
	dotRows()
	axpyRows()
	expConstants()
	expShift()
	swiglu()
	quantKernels()
	packedKernels()
	Generate()
}

// hsum reduces the 8 float lanes of acc to a scalar in the low lane of
// the returned register.
func hsum(acc reg.VecVirtual) reg.Register {
	hi := XMM()
	VEXTRACTF128(U8(1), acc, hi)
	lo := acc.AsX()
	VADDPS(hi, lo, lo)
	t := XMM()
	VMOVHLPS(lo, lo, t)
	VADDPS(t, lo, lo)
	VMOVSHDUP(lo, t)
	VADDSS(t, lo, lo)
	return lo
}

// reduce4 adds four 8-lane accumulators and their lanes in the order of
// ggml's GGML_F32x8_REDUCE: (x0+x2)+(x1+x3), then low+high halves, then
// two horizontal adds.
func reduce4(accs []reg.VecVirtual) reg.Register {
	VADDPS(accs[2], accs[0], accs[0])
	VADDPS(accs[3], accs[1], accs[1])
	VADDPS(accs[1], accs[0], accs[0])
	hi := XMM()
	VEXTRACTF128(U8(1), accs[0], hi)
	lo := accs[0].AsX()
	VADDPS(hi, lo, lo)
	VHADDPS(lo, lo, lo)
	VHADDPS(lo, lo, lo)
	return lo
}

// dotF32 is Σ a[i]·b[i] over the first len(a) &^ 31 elements in ggml's
// order (ggml_vec_dot_f32 on AVX2: four 8-lane FMA accumulators over steps
// of 32, then reduce4); the Go wrapper adds the tail in float64 as ggml
// does.
func dotF32() {
	TEXT("dotF32AVX2", NOSPLIT, "func(a, b []float32) float32")
	Pragma("noescape")
	Doc("dotF32AVX2 is, in four 8-lane FMA accumulators over steps of 32,",
		"",
		"\tfor i := 0; i < len(a)&^31; i++ { s += a[i] * b[i] }")
	pa := Load(Param("a").Base(), GP64())
	pb := Load(Param("b").Base(), GP64())
	n := Load(Param("a").Len(), GP64())
	ANDQ(I32(^31), n)
	accs := []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range accs {
		VXORPS(a, a, a)
	}
	i := GP64()
	XORQ(i, i)
	Label("f32loop")
	CMPQ(i, n)
	JAE(LabelRef("f32done"))
	for k, acc := range accs {
		x := YMM()
		VMOVUPS(Mem{Base: pa, Index: i, Scale: 4, Disp: 32 * k}, x)
		VFMADD231PS(Mem{Base: pb, Index: i, Scale: 4, Disp: 32 * k}, x, acc)
	}
	ADDQ(U8(32), i)
	JMP(LabelRef("f32loop"))
	Label("f32done")
	s := reduce4(accs)
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

// dotF16 is the same for half-precision rows (ggml_vec_dot_f16), converted
// with F16C.
func dotF16() {
	TEXT("dotF16AVX2", NOSPLIT, "func(a, b []uint16) float32")
	Pragma("noescape")
	Doc("dotF16AVX2 is, converting with F16C, in four 8-lane FMA accumulators,",
		"",
		"\tfor i := 0; i < len(a)&^31; i++ { s += f16(a[i]) * f16(b[i]) }")
	pa := Load(Param("a").Base(), GP64())
	pb := Load(Param("b").Base(), GP64())
	n := Load(Param("a").Len(), GP64())
	ANDQ(I32(^31), n)
	accs := []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range accs {
		VXORPS(a, a, a)
	}
	i := GP64()
	XORQ(i, i)
	Label("f16loop")
	CMPQ(i, n)
	JAE(LabelRef("f16done"))
	for k, acc := range accs {
		x, y := YMM(), YMM()
		VCVTPH2PS(Mem{Base: pa, Index: i, Scale: 2, Disp: 16 * k}, x)
		VCVTPH2PS(Mem{Base: pb, Index: i, Scale: 2, Disp: 16 * k}, y)
		VFMADD231PS(y, x, acc)
	}
	ADDQ(U8(32), i)
	JMP(LabelRef("f16loop"))
	Label("f16done")
	s := reduce4(accs)
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

// dotQ8 is the dot product of nb Q8_0 blocks (fp16 scale + 32 int8) of w
// and x: per block, |w| · sign(x, w) by VPMADDUBSW, pairs summed to int32
// by VPMADDWD, converted and scaled by d_w·d_x into 8 float lanes — the
// way ggml's AVX2 kernel does it.
func dotQ8() {
	TEXT("dotQ8_0AVX2", NOSPLIT, "func(w, x []byte, nb int) float32")
	Pragma("noescape")
	Doc("dotQ8_0AVX2 is, for nb Q8_0 blocks of 34 bytes (fp16 scale, 32 int8),",
		"",
		"\tfor b := 0; b < nb; b++ { s += d(w[b]) * d(x[b]) * Σ_j q(w[b])[j] * q(x[b])[j] }",
		"",
		"with the integer sums in 8 int32 lanes and the scaling in 8 float lanes.")
	pw := Load(Param("w").Base(), GP64())
	px := Load(Param("x").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	acc := YMM()
	VXORPS(acc, acc, acc)
	ones := YMM()
	VPCMPEQW(ones, ones, ones)
	VPSRLW(U8(15), ones, ones) // sixteen int16 ones
	Label("q8loop")
	CMPQ(nb, U8(0))
	JE(LabelRef("q8done"))
	// Scales: two fp16 values to float, multiplied, broadcast.
	t := GP32()
	dw, dx := XMM(), XMM()
	MOVWLZX(Mem{Base: pw}, t)
	VMOVD(t, dw)
	VCVTPH2PS(dw, dw)
	MOVWLZX(Mem{Base: px}, t)
	VMOVD(t, dx)
	VCVTPH2PS(dx, dx)
	VMULSS(dx, dw, dw)
	d := YMM()
	VBROADCASTSS(dw, d)
	qw, qx := YMM(), YMM()
	VMOVDQU(Mem{Base: pw, Disp: 2}, qw)
	VMOVDQU(Mem{Base: px, Disp: 2}, qx)
	ax, sy := YMM(), YMM()
	VPSIGNB(qw, qw, ax) // |w|
	VPSIGNB(qw, qx, sy) // x with w's sign
	VPMADDUBSW(sy, ax, ax)
	VPMADDWD(ones, ax, ax)
	VCVTDQ2PS(ax, ax)
	VFMADD231PS(ax, d, acc)
	ADDQ(U8(34), pw)
	ADDQ(U8(34), px)
	DECQ(nb)
	JMP(LabelRef("q8loop"))
	Label("q8done")
	s := hsum(acc)
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

// dotQ8xN is dotQ8 of nrows weight rows with rows (2 to 4) activation
// rows (a batch of tokens), the weight rows' dot products with each token
// written to dst a token's stride apart: each weight block is loaded and
// its magnitudes taken once for all tokens, the tokens' block scales come
// already widened to float32 and interleaved by block (xd[b*rows+c]), and
// each sum is built with exactly the operations of dotQ8, so the results
// are bit-identical to separate calls. The loop over weight rows is here
// rather than in Go because a batch of a few tokens makes each row's work
// small.
func dotQ8xN(rows int) {
	name := fmt.Sprintf("dotQ8_0x%dAVX2", rows)
	TEXT(name, NOSPLIT, "func(w, x []byte, stride, nb, nrows int, xd []byte, dst []float32, dstride int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, for r := 0; r < nrows; r++ and c := 0; c < %d; c++,", name, rows),
		"",
		"\tdst[c*dstride+r] = dotQ8_0AVX2(w[r*nb*34:], x[c*stride:], nb)",
		"",
		"with xd (Q8_0Pack) holding the scale of block b of x's row c as float32 at 4*(b*"+fmt.Sprint(rows)+"+c).")
	pw := Load(Param("w").Base(), GP64())
	px0 := Load(Param("x").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	nb := Load(Param("nb"), GP64())
	nrows := Load(Param("nrows"), GP64())
	pd0 := Load(Param("xd").Base(), GP64())
	pdst := Load(Param("dst").Base(), GP64())
	ds := Load(Param("dstride"), GP64())
	SHLQ(U8(2), ds) // in bytes
	ones := YMM()
	VPCMPEQW(ones, ones, ones)
	VPSRLW(U8(15), ones, ones)
	px, px2, pd, cnt := GP64(), GP64(), GP64(), GP64()
	rowLoop, rowDone, loop, done := name+"rows", name+"rowsdone", name+"loop", name+"done"
	Label(rowLoop)
	CMPQ(nrows, U8(0))
	JE(LabelRef(rowDone))
	// Row c of x starts at px + c*stride: rows 0 and 1 from px, rows 2
	// and 3 from px2.
	MOVQ(px0, px)
	LEAQ(Mem{Base: px, Index: stride, Scale: 2}, px2)
	MOVQ(pd0, pd)
	MOVQ(nb, cnt)
	accs := make([]reg.VecVirtual, rows)
	for c := range accs {
		accs[c] = YMM()
		VXORPS(accs[c], accs[c], accs[c])
	}
	addr := []Mem{{Base: px}, {Base: px, Index: stride, Scale: 1}, {Base: px2}, {Base: px2, Index: stride, Scale: 1}}
	Label(loop)
	CMPQ(cnt, U8(0))
	JE(LabelRef(done))
	t := GP32()
	dw := XMM()
	MOVWLZX(Mem{Base: pw}, t)
	VMOVD(t, dw)
	VCVTPH2PS(dw, dw)
	dwv := YMM()
	VBROADCASTSS(dw, dwv)
	qw, ax := YMM(), YMM()
	VMOVDQU(Mem{Base: pw, Disp: 2}, qw)
	VPSIGNB(qw, qw, ax) // |w|
	for c := range rows {
		d := YMM()
		VBROADCASTSS(Mem{Base: pd, Disp: 4 * c}, d)
		VMULPS(d, dwv, d) // d(w)·d(x), as dotQ8's scalar product
		qx := YMM()
		VMOVDQU(addr[c].Offset(2), qx)
		VPSIGNB(qw, qx, qx) // x with w's sign
		VPMADDUBSW(qx, ax, qx)
		VPMADDWD(ones, qx, qx)
		VCVTDQ2PS(qx, qx)
		VFMADD231PS(qx, d, accs[c])
	}
	ADDQ(U8(34), pw) // the weight rows are contiguous: pw ends at the next one
	ADDQ(U8(34), px)
	ADDQ(U8(34), px2)
	ADDQ(U8(4*rows), pd)
	DECQ(cnt)
	JMP(LabelRef(loop))
	Label(done)
	for c, acc := range accs {
		s := hsum(acc)
		switch c {
		case 0:
			VMOVSS(s, Mem{Base: pdst})
		case 1:
			VMOVSS(s, Mem{Base: pdst, Index: ds, Scale: 1})
		case 2:
			VMOVSS(s, Mem{Base: pdst, Index: ds, Scale: 2})
		case 3:
			LEAQ(Mem{Base: pdst, Index: ds, Scale: 2}, cnt) // cnt is free: 0 here
			VMOVSS(s, Mem{Base: cnt, Index: ds, Scale: 1})
		}
	}
	ADDQ(U8(4), pdst)
	DECQ(nrows)
	JMP(LabelRef(rowLoop))
	Label(rowDone)
	VZEROUPPER()
	RET()
}

// r16Prefetch is how far ahead, in bytes, the packed Q8_0 and Q4_K
// kernels hint the weights they are about to read as non-temporal
// (PREFETCHNTA): 8 Q8_0 blocks, almost 2 Q4_K super-blocks. A product
// reads its weights once, so the hint keeps them from evicting what is
// read again: activations, the KV cache and, with a cluster's roles in
// one process, the network path's buffers. In A/B runs in one process on
// the medium models, Q8_0: single-stream decode +3%, the cluster's single
// stream +9%, 16 streams +18%; Q4_K: one stream +8%, 16 streams +35–44%.
// On a lone matrix (BenchmarkMatVec), where nothing else needs the
// caches, the hint is worth nothing to Q8_0 and costs Q6_K a tenth; with
// no Q6_K model to measure on, the Q6_K kernel does without.
const r16Prefetch = 4608

// dotQ8R16 multiplies a group of 16 Q8_0 weight rows, packed by
// PackQ8_0R16 (per block 8 slices of 64 bytes, slice s holding bytes
// 4s…4s+3 of each row offset to unsigned by +128; after the blocks, the
// 16 rows' scales of each as float16), with tokens activation rows packed by
// PackQ8_0R16Act (per block: 32 quants, −128·Σ of them as int32, the
// scale as float32). Per block, eight VPDPBUSD with the token's quants
// broadcast a dword at a time give each row's exact integer sum in its own
// lane; converted, scaled by d(w)·d(x) and added with a fused
// multiply-add, block after block. Lanes of rows past the group's end are
// not stored (mask).
// r16Kernel writes what the packed-weight kernels share: the signature
//
//	func(wp, x []byte, nb, xstride int, dst []float32, dstride int, mask uint16)
//
// (16 packed weight rows, tokens activation rows xstride bytes apart),
// setup (may be nil; given the weights' pointer and the block count)
// before the loop, one 16-lane float accumulator a
// token, zeroed, and a loop over the nb blocks, blockBytes of weights and
// actBytes of each token's activations each, whose body is body (after,
// if prefetch is not 0, a non-temporal prefetch of the block that many
// bytes ahead); then the accumulators are stored a token's dstride apart,
// the rows past the group's end masked off (after finish, if given).
func r16Kernel(name, doc string, tokens, blockBytes, actBytes, prefetch int, setup func(pw, nb reg.Register), body func(pw reg.Register, addr []Mem, accs []reg.VecVirtual), finish ...func(accs []reg.VecVirtual)) {
	attr := NOSPLIT
	if finish != nil {
		attr = 0 // its accumulators may take a frame larger than NOSPLIT allows
	}
	TEXT(name, attr, "func(wp, x []byte, nb, xstride int, dst []float32, dstride int, mask uint16)")
	Pragma("noescape")
	Doc(doc)
	pw := Load(Param("wp").Base(), GP64())
	px := Load(Param("x").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	xs := Load(Param("xstride"), GP64())
	pdst := Load(Param("dst").Base(), GP64())
	ds := Load(Param("dstride"), GP64())
	SHLQ(U8(2), ds) // in bytes
	mask := Load(Param("mask"), GP32())
	// Token c's activations: tokens 0 and 1 from px, 2 and 3 from px2,
	// 4 and 5 from px4, 6 and 7 from px6.
	ptrs := []reg.Register{px}
	for c := 2; c < tokens; c += 2 {
		p := GP64()
		LEAQ(Mem{Base: ptrs[len(ptrs)-1], Index: xs, Scale: 2}, p)
		ptrs = append(ptrs, p)
	}
	var addr []Mem
	for c := range tokens {
		if c%2 == 0 {
			addr = append(addr, Mem{Base: ptrs[c/2]})
		} else {
			addr = append(addr, Mem{Base: ptrs[c/2], Index: xs, Scale: 1})
		}
	}
	if setup != nil {
		setup(pw, nb)
	}
	accs := make([]reg.VecVirtual, tokens)
	for c := range accs {
		accs[c] = ZMM()
		VPXORD(accs[c], accs[c], accs[c])
	}
	loop, done := name+"loop", name+"done"
	Label(loop)
	CMPQ(nb, U8(0))
	JE(LabelRef(done))
	for off := 0; prefetch > 0 && off < blockBytes; off += 64 {
		PREFETCHNTA(Mem{Base: pw, Disp: prefetch + off})
	}
	body(pw, addr, accs)
	ADDQ(U32(uint32(blockBytes)), pw)
	for _, p := range ptrs {
		ADDQ(U32(uint32(actBytes)), p)
	}
	DECQ(nb)
	JMP(LabelRef(loop))
	Label(done)
	for _, f := range finish { // the accumulators' final values, where the body kept them elsewhere
		f(accs)
	}
	k := K()
	KMOVW(mask, k)
	for c, acc := range accs {
		VMOVUPS(acc, k, Mem{Base: pdst})
		if c+1 < tokens {
			ADDQ(ds, pdst)
		}
	}
	VZEROUPPER()
	RET()
}

func dotQ8R16(tokens int) {
	name := fmt.Sprintf("dotQ8_0R16x%d", tokens)
	var ps reg.Register // the blocks' scales, after the group's quants
	r16Kernel(name, fmt.Sprintf("%s is dotQ8_0R16Generic for %d tokens (a store mask of rows).", name, tokens),
		tokens, 512, 40, r16Prefetch, func(pw, nb reg.Register) {
			ps = GP64()
			MOVQ(nb, ps)
			SHLQ(U8(9), ps)
			ADDQ(pw, ps)
		}, func(pw reg.Register, addr []Mem, accs []reg.VecVirtual) {
			dw := ZMM()
			VCVTPH2PS(Mem{Base: ps}, dw)
			ADDQ(U8(32), ps)
			var w [8]reg.VecVirtual
			for i := range w {
				w[i] = ZMM()
				VMOVDQU32(Mem{Base: pw, Disp: 64 * i}, w[i])
			}
			for c := range tokens {
				acc := ZMM()
				VPBROADCASTD(addr[c].Offset(32), acc) // −128·Σx
				if tokens > 2 {
					for i := range w {
						vnniBcst("VPDPBUSD", addr[c].Offset(4*i), w[i], acc)
					}
				} else { // two chains, so that few tokens do not wait on one
					acc2 := ZMM()
					VPXORD(acc2, acc2, acc2)
					for i := range w {
						vnniBcst("VPDPBUSD", addr[c].Offset(4*i), w[i], [2]reg.VecVirtual{acc, acc2}[i%2])
					}
					VPADDD(acc2, acc, acc)
				}
				VCVTDQ2PS(acc, acc)
				d := ZMM()
				VMULPS_BCST(addr[c].Offset(36), dw, d) // d(w)·d(x)
				VFMADD231PS(acc, d, accs[c])
			}
		})
}

func vnniBcst(op string, s Mem, u, acc reg.Register) {
	Instruction(&ir.Instruction{
		Opcode:   op,
		Suffixes: []string{"BCST"},
		Operands: []Op{s, u, acc},
		Inputs:   []Op{s, u, acc},
		Outputs:  []Op{acc},
		ISA:      []string{"AVX512_VNNI"},
	})
}

// axpy adds a·x to dst over len(x) &^ 7 elements with fused multiply-adds
// (attention's weighted sum of values).
func axpy() {
	TEXT("axpyAVX2", NOSPLIT, "func(dst, x []float32, a float32)")
	Pragma("noescape")
	Doc("axpyAVX2 is, with fused multiply-adds,",
		"",
		"\tfor i := 0; i < len(x)&^7; i++ { dst[i] += a * x[i] }")
	pd := Load(Param("dst").Base(), GP64())
	px := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	ANDQ(I32(^7), n)
	a := YMM()
	VBROADCASTSS(NewParamAddr("a", 48), a)
	i := GP64()
	XORQ(i, i)
	Label("axpyloop")
	CMPQ(i, n)
	JAE(LabelRef("axpydone"))
	d := YMM()
	VMOVUPS(Mem{Base: pd, Index: i, Scale: 4}, d)
	VFMADD231PS(Mem{Base: px, Index: i, Scale: 4}, a, d)
	VMOVUPS(d, Mem{Base: pd, Index: i, Scale: 4})
	ADDQ(U8(8), i)
	JMP(LabelRef("axpyloop"))
	Label("axpydone")
	VZEROUPPER()
	RET()
}

// quantQ8 is ggml's AVX2 Q8_0 quantizer (quantize_row_q8_0) for blocks of
// 32 float32s: d = max|x|/127 stored as half precision, then x·(127/max|x|)
// converted to int32 with rounding to nearest even, packed to int8 and put
// back in order.
// q8perm is packOrder's table, once written.
var q8perm *Mem

// packOrder is the VPERMD index that puts 32 bytes packed from four
// vectors of eight int32 (VPACKSSDW, VPACKSSWB: per 128-bit lane) back in
// order.
func packOrder() Mem {
	if q8perm == nil {
		m := GLOBL("q8perm", RODATA|NOPTR)
		for i, v := range []uint32{0, 4, 1, 5, 2, 6, 3, 7} {
			DATA(4*i, U32(v))
		}
		q8perm = &m
	}
	return *q8perm
}

func quantQ8() {
	TEXT("quantQ8_0AVX2", NOSPLIT, "func(dst []byte, x []float32)")
	Pragma("noescape")
	Doc("quantQ8_0AVX2 writes the len(x)/32 Q8_0 blocks of x into dst, as quantQ8_0Generic.")
	pd := Load(Param("dst").Base(), GP64())
	px := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	SHRQ(U8(5), n)
	abs := YMM()
	VPCMPEQD(abs, abs, abs)
	VPSRLD(U8(1), abs, abs) // 0x7fffffff: clears the sign
	c127 := XMM()
	t := GP32()
	MOVL(U32(0x42fe0000), t) // 127.0
	VMOVD(t, c127)
	order := YMM()
	VMOVDQU(packOrder(), order)
	Label("quantloop")
	CMPQ(n, U8(0))
	JE(LabelRef("quantdone"))
	v := []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for i := range v {
		VMOVUPS(Mem{Base: px, Disp: 32 * i}, v[i])
	}
	m, a := YMM(), YMM()
	VANDPS(abs, v[0], m)
	for i := 1; i < 4; i++ {
		VANDPS(abs, v[i], a)
		VMAXPS(a, m, m)
	}
	hi := XMM()
	VEXTRACTF128(U8(1), m, hi)
	mx := m.AsX()
	VMAXPS(hi, mx, mx)
	VMOVHLPS(mx, mx, hi)
	VMAXPS(hi, mx, mx)
	VMOVSHDUP(mx, hi)
	VMAXSS(hi, mx, mx) // max|x| in the low lane
	d := XMM()
	VDIVSS(c127, mx, d) // max/127
	VCVTPS2PH(U8(0), d, d)
	VPEXTRW(U8(0), d, t)
	MOVW(t.As16(), Mem{Base: pd})
	id, zero := XMM(), XMM()
	VDIVSS(mx, c127, id) // 127/max, +Inf when max is 0
	VXORPS(zero, zero, zero)
	VCMPSS(U8(4), zero, mx, zero) // max != 0
	VANDPS(zero, id, id)
	idv := YMM()
	VBROADCASTSS(id, idv)
	for i := range v {
		VMULPS(idv, v[i], v[i])
		VCVTPS2DQ(v[i], v[i])
	}
	VPACKSSDW(v[1], v[0], v[0])
	VPACKSSDW(v[3], v[2], v[2])
	VPACKSSWB(v[2], v[0], v[0])
	VPERMD(v[0], order, v[0])
	VMOVDQU(v[0], Mem{Base: pd, Disp: 2})
	ADDQ(U8(128), px)
	ADDQ(U8(34), pd)
	DECQ(n)
	JMP(LabelRef("quantloop"))
	Label("quantdone")
	VZEROUPPER()
	RET()
}

// dotRows is dotF32 of q with many rows of k, stride floats apart (an
// attention head's query against every cached key), in one call.
func dotRows() {
	TEXT("dotRowsF32AVX2", NOSPLIT, "func(dst, q, k []float32, stride int)")
	Pragma("noescape")
	Doc("dotRowsF32AVX2 is, for len(q) a multiple of 32,",
		"",
		"\tfor j := range dst { dst[j] = dotF32AVX2(q, k[j*stride:]) }")
	pd := Load(Param("dst").Base(), GP64())
	rows := Load(Param("dst").Len(), GP64())
	pq := Load(Param("q").Base(), GP64())
	n := Load(Param("q").Len(), GP64())
	pk := Load(Param("k").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), stride) // in bytes
	Label("rowsloop")
	CMPQ(rows, U8(0))
	JE(LabelRef("rowsdone"))
	accs := []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, a := range accs {
		VXORPS(a, a, a)
	}
	i := GP64()
	XORQ(i, i)
	Label("rowloop")
	CMPQ(i, n)
	JAE(LabelRef("rowdone"))
	for c, acc := range accs {
		x := YMM()
		VMOVUPS(Mem{Base: pq, Index: i, Scale: 4, Disp: 32 * c}, x)
		VFMADD231PS(Mem{Base: pk, Index: i, Scale: 4, Disp: 32 * c}, x, acc)
	}
	ADDQ(U8(32), i)
	JMP(LabelRef("rowloop"))
	Label("rowdone")
	s := reduce4(accs)
	VMOVSS(s, Mem{Base: pd})
	ADDQ(U8(4), pd)
	ADDQ(stride, pk)
	DECQ(rows)
	JMP(LabelRef("rowsloop"))
	Label("rowsdone")
	VZEROUPPER()
	RET()
}

// axpyRows is axpy of many rows of v, stride floats apart, each with its
// own weight, into dst (an attention head's weighted sum of cached values):
// dst is kept in registers, 64 floats at a time (eight independent chains
// of fused multiply-adds, so that their latency overlaps) and then 8 at a
// time, while the rows are added in order, so each element sees the same
// fused multiply-adds as successive axpy calls.
func axpyRows() {
	TEXT("axpyRowsF32AVX2", NOSPLIT, "func(dst, v []float32, stride int, w []float32)")
	Pragma("noescape")
	Doc("axpyRowsF32AVX2 is, with fused multiply-adds, over len(dst) &^ 7 elements,",
		"",
		"\tfor j := range w { for i := range dst { dst[i] += w[j] * v[j*stride+i] } }")
	pd := Load(Param("dst").Base(), GP64())
	n := Load(Param("dst").Len(), GP64())
	ANDQ(I32(^7), n)
	pv := Load(Param("v").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), stride)
	pw := Load(Param("w").Base(), GP64())
	rows := Load(Param("w").Len(), GP64())
	i, end := GP64(), GP64()
	XORQ(i, i)
	// cols adds every row to dst[i:i+8*width], width registers at a
	// time, while i+8*width ≤ n.
	cols := func(width int, name string) {
		Label(name + "cols")
		LEAQ(Mem{Base: i, Disp: 8 * width}, end)
		CMPQ(end, n)
		JA(LabelRef(name + "colsdone"))
		accs := make([]reg.VecVirtual, width)
		for c := range accs {
			accs[c] = YMM()
			VMOVUPS(Mem{Base: pd, Index: i, Scale: 4, Disp: 32 * c}, accs[c])
		}
		j, row := GP64(), GP64()
		XORQ(j, j)
		LEAQ(Mem{Base: pv, Index: i, Scale: 4}, row)
		Label(name + "w")
		CMPQ(j, rows)
		JAE(LabelRef(name + "wdone"))
		a := YMM()
		VBROADCASTSS(Mem{Base: pw, Index: j, Scale: 4}, a)
		for c, acc := range accs {
			VFMADD231PS(Mem{Base: row, Disp: 32 * c}, a, acc)
		}
		ADDQ(stride, row)
		INCQ(j)
		JMP(LabelRef(name + "w"))
		Label(name + "wdone")
		for c, acc := range accs {
			VMOVUPS(acc, Mem{Base: pd, Index: i, Scale: 4, Disp: 32 * c})
		}
		MOVQ(end, i)
		JMP(LabelRef(name + "cols"))
		Label(name + "colsdone")
	}
	cols(8, "wide")
	cols(1, "narrow")
	VZEROUPPER()
	RET()
}

// The constants of vexp, each eight times (one YMM operand), at these
// offsets of the table expc. They are ggml's for ggml_v_expf: a rounding
// constant, log2(e), ln(2) in two parts, and the polynomial for e^b - 1
// on |b| ≤ ln(2)/2.
const (
	ecRound = 32 * iota
	ecLog2e
	ecLn2Hi
	ecLn2Lo
	ecC5
	ecC4
	ecC3
	ecC2
	ecC1
	ecOne
	ecLo
	ecHi
	ecSign
	ecCount
)

var expc Mem

func expConstants() {
	expc = GLOBL("expc", RODATA|NOPTR)
	values := map[int]uint32{
		ecRound: math.Float32bits(0x1.8p23), ecLog2e: math.Float32bits(0x1.715476p+0),
		ecLn2Hi: math.Float32bits(0x1.62e4p-1), ecLn2Lo: math.Float32bits(0x1.7f7d1cp-20),
		ecC5: math.Float32bits(0x1.0e4020p-7), ecC4: math.Float32bits(0x1.573e2ep-5),
		ecC3: math.Float32bits(0x1.555e66p-3), ecC2: math.Float32bits(0x1.fffdb6p-2),
		ecC1: math.Float32bits(0x1.ffffecp-1), ecOne: math.Float32bits(1),
		ecLo: math.Float32bits(-87), ecHi: math.Float32bits(87), ecSign: 0x80000000,
	}
	for off := 0; off < ecCount; off += 32 {
		for lane := range 8 {
			DATA(off+4*lane, U32(values[off]))
		}
	}
}

// vexp sets x to e^x in each of its 8 lanes, as expGeneric does: x
// clamped to [-87, 87] (a NaN stays), n = round(x·log2 e), b = x - n·ln 2,
// e^x = 2^n·(1 + p(b)) with the last step a fused multiply-add.
func vexp(x reg.VecVirtual) {
	c := func(off int) Mem { return expc.Offset(off) }
	// Intel's MAX(a, b) is a > b ? a : b, so b when either is NaN.
	lim := YMM()
	VMOVUPS(c(ecLo), lim)
	VMAXPS(x, lim, x) // lo > x ? lo : x
	VMOVUPS(c(ecHi), lim)
	VMINPS(x, lim, x) // hi < x ? hi : x
	z, n := YMM(), YMM()
	VMOVUPS(c(ecRound), z)
	VFMADD231PS(c(ecLog2e), x, z)  // z = x·log2e + round
	VSUBPS(c(ecRound), z, n)       // n = z - round
	VFNMADD231PS(c(ecLn2Hi), n, x) // b = x - n·ln2hi
	VFNMADD231PS(c(ecLn2Lo), n, x) //   - n·ln2lo
	b := x
	VPSLLD(U8(23), z, z)
	VPADDD(c(ecOne), z, z) // k = 2^n
	k := z
	u := YMM()
	VMULPS(b, b, u)
	p, q := YMM(), YMM()
	VMOVUPS(c(ecC4), p)
	VFMADD231PS(c(ecC5), b, p) // c5·b + c4
	VMOVUPS(c(ecC2), q)
	VFMADD231PS(c(ecC3), b, q) // c3·b + c2
	VFMADD213PS(q, u, p)       // p = p·u + q
	VMULPS(c(ecC1), b, q)      // c1·b
	VFMADD213PS(q, u, p)       // j = p·u + c1·b
	VFMADD213PS(k, k, p)       // j·k + k
	VMOVAPS(p, x)
}

// expShift is e^(x-shift) over a row (attention's softmax).
func expShift() {
	TEXT("expShiftF32AVX2", NOSPLIT, "func(x []float32, shift float32)")
	Pragma("noescape")
	Doc("expShiftF32AVX2 is, over len(x) &^ 7 elements, x[i] = expGeneric(x[i] - shift).")
	px := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	SHRQ(U8(3), n)
	shx := Load(Param("shift"), XMM())
	sh := YMM()
	VBROADCASTSS(shx, sh)
	Label("exploop")
	CMPQ(n, U8(0))
	JE(LabelRef("expdone"))
	v := YMM()
	VMOVUPS(Mem{Base: px}, v)
	VSUBPS(sh, v, v)
	vexp(v)
	VMOVUPS(v, Mem{Base: px})
	ADDQ(U8(32), px)
	DECQ(n)
	JMP(LabelRef("exploop"))
	Label("expdone")
	VZEROUPPER()
	RET()
}

// swiglu is silu(g)·u = g / (1 + e^-g) · u over a row (a feed-forward
// network's gate and up projections).
func swiglu() {
	TEXT("swigluF32AVX2", NOSPLIT, "func(g, u []float32)")
	Pragma("noescape")
	Doc("swigluF32AVX2 is, over len(g) &^ 7 elements, g[i] = g[i] / (1 + expGeneric(-g[i])) * u[i].")
	pg := Load(Param("g").Base(), GP64())
	pu := Load(Param("u").Base(), GP64())
	n := Load(Param("g").Len(), GP64())
	SHRQ(U8(3), n)
	Label("swigluloop")
	CMPQ(n, U8(0))
	JE(LabelRef("swigludone"))
	g, e := YMM(), YMM()
	VMOVUPS(Mem{Base: pg}, g)
	VXORPS(expc.Offset(ecSign), g, e) // -g
	vexp(e)
	VADDPS(expc.Offset(ecOne), e, e)
	VDIVPS(e, g, g)
	VMULPS(Mem{Base: pu}, g, g)
	VMOVUPS(g, Mem{Base: pg})
	ADDQ(U8(32), pg)
	ADDQ(U8(32), pu)
	DECQ(n)
	JMP(LabelRef("swigluloop"))
	Label("swigludone")
	VZEROUPPER()
	RET()
}

// broadcastByte returns a YMM register with every byte set to b.
func broadcastByte(b uint32) reg.VecVirtual {
	t := GP32()
	MOVL(U32(b*0x01010101), t)
	x := XMM()
	VMOVD(t, x)
	y := YMM()
	VPBROADCASTD(x, y)
	return y
}

// dotQ4 is ggml's AVX2 Q4_0 × Q8_0 dot product: the 32 nibbles of a block
// unpacked to bytes (low nibbles first), minus 8, then as dotQ8.
func dotQ4() {
	TEXT("dotQ4_0AVX2", NOSPLIT, "func(w, x []byte, nb int) float32")
	Pragma("noescape")
	Doc("dotQ4_0AVX2 is, for nb Q4_0 blocks of w (18 bytes) and Q8_0 blocks of x,",
		"",
		"\tfor b := 0; b < nb; b++ { s += d(w[b]) * d(x[b]) * Σ_j (nibble(w[b], j) - 8) * q(x[b])[j] }",
		"",
		"with the integer sums in 8 int32 lanes and the scaling in 8 float lanes.")
	pw := Load(Param("w").Base(), GP64())
	px := Load(Param("x").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	acc := YMM()
	VXORPS(acc, acc, acc)
	k := newQ4Consts()
	Label("q4loop")
	CMPQ(nb, U8(0))
	JE(LabelRef("q4done"))
	blk := k.unpack(pw)
	blk.row(k, Mem{Base: px}, acc)
	ADDQ(U8(18), pw)
	ADDQ(U8(34), px)
	DECQ(nb)
	JMP(LabelRef("q4loop"))
	Label("q4done")
	s := hsum(acc)
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

// q4Consts are the constants of the Q4_0 kernels: 16-bit ones, the low
// nibble mask and the offset 8.
type q4Consts struct{ ones, low, eight reg.VecVirtual }

func newQ4Consts() q4Consts {
	ones := YMM()
	VPCMPEQW(ones, ones, ones)
	VPSRLW(U8(15), ones, ones)
	return q4Consts{ones, broadcastByte(0x0F), broadcastByte(0x08)}
}

// q4Block is a Q4_0 weight block unpacked: its scale (a float in the low
// lane of dw), its 32 values q - 8 as bytes, and their magnitudes.
type q4Block struct {
	dw     reg.VecVirtual
	qw, ax reg.VecVirtual
}

// unpack loads the Q4_0 block at pw.
func (k q4Consts) unpack(pw reg.Register) q4Block {
	t := GP32()
	dw := XMM()
	MOVWLZX(Mem{Base: pw}, t)
	VMOVD(t, dw)
	VCVTPH2PS(dw, dw)
	lo, hi := XMM(), XMM()
	VMOVDQU(Mem{Base: pw, Disp: 2}, lo)
	VPSRLW(U8(4), lo, hi)
	qw := YMM()
	VINSERTI128(U8(1), hi, lo.AsY(), qw)
	VPAND(k.low, qw, qw)
	VPSUBB(k.eight, qw, qw)
	ax := YMM()
	VPSIGNB(qw, qw, ax)
	return q4Block{dw, qw, ax}
}

// row adds the block's product with the Q8_0 block at x to acc, as
// ggml's AVX2 kernel: |w| · sign(x, w) by VPMADDUBSW, pairs summed to
// int32 by VPMADDWD, converted and scaled by d_w·d_x into 8 float lanes.
func (b q4Block) row(k q4Consts, x Mem, acc reg.VecVirtual) {
	t := GP32()
	dx := XMM()
	MOVWLZX(x, t)
	VMOVD(t, dx)
	VCVTPH2PS(dx, dx)
	VMULSS(dx, b.dw, dx)
	d := YMM()
	VBROADCASTSS(dx, d)
	q := x
	q.Disp += 2
	sy := YMM()
	VMOVDQU(q, sy)
	VPSIGNB(b.qw, sy, sy)
	p := YMM()
	VPMADDUBSW(sy, b.ax, p)
	VPMADDWD(k.ones, p, p)
	VCVTDQ2PS(p, p)
	VFMADD231PS(p, d, acc)
}

// dotQ4xN is dotQ4 of one weight row with rows (2 to 4) Q8_0 activation
// rows, stride bytes apart: a block's scale and nibbles are unpacked once
// for all rows, and each row's sums and scaling follow dotQ4's, so every
// result is bit-identical to a separate call.
func dotQ4xN(rows int) {
	name := fmt.Sprintf("dotQ4_0x%dAVX2", rows)
	pw, px, px2, nb, out, addr := rowsKernel(name, "DotQ4_0", rows)
	accs := make([]reg.VecVirtual, rows)
	for c := range accs {
		accs[c] = YMM()
		VXORPS(accs[c], accs[c], accs[c])
	}
	k := newQ4Consts()
	loop, done := name+"loop", name+"done"
	Label(loop)
	CMPQ(nb, U8(0))
	JE(LabelRef(done))
	blk := k.unpack(pw)
	for c := range rows {
		blk.row(k, addr[c], accs[c])
	}
	ADDQ(U8(18), pw)
	ADDQ(U8(34), px)
	ADDQ(U8(34), px2)
	DECQ(nb)
	JMP(LabelRef(loop))
	Label(done)
	for c := range rows {
		VMOVSS(hsum(accs[c]), Mem{Base: out, Disp: 4 * c})
	}
	VZEROUPPER()
	RET()
}

// hsumInt adds the 8 int32 lanes of v into a general register.
func hsumInt(v reg.VecVirtual) reg.GPVirtual {
	hi := XMM()
	VEXTRACTI128(U8(1), v, hi)
	lo := v.AsX()
	VPADDD(hi, lo, lo)
	VPSHUFD(U8(0x4e), lo, hi)
	VPADDD(hi, lo, lo)
	VPSHUFD(U8(0xb1), lo, hi)
	VPADDD(hi, lo, lo)
	r := GP32()
	VMOVD(lo, r)
	return r
}

func rowsKernel(name, single string, rows int) (pw, px, px2, nb, out reg.Register, addr []Mem) {
	TEXT(name, NOSPLIT, "func(w, x []byte, stride, nb int, out *[4]float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, for c := 0; c < %d; c++,", name, rows),
		"",
		"\tout[c] = "+single+"(w, x[c*stride:], nb)")
	pw = Load(Param("w").Base(), GP64())
	px = Load(Param("x").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	nb = Load(Param("nb"), GP64())
	out = Load(Param("out"), GP64())
	px2 = GP64()
	LEAQ(Mem{Base: px, Index: stride, Scale: 2}, px2)
	addr = []Mem{{Base: px}, {Base: px, Index: stride, Scale: 1}, {Base: px2}, {Base: px2, Index: stride, Scale: 1}}
	zero := XMM()
	VXORPS(zero, zero, zero)
	for c := range rows {
		VMOVSS(zero, Mem{Base: out, Disp: 4 * c})
	}
	return pw, px, px2, nb, out, addr
}

func q6KValues(pw reg.Register, h reg.VecVirtual, low, three Op, n, k int) reg.VecVirtual {
	y, t := YMM(), YMM()
	src := Mem{Base: pw, Disp: 64*n + 32*(k%2)}
	if k < 2 {
		VMOVDQU(src, y)
	} else {
		VPSRLW(U8(4), src, y)
	}
	VPAND(low, y, y)
	if k == 0 {
		VPAND(three, h, t)
	} else {
		VPSRLW(U8(2*k), h, t)
		VPAND(three, t, t)
	}
	VPSLLW(U8(4), t, t)
	VPOR(t, y, y)
	return y
}

// q6KScales returns the int8 scales of sub-blocks j and j+1 of the Q6_K
// block at pw as int16, one per 128-bit half.
func q6KScales(pw reg.Register, j int) reg.VecVirtual {
	s0, s1 := GP32(), GP32()
	MOVBLSX(Mem{Base: pw, Disp: 192 + j}, s0)
	MOVBLSX(Mem{Base: pw, Disp: 192 + j + 1}, s1)
	x0, x1 := XMM(), XMM()
	VMOVD(s0, x0)
	VPBROADCASTW(x0, x0)
	VMOVD(s1, x1)
	VPBROADCASTW(x1, x1)
	scv := YMM()
	VINSERTI128(U8(1), x1, x0.AsY(), scv)
	return scv
}

// bf16Lanes is VDPBF16PS (AVX512-BF16) on AVX2: accs 16-lane float32
// accumulators in memory, each taking its 32 bfloat16 pairs of every step
// of 32·accs elements. Lane j of an accumulator adds the product of
// elements 2j+1, then that of elements 2j, each rounded once (the
// products of two bfloat16 are exact in float32, so a fused multiply-add
// is that); lanes 0-7 live in one YMM register, 8-15 in another. An even
// element widens by a 16-bit shift, an odd one by masking its low half.
func bf16Lanes(accs int) {
	name := fmt.Sprintf("bf16Lanes%dAVX2", accs)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(a, b []uint16, acc *[%d]float32)", 16*accs))
	Pragma("noescape")
	Doc(name+" adds to acc what VDPBF16PS adds over the first",
		fmt.Sprintf("len(a) &^ %d elements of a and b in steps of %d, step part k going to", 32*accs-1, 32*accs),
		"acc[16k:16k+16] (bf16LanesGeneric).")
	pa := Load(Param("a").Base(), GP64())
	pb := Load(Param("b").Base(), GP64())
	n := Load(Param("a").Len(), GP64())
	ANDQ(I32(^(32*accs - 1)), n)
	pacc := Load(Param("acc"), GP64())
	acc := make([]reg.VecVirtual, 2*accs)
	for i := range acc {
		acc[i] = YMM()
		VMOVUPS(Mem{Base: pacc, Disp: 32 * i}, acc[i])
	}
	mask := YMM()
	VPCMPEQD(mask, mask, mask)
	VPSLLD(U8(16), mask, mask) // 0xffff0000: the odd element of a pair
	i := GP64()
	XORQ(i, i)
	loop, done := name+"loop", name+"done"
	Label(loop)
	CMPQ(i, n)
	JAE(LabelRef(done))
	for h, a := range acc { // 16 elements, 8 pairs, per register
		wa, wb := YMM(), YMM()
		VMOVDQU(Mem{Base: pa, Index: i, Scale: 2, Disp: 32 * h}, wa)
		VMOVDQU(Mem{Base: pb, Index: i, Scale: 2, Disp: 32 * h}, wb)
		oa, ob := YMM(), YMM()
		VPAND(mask, wa, oa)
		VPAND(mask, wb, ob)
		VFMADD231PS(ob, oa, a)
		VPSLLD(U8(16), wa, wa)
		VPSLLD(U8(16), wb, wb)
		VFMADD231PS(wb, wa, a)
	}
	ADDQ(U8(32*accs), i)
	JMP(LabelRef(loop))
	Label(done)
	for i, a := range acc {
		VMOVUPS(a, Mem{Base: pacc, Disp: 32 * i})
	}
	VZEROUPPER()
	RET()
}

// floatRow is a float row type of the batched kernels: its element size
// and how 8 elements become 8 float32 lanes.
type floatRow struct {
	name, goType string
	size         int
	load         func(m Mem, dst reg.VecVirtual)
}

var floatRows = []floatRow{
	{"F32", "float32", 4, func(m Mem, dst reg.VecVirtual) { VMOVUPS(m, dst) }},
	{"F16", "uint16", 2, func(m Mem, dst reg.VecVirtual) { VCVTPH2PS(m, dst) }},
}

// dotFloatxN is dotF32 or dotF16 of one weight row with rows (2
// or 3) activation rows at once: each token keeps its own four
// accumulators, fed in the single-row kernel's order, so each result is
// bit-identical to a separate call, while each weight element is loaded
// and converted once. Four rows would need 16 accumulators: all of AVX2's
// registers.
func dotFloatxN(f floatRow, rows int) {
	name := fmt.Sprintf("dot%sx%dAVX2", f.name, rows)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(w, x []%s, stride, n int, out *[4]float32)", f.goType))
	Pragma("noescape")
	Doc(name + " is, for c < " + fmt.Sprint(rows) + ", out[c] = dot" + f.name + "AVX2(w[:n], x[c*stride:][:n]).")
	pw := Load(Param("w").Base(), GP64())
	px := Load(Param("x").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	n := Load(Param("n"), GP64())
	ANDQ(I32(^31), n)
	SHLQ(U8(map[int]uint8{2: 1, 4: 2}[f.size]), stride) // to bytes
	xs := []reg.Register{px}
	for c := 1; c < rows; c++ {
		p := GP64()
		LEAQ(Mem{Base: xs[c-1], Index: stride, Scale: 1}, p)
		xs = append(xs, p)
	}
	accs := make([][]reg.VecVirtual, rows)
	for c := range accs {
		accs[c] = []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
		for _, a := range accs[c] {
			VXORPS(a, a, a)
		}
	}
	i := GP64()
	XORQ(i, i)
	loop, done := name+"loop", name+"done"
	Label(loop)
	CMPQ(i, n)
	JAE(LabelRef(done))
	for k := range 4 {
		wv := YMM()
		f.load(Mem{Base: pw, Index: i, Scale: uint8(f.size), Disp: 8 * f.size * k}, wv)
		for c := range rows {
			at := Mem{Base: xs[c], Index: i, Scale: uint8(f.size), Disp: 8 * f.size * k}
			if f.name == "F32" {
				VFMADD231PS(at, wv, accs[c][k])
				continue
			}
			xv := YMM()
			f.load(at, xv)
			VFMADD231PS(xv, wv, accs[c][k])
		}
	}
	ADDQ(U8(32), i)
	JMP(LabelRef(loop))
	Label(done)
	out := Load(Param("out"), GP64())
	for c := range rows {
		MOVSS(reduce4(accs[c]), Mem{Base: out, Disp: 4 * c})
	}
	VZEROUPPER()
	RET()
}

// quantQ8K writes Q8_K blocks as quantQ8_KGeneric (ggml's
// quantize_row_q8_K_ref): the scale from the first value of largest
// magnitude, quants rounded to nearest even, and each 16 quants' sum.
func quantQ8K() {
	TEXT("quantQ8_KAVX2", NOSPLIT, "func(dst []byte, x []float32)")
	Pragma("noescape")
	Doc("quantQ8_KAVX2 writes the len(x)/256 Q8_K blocks of x into dst (292 bytes",
		"each), as quantQ8_KGeneric does for finite x.")
	pd := Load(Param("dst").Base(), GP64())
	px := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	SHRQ(U8(8), n)
	abs := YMM()
	VPCMPEQD(abs, abs, abs)
	VPSRLD(U8(1), abs, abs) // 0x7fffffff: clears the sign
	ones := YMM()
	VPCMPEQW(ones, ones, ones)
	VPSRLW(U8(15), ones, ones) // 16-bit ones
	t := GP32()
	c127, cneg := XMM(), XMM()
	MOVL(U32(0x42fe0000), t) // 127.0
	VMOVD(t, c127)
	MOVL(U32(0xc2fe0000), t) // -127.0
	VMOVD(t, cneg)
	order := YMM()
	VMOVDQU(packOrder(), order)
	Label("q8kloop")
	CMPQ(n, U8(0))
	JE(LabelRef("q8kdone"))
	// The largest magnitude, NaNs ignored as the Go loop's > ignores them.
	m, a := YMM(), YMM()
	VXORPS(m, m, m)
	for i := range 32 {
		VANDPS(Mem{Base: px, Disp: 32 * i}, abs, a)
		VMAXPS(m, a, m) // a > m ? a : m
	}
	hi := XMM()
	VEXTRACTF128(U8(1), m, hi)
	mx := m.AsX()
	VMAXPS(mx, hi, mx)
	VMOVHLPS(mx, mx, hi)
	VMAXPS(mx, hi, mx)
	VMOVSHDUP(mx, hi)
	VMAXSS(mx, hi, mx) // amax in the low lane
	zero := XMM()
	VXORPS(zero, zero, zero)
	VUCOMISS(zero, mx)
	JNE(LabelRef("q8knonzero"))
	// All zero: the block is zeros.
	z := YMM()
	VXORPS(z, z, z)
	for off := 0; off+32 <= 288; off += 32 {
		VMOVDQU(z, Mem{Base: pd, Disp: off})
	}
	MOVL(U32(0), Mem{Base: pd, Disp: 288})
	JMP(LabelRef("q8knext"))
	Label("q8knonzero")
	// The first value whose magnitude is amax: its sign sets the scale's.
	amaxv := YMM()
	VBROADCASTSS(mx, amaxv)
	idx := GP64()
	XORQ(idx, idx)
	Label("q8kfind")
	eq := YMM()
	VANDPS(Mem{Base: px, Index: idx, Scale: 4}, abs, eq)
	VCMPPS(U8(0), amaxv, eq, eq) // == amax
	bits := GP32()
	VMOVMSKPS(eq, bits)
	TESTL(bits, bits)
	JNZ(LabelRef("q8kfound"))
	ADDQ(U8(8), idx)
	JMP(LabelRef("q8kfind"))
	Label("q8kfound")
	lane := GP32()
	BSFL(bits, lane)
	ADDQ(lane.As64(), idx)
	v0 := XMM()
	VMOVSS(Mem{Base: px, Index: idx, Scale: 4}, v0)
	is := XMM()
	VDIVSS(v0, cneg, is) // iscale = -127/max
	d := XMM()
	one := XMM()
	MOVL(U32(0x3f800000), t) // 1.0
	VMOVD(t, one)
	VDIVSS(is, one, d) // d = 1/iscale
	VMOVSS(d, Mem{Base: pd})
	isv := YMM()
	VBROADCASTSS(is, isv)
	c127v := YMM()
	VBROADCASTSS(c127, c127v)
	for g := range 8 { // 32 quants at a time
		v := []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
		for i := range v {
			VMULPS(Mem{Base: px, Disp: 128*g + 32*i}, isv, v[i])
			VROUNDPS(U8(0), v[i], v[i]) // nearest even
			VMINPS(c127v, v[i], v[i])
			VCVTPS2DQ(v[i], v[i])
		}
		VPACKSSDW(v[1], v[0], v[0])
		VPACKSSDW(v[3], v[2], v[2])
		VPACKSSWB(v[2], v[0], v[0])
		VPERMD(v[0], order, v[0])
		VMOVDQU(v[0], Mem{Base: pd, Disp: 4 + 32*g})
	}
	// Each 16 quants' sum, as an int16.
	for j := range 16 {
		w := YMM()
		VPMOVSXBW(Mem{Base: pd, Disp: 4 + 16*j}, w)
		VPMADDWD(ones, w, w)
		h := XMM()
		VEXTRACTI128(U8(1), w, h)
		lo := w.AsX()
		VPADDD(h, lo, lo)
		VPSHUFD(U8(0x4e), lo, h)
		VPADDD(h, lo, lo)
		VPSHUFD(U8(0xb1), lo, h)
		VPADDD(h, lo, lo)
		VMOVD(lo, t)
		MOVW(t.As16(), Mem{Base: pd, Disp: 260 + 2*j})
	}
	Label("q8knext")
	ADDQ(U32(1024), px)
	ADDQ(U32(292), pd)
	DECQ(n)
	JMP(LabelRef("q8kloop"))
	Label("q8kdone")
	VZEROUPPER()
	RET()
}
