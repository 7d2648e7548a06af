package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// The kernels of Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4 (blocks of 32 values)
// and Q2_K, Q3_K, Q5_K, IQ4_XS (super-blocks of 256): each the dot
// product of one weight row with 1 to 4 activation rows, stride bytes
// apart, in the order of ggml's AVX2 vec_dot for the type (see the Go
// twins in quants.go): a block's integer products into eight int32 lanes
// (VPMADDUBSW, then VPMADDWD by ones or by the sub-blocks' scales),
// converted and scaled into eight float lanes per row with a fused
// multiply-add, reduced at the end as hsum does. A block is unpacked once
// for all rows; each row's operations are the single-row kernel's, so
// every result is bit-identical to a single-row call.

func quantKernels() {
	for rows := 1; rows <= 4; rows++ {
		dot32(q4_1, rows)
		dot32(q5_0, rows)
		dot32(q5_1, rows)
		dot32(iq4nl, rows)
		dot32(mxfp4, rows)
		dotQ2K(rows)
		dotQ3K(rows)
		dotQ5K(rows)
		dotIQ4XS(rows)
	}
}

// f16Scalar loads the half-precision value at m as a float in the low
// lane of an XMM register.
func f16Scalar(m Mem) reg.VecVirtual {
	t := GP32()
	MOVWLZX(m, t)
	x := XMM()
	VMOVD(t, x)
	VCVTPH2PS(x, x)
	return x
}

// nibbles32 loads the 16 bytes at m as 32 four-bit codes: the low nibbles
// in the low 128 bits (values 0…15), the high ones above (16…31).
func nibbles32(m Mem) reg.VecVirtual {
	lo, hi := XMM(), XMM()
	VMOVDQU(m, lo)
	VPSRLW(U8(4), lo, hi)
	q := YMM()
	VINSERTI128(U8(1), hi, lo.AsY(), q)
	VPAND(bytes32(0x0F), q, q)
	return q
}

var lutMem = map[string]Mem{}

// lut16 is a 16-byte table broadcast to both 128-bit lanes, for VPSHUFB.
func lut16(name string, values [16]int8) reg.VecVirtual {
	m, ok := lutMem[name]
	if !ok {
		m = GLOBL(name, RODATA|NOPTR)
		for i, v := range values {
			DATA(i, U8(uint8(v)))
		}
		lutMem[name] = m
	}
	y := YMM()
	VBROADCASTI128(m, y)
	return y
}

var (
	kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}
	kvaluesMXFP4 = [16]int8{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}
)

var bytesMem = map[uint8]Mem{}

// bytes32 is 32 bytes of b in memory: the kernels' constants are memory
// operands, leaving the sixteen vector registers to four rows'
// accumulators and a block's values.
func bytes32(b uint8) Mem {
	m, ok := bytesMem[b]
	if !ok {
		m = GLOBL(fmt.Sprintf("bytes%02x", b), RODATA|NOPTR)
		for i := range 32 {
			DATA(i, U8(b))
		}
		bytesMem[b] = m
	}
	return m
}

var ones16Mem *Mem

// ones16 is sixteen int16 ones in memory.
func ones16() Mem {
	if ones16Mem == nil {
		m := GLOBL("ones16", RODATA|NOPTR)
		for i := range 16 {
			DATA(2*i, U16(1))
		}
		ones16Mem = &m
	}
	return *ones16Mem
}

// block32 is a 32-value weight type of dot32.
type block32 struct {
	name           string
	wBytes, xBytes int  // bytes of a weight and of an activation block
	xq             int  // offset of the activation quants in their block
	unsigned       bool // codes 0…31 (VPMADDUBSW takes them as they are), else signed values
	pairs          bool // blocks in pairs into two sets of accumulators (IQ4_NL, MXFP4)
	min            bool // Σ m·s in a scalar (Q4_1, Q5_1)
	doc            string
	// consts sets up the type's constants, decode unpacks the block at
	// pw into 32 bytes and scale returns d_w·d_x (d_x from x) in the
	// low lane of an XMM register.
	consts func() []reg.VecVirtual
	decode func(pw reg.Register, k []reg.VecVirtual) reg.VecVirtual
	wscale func(pw reg.Register) reg.VecVirtual
}

// fifthBits returns bytes v where bit j of the 4 bytes at m is set (or,
// if clear, where it is clear): from the fifth bit of value j of a Q5_0
// or Q5_1 block.
func fifthBits(m Mem, k []reg.VecVirtual, v uint8, clear bool) reg.VecVirtual {
	bitmask := k[0]
	h := YMM()
	VPBROADCASTD(m, h)
	VPSHUFB(q5Shuffle(), h, h) // byte j holds the qh byte j/8
	VPAND(bitmask, h, h)       // byte j: bit j%8
	VPCMPEQB(bitmask, h, h)    // 0xff where set
	if clear {
		VPANDN(bytes32(v), h, h)
	} else {
		VPAND(bytes32(v), h, h)
	}
	return h
}

// q5Consts: the bit of each byte of fifthBits.
func q5Consts() []reg.VecVirtual {
	bit := YMM()
	VMOVDQU(q5Bits(), bit)
	return []reg.VecVirtual{bit}
}

var q5ShufMem, q5BitsMem *Mem

func q5Shuffle() Mem {
	if q5ShufMem == nil {
		m := GLOBL("q5shuf", RODATA|NOPTR)
		for j := range 32 {
			DATA(j, U8(uint8(j/8)))
		}
		q5ShufMem = &m
	}
	return *q5ShufMem
}

func q5Bits() Mem {
	if q5BitsMem == nil {
		m := GLOBL("q5bits", RODATA|NOPTR)
		for j := range 32 {
			DATA(j, U8(uint8(1)<<(j%8)))
		}
		q5BitsMem = &m
	}
	return *q5BitsMem
}

// f16Bcast loads the half-precision value at m as a float in all eight
// lanes of a YMM register.
func f16Bcast(m Mem) reg.VecVirtual {
	y := YMM()
	VPBROADCASTW(m, y.AsX())
	VCVTPH2PS(y.AsX(), y)
	return y
}

// wscaleF16 is the weight scale of the blocks that open with d (f16).
func wscaleF16(pw reg.Register) reg.VecVirtual { return f16Bcast(Mem{Base: pw}) }

var (
	q4_1 = block32{name: "Q4_1", wBytes: 20, xBytes: 36, xq: 4, unsigned: true, min: true,
		doc:    "Σ_b d_w·d_x·Σ q·x + Σ_b m·s (ggml_vec_dot_q4_1_q8_1)",
		consts: func() []reg.VecVirtual { return nil },
		decode: func(pw reg.Register, k []reg.VecVirtual) reg.VecVirtual {
			return nibbles32(Mem{Base: pw, Disp: 4})
		},
		wscale: wscaleF16}
	q5_0 = block32{name: "Q5_0", wBytes: 22, xBytes: 34, xq: 2,
		doc:    "Σ_b d_w·d_x·Σ (q-16)·x (ggml_vec_dot_q5_0_q8_0)",
		consts: q5Consts,
		decode: func(pw reg.Register, k []reg.VecVirtual) reg.VecVirtual {
			q := nibbles32(Mem{Base: pw, Disp: 6})
			VPOR(fifthBits(Mem{Base: pw, Disp: 2}, k, 0xF0, true), q, q) // q-16: 0xF0 where the bit is clear
			return q
		},
		wscale: wscaleF16}
	q5_1 = block32{name: "Q5_1", wBytes: 24, xBytes: 36, xq: 4, unsigned: true, min: true,
		doc:    "Σ_b d_w·d_x·Σ q·x + Σ_b m·s (ggml_vec_dot_q5_1_q8_1)",
		consts: q5Consts,
		decode: func(pw reg.Register, k []reg.VecVirtual) reg.VecVirtual {
			q := nibbles32(Mem{Base: pw, Disp: 8})
			VPOR(fifthBits(Mem{Base: pw, Disp: 4}, k, 0x10, false), q, q)
			return q
		},
		wscale: wscaleF16}
	iq4nl = block32{name: "IQ4_NL", wBytes: 18, xBytes: 34, xq: 2, pairs: true,
		doc:    "Σ_b d_w·d_x·Σ kvalues_iq4nl[q]·x, blocks in pairs (ggml_vec_dot_iq4_nl_q8_0)",
		consts: func() []reg.VecVirtual { return nil },
		decode: func(pw reg.Register, k []reg.VecVirtual) reg.VecVirtual {
			q := nibbles32(Mem{Base: pw, Disp: 2})
			VPSHUFB(q, lut16("kvaluesiq4nl", kvaluesIQ4NL), q) // the table reloaded: four rows need the registers
			return q
		},
		wscale: wscaleF16}
	mxfp4 = block32{name: "MXFP4", wBytes: 17, xBytes: 34, xq: 2, pairs: true,
		doc:    "Σ_b d_x·2^(e-128)·Σ kvalues_mxfp4[q]·x, blocks in pairs (ggml_vec_dot_mxfp4_q8_0)",
		consts: func() []reg.VecVirtual { return nil },
		decode: func(pw reg.Register, k []reg.VecVirtual) reg.VecVirtual {
			q := nibbles32(Mem{Base: pw, Disp: 1})
			VPSHUFB(q, lut16("kvaluesmxfp4", kvaluesMXFP4), q) // the table reloaded: four rows need the registers
			return q
		},
		wscale: func(pw reg.Register) reg.VecVirtual {
			e := GP32()
			MOVBLZX(Mem{Base: pw}, e)
			d := YMM()
			VBROADCASTSS(Mem{Base: e8m0Table(), Index: e.As64(), Scale: 4}, d)
			return d
		}}
)

var e8m0Mem *Mem

// e8m0Table is 2^(e-128) for every E8M0 byte e, as float32 bits
// (E8M0HalfToF32).
func e8m0Table() reg.Register {
	if e8m0Mem == nil {
		m := GLOBL("e8m0half", RODATA|NOPTR)
		for e := range 256 {
			bits := uint32(e-1) << 23
			if e < 2 {
				bits = 0x00200000 << e
			}
			DATA(4*e, U32(bits))
		}
		e8m0Mem = &m
	}
	p := GP64()
	LEAQ(*e8m0Mem, p)
	return p
}

// lanes32 returns the eight int32 lanes of a block's products with the
// activation quants at x: Σ q·x over each four consecutive values. q
// holds unsigned codes (ax nil) or signed values whose magnitudes are
// ax.
func lanes32(q, ax reg.VecVirtual, x Mem, ones Mem) reg.VecVirtual {
	p := YMM()
	if ax == nil {
		VPMADDUBSW(x, q, p)
	} else {
		VMOVDQU(x, p)
		VPSIGNB(q, p, p) // x with q's sign
		VPMADDUBSW(p, ax, p)
	}
	VPMADDWD(ones, p, p)
	return p
}

// dot32 writes the kernel of a 32-value type for rows activation rows.
func dot32(t block32, rows int) {
	name := fmt.Sprintf("dot%sx%dAVX2", t.name, rows)
	pw, px, px2, nb, out, addr := rowsKernel(name, "Dot"+t.name, rows)
	Comment(t.doc)
	k := t.consts()
	ones := ones16()
	sets := 1
	if t.pairs {
		sets = 2
	}
	accs := make([][]reg.VecVirtual, sets)
	for s := range accs {
		for range rows {
			a := YMM()
			VXORPS(a, a, a)
			accs[s] = append(accs[s], a)
		}
	}
	// Σ m·s (Q4_1, Q5_1): per row lane 1 of an XMM accumulator, whose
	// lane 0 takes m·d_x, unused: d_x and s are converted together.
	var summs []reg.VecVirtual
	if t.min {
		for range rows {
			a := XMM()
			VXORPS(a, a, a)
			summs = append(summs, a)
		}
	}
	// dscale returns row c's d_w·d_x broadcast, from the weight's wv.
	dscale := func(wv reg.VecVirtual, c int) reg.VecVirtual {
		d := f16Bcast(addr[c])
		VMULPS(wv, d, d)
		return d
	}
	block := func(s int) {
		q := t.decode(pw, k)
		var ax reg.VecVirtual
		if !t.unsigned {
			ax = YMM()
			VPSIGNB(q, q, ax)
		}
		var m reg.VecVirtual
		if t.min {
			m = XMM()
			VPBROADCASTW(Mem{Base: pw, Disp: 2}, m)
			VCVTPH2PS(m, m)
		}
		wv := t.wscale(pw)
		for c := range rows {
			var dv reg.VecVirtual
			if t.min {
				ds := XMM()
				VMOVD(addr[c], ds)
				VCVTPH2PS(ds, ds) // d_x, s, 0, 0
				VFMADD231PS(ds, m, summs[c])
				dv = YMM()
				VBROADCASTSS(ds, dv)
				VMULPS(wv, dv, dv)
			} else {
				dv = dscale(wv, c)
			}
			p := lanes32(q, ax, addr[c].Offset(t.xq), ones)
			VCVTDQ2PS(p, p)
			VFMADD231PS(p, dv, accs[s][c])
		}
		ADDQ(U8(t.wBytes), pw)
		ADDQ(U8(t.xBytes), px)
		ADDQ(U8(t.xBytes), px2)
	}
	loop, done := name+"loop", name+"done"
	Label(loop)
	CMPQ(nb, U8(sets))
	JB(LabelRef(done))
	for s := range sets {
		block(s)
	}
	SUBQ(U8(sets), nb)
	JMP(LabelRef(loop))
	Label(done)
	sums := make([]reg.Register, rows)
	for c := range rows {
		if t.pairs {
			VADDPS(accs[1][c], accs[0][c], accs[0][c])
		}
		sums[c] = hsum(accs[0][c])
		if t.min {
			VMOVSHDUP(summs[c], summs[c])
			VADDSS(summs[c], sums[c], sums[c])
		}
	}
	if t.pairs { // an odd last block: its integer sum, scaled and added as a scalar
		tail := name + "end"
		CMPQ(nb, U8(0))
		JE(LabelRef(tail))
		q := t.decode(pw, k)
		ax := YMM()
		VPSIGNB(q, q, ax)
		wv := t.wscale(pw)
		for c := range rows {
			d := dscale(wv, c)
			isum := hsumInt(lanes32(q, ax, addr[c].Offset(t.xq), ones))
			f := XMM()
			VXORPS(f, f, f) // defined before VCVTSI2SSL merges into it
			VCVTSI2SSL(isum, f, f)
			VFMADD231SS(f, d.AsX(), sums[c])
		}
		Label(tail)
	}
	for c := range rows {
		VMOVSS(sums[c], Mem{Base: out, Disp: 4 * c})
	}
	VZEROUPPER()
	RET()
}

var kShufMem *Mem

// kShuffles are VPSHUFB masks over a register of eight int16 scales,
// the same in both 128-bit lanes: mask i (of 4, 32 bytes each) puts
// scale 2i in the low lane and 2i+1 in the high one (ggml's
// get_scale_shuffle_q3k); mask 4+i (of 8) puts scale i in both
// (get_scale_shuffle_k4).
func kShuffles() Mem {
	if kShufMem == nil {
		m := GLOBL("kscaleshuf", RODATA|NOPTR)
		for i := range 4 {
			for b := range 32 {
				s := 2*i + b/16
				DATA(32*i+b, U8(uint8(2*(s%8)+b%2)))
			}
		}
		for i := range 8 {
			for b := range 32 {
				DATA(128+32*i+b, U8(uint8(2*i+b%2)))
			}
		}
		kShufMem = &m
	}
	return *kShufMem
}

// pairScale returns the int16 scales of chunk k (of 4) of a 128-value
// half: scale 2k for its first 16 values, 2k+1 for the next 16.
func pairScale(scales reg.VecVirtual, k int) reg.VecVirtual {
	s := YMM()
	VPSHUFB(kShuffles().Offset(32*k), scales, s)
	return s
}

// oneScale returns int16 scale i of eight broadcast.
func oneScale(scales reg.VecVirtual, i int) reg.VecVirtual {
	s := YMM()
	VPSHUFB(kShuffles().Offset(128+32*i), scales, s)
	return s
}

// bothLanes returns the 128-bit x in both lanes of a YMM register.
func bothLanes(x reg.VecVirtual) reg.VecVirtual {
	y := YMM()
	VINSERTI128(U8(1), x, x.AsY(), y)
	return y
}

// kRows is the frame of the super-block kernels: per row a float
// accumulator and, per block, an integer one; the loop over blocks
// (wBytes of weights, 292 bytes of Q8_K activations each); the final
// reduction, plus for Q5_K a scalar sum kept in out[c].
type kRows struct {
	name        string
	rows        int
	pw, nb, out reg.Register
	px, px2     reg.Register
	addr        []Mem
	acc, sumi   []reg.VecVirtual
	loop, done  string
	wBytes      int
	scalarSum   bool
	// final, if set, adds row c's other sums to its reduced lanes s.
	final func(c int, s reg.Register)
}

func newKRows(t string, rows, wBytes int, scalarSum bool, setup ...func(k *kRows)) *kRows {
	name := fmt.Sprintf("dot%sx%dAVX2", t, rows)
	pw, px, px2, nb, out, addr := rowsKernel(name, "Dot"+t, rows)
	k := &kRows{name: name, rows: rows, pw: pw, nb: nb, out: out, px: px, px2: px2, addr: addr, wBytes: wBytes, scalarSum: scalarSum}
	for range rows {
		a := YMM()
		VXORPS(a, a, a)
		k.acc = append(k.acc, a)
	}
	for _, f := range setup { // before the loop
		f(k)
	}
	k.loop, k.done = k.name+"loop", k.name+"done"
	Label(k.loop)
	CMPQ(k.nb, U8(0))
	JE(LabelRef(k.done))
	// The weights a few blocks on, hinted non-temporal as the packed
	// kernels' (r16Prefetch): out of the caches (1.2 GB matrices) Q4_K's
	// kernel streams 15.5–16.6 GB/s with it against 9.6–9.7 without, Q2_K
	// 13.8–14.4 against 8.2–8.3.
	for off := 0; off < wBytes; off += 64 {
		PREFETCHNTA(Mem{Base: k.pw, Disp: r16Prefetch + off})
	}
	return k
}

// zero zeroes the rows' integer accumulators of a block.
func (k *kRows) zero() {
	k.sumi = k.sumi[:0]
	for range k.rows {
		s := YMM()
		VPXOR(s, s, s)
		k.sumi = append(k.sumi, s)
	}
}

// add adds row c's products of 32 values (unsigned codes q, or signed
// values with magnitudes ax) with its quants at offset off, times the
// int16 scales sc, to its integer lanes.
func (k *kRows) add(c int, q, ax, sc reg.VecVirtual, off int) {
	p := YMM()
	x := k.addr[c].Offset(4 + off)
	if ax == nil {
		VPMADDUBSW(x, q, p)
	} else {
		VMOVDQU(x, p)
		VPSIGNB(q, p, p)
		VPMADDUBSW(p, ax, p)
	}
	VPMADDWD(sc, p, p)
	VPADDD(p, k.sumi[c], k.sumi[c])
}

// close scales each row's integer lanes by its d_x times the weight scale
// at dw into its float lanes, advances and loops; then reduces and
// stores.
func (k *kRows) close(dw Mem) {
	w := f16Scalar(dw)
	for c := range k.rows {
		d := XMM()
		VMULSS(k.addr[c], w, d)
		dv := YMM()
		VBROADCASTSS(d, dv)
		VCVTDQ2PS(k.sumi[c], k.sumi[c])
		VFMADD231PS(k.sumi[c], dv, k.acc[c])
	}
	ADDQ(U32(uint32(k.wBytes)), k.pw)
	ADDQ(U32(292), k.px)
	ADDQ(U32(292), k.px2)
	DECQ(k.nb)
	JMP(LabelRef(k.loop))
	Label(k.done)
	for c := range k.rows {
		s := hsum(k.acc[c])
		if k.scalarSum {
			VADDSS(Mem{Base: k.out, Disp: 4 * c}, s, s)
		}
		if k.final != nil {
			k.final(c, s)
		}
		VMOVSS(s, Mem{Base: k.out, Disp: 4 * c})
	}
	VZEROUPPER()
	RET()
}

// start begins a block's integer sums: the first product a row adds
// becomes its accumulator (accum), so that no accumulator is zeroed.
func (k *kRows) start() {
	k.sumi = make([]reg.VecVirtual, k.rows)
}

// accum adds p to row c's integer accumulator in sums (k.sumi or another
// set), or makes it the accumulator if it is the first.
func accum(sums []reg.VecVirtual, c int, p reg.VecVirtual) {
	if sums[c] == nil {
		sums[c] = p
		return
	}
	VPADDD(p, sums[c], sums[c])
}

// product returns row c's products of 32 values (unsigned codes q, or
// signed values with magnitudes ax) with its quants at offset off, times
// the int16 scales sc, in eight int32 lanes.
func (k *kRows) product(c int, q, ax, sc reg.VecVirtual, off int) reg.VecVirtual {
	p := YMM()
	x := k.addr[c].Offset(4 + off)
	if ax == nil {
		VPMADDUBSW(x, q, p)
	} else {
		VMOVDQU(x, p)
		VPSIGNB(q, p, p)
		VPMADDUBSW(p, ax, p)
	}
	VPMADDWD(sc, p, p)
	return p
}

// dScales returns, per row, d_x times the block's weight scale, a half
// at dw, in all eight lanes.
func (k *kRows) dScales(dw Mem) []reg.VecVirtual {
	w := YMM()
	VPBROADCASTW(dw, w.AsX())
	VCVTPH2PS(w.AsX(), w)
	var ds []reg.VecVirtual
	for c := range k.rows {
		d := YMM()
		VBROADCASTSS(k.addr[c], d)
		VMULPS(w, d, d)
		ds = append(ds, d)
	}
	return ds
}

// closeWith scales each row's integer lanes by ds[c] into its float
// lanes, advances and loops; then reduces and stores.
func (k *kRows) closeWith(ds []reg.VecVirtual) {
	for c := range k.rows {
		VCVTDQ2PS(k.sumi[c], k.sumi[c])
		VFMADD231PS(k.sumi[c], ds[c], k.acc[c])
	}
	ADDQ(U32(uint32(k.wBytes)), k.pw)
	ADDQ(U32(292), k.px)
	ADDQ(U32(292), k.px2)
	DECQ(k.nb)
	JMP(LabelRef(k.loop))
	Label(k.done)
	for c := range k.rows {
		s := hsum(k.acc[c])
		if k.scalarSum {
			VADDSS(Mem{Base: k.out, Disp: 4 * c}, s, s)
		}
		VMOVSS(s, Mem{Base: k.out, Disp: 4 * c})
	}
	VZEROUPPER()
	RET()
}

// addQuarter adds a quarter of the rows' sums4 (each a multiple of 4:
// exact) to k.sumi.
func (k *kRows) addQuarter(sums4 []reg.VecVirtual) {
	for c := range k.rows {
		VPSRAD(U8(2), sums4[c], sums4[c])
		accum(k.sumi, c, sums4[c])
	}
}

// dotQ2K: per block, -dmin·(mins · bsums pairs) into the float lanes,
// then the two-bit codes times the four-bit scales
// (ggml_vec_dot_q2_K_q8_K). d and dmin are converted and scaled by d_x
// together. For one or two rows the codes are taken from one shift of a
// half's 32 bytes: bits 0-1 and 4-5 as they are, bits 2-3 and 6-7 as four
// times the code (pairs of products stay under 2^12), whose sums go to a
// second accumulator divided by 4, exactly, at the end of the block; three
// and four rows have not the registers for it and shift for each code.
func dotQ2K(rows int) {
	k := newKRows("Q2_K", rows, 84, false)
	pw := k.pw
	split := rows <= 2
	Comment("scales (low nibbles) and mins (high), one per 16 values, as int16")
	raw := YMM()
	VPMOVZXBW(Mem{Base: pw}, raw)
	mins := YMM()
	VPSRLW(U8(4), raw, mins)
	// d and dmin of the block as floats in lanes 0 and 1
	dd := XMM()
	VMOVD(Mem{Base: pw, Disp: 80}, dd)
	VCVTPH2PS(dd, dd)
	one := YMM()
	VPBROADCASTD(dword(1), one)
	ds := make([]reg.VecVirtual, rows)
	for c := range rows {
		p := YMM()
		VPMADDWD(k.addr[c].Offset(260), mins, p)
		VCVTDQ2PS(p, p)
		dv := YMM()
		VBROADCASTSS(k.addr[c], dv)
		VMULPS(dd.AsY(), dv, dv) // d_x·d, d_x·dmin
		dm := YMM()
		VPERMPS(dv, one, dm)
		VFNMADD231PS(p, dm, k.acc[c]) // acc - d_x·dmin·prod: ggml's fma(-d_x·dmin, prod, acc)
		if split {
			ds[c] = YMM()
			VBROADCASTSS(dv.AsX(), ds[c])
		}
	}
	sc16 := YMM()
	VPAND(bytes32(0x0F), raw, sc16)
	k.start()
	var sums4 []reg.VecVirtual
	if split {
		sums4 = make([]reg.VecVirtual, rows)
	}
	for half := range 2 {
		scales := YMM()
		if half == 0 {
			VINSERTI128(U8(1), sc16.AsX(), sc16, scales)
		} else {
			VPERM2I128(U8(0x11), sc16, sc16, scales)
		}
		src := Mem{Base: pw, Disp: 16 + 32*half}
		var a, hi reg.VecVirtual
		if split {
			a, hi = YMM(), YMM()
			VMOVDQU(src, a)
			VPSRLW(U8(4), a, hi)
		}
		for ch := range 4 {
			q := YMM()
			sums := k.sumi
			switch {
			case split:
				base, mask := a, uint8(0x03)
				if ch >= 2 {
					base = hi
				}
				if ch%2 == 1 {
					mask, sums = 0x0C, sums4
				}
				VPAND(bytes32(mask), base, q)
			case ch == 0:
				VMOVDQU(src, q)
				VPAND(bytes32(0x03), q, q)
			default:
				VPSRLW(U8(2*ch), src, q)
				VPAND(bytes32(0x03), q, q)
			}
			sc := pairScale(scales, ch)
			for c := range rows {
				accum(sums, c, k.product(c, q, nil, sc, 128*half+32*ch))
			}
		}
	}
	if split {
		k.addQuarter(sums4)
	} else {
		for c := range rows {
			d := XMM()
			VMULSS(k.addr[c], dd, d)
			ds[c] = YMM()
			VBROADCASTSS(d, ds[c])
		}
	}
	k.closeWith(ds)
}

var dwordMem = map[uint32]Mem{}

// dword is the 32-bit v in memory, for a broadcast.
func dword(v uint32) Mem {
	m, ok := dwordMem[v]
	if !ok {
		m = GLOBL(fmt.Sprintf("dword%08x", v), RODATA|NOPTR)
		DATA(0, U32(v))
		dwordMem[v] = m
	}
	return m
}

var tableMem = map[string]Mem{}

// table16 is 16 bytes in memory.
func table16(name string, b [16]byte) Mem {
	m, ok := tableMem[name]
	if !ok {
		m = GLOBL(name, RODATA|NOPTR)
		for i, v := range b {
			DATA(i, U8(v))
		}
		tableMem[name] = m
	}
	return m
}

// table32 is 32 bytes in memory.
func table32(name string, b [32]byte) Mem {
	m, ok := tableMem[name]
	if !ok {
		m = GLOBL(name, RODATA|NOPTR)
		for i, v := range b {
			DATA(i, U8(v))
		}
		tableMem[name] = m
	}
	return m
}

// q3KScales unpacks the 16 six-bit scales of the Q3_K block at pw, less
// 32, to int16 in vector registers alone (ggml's kmask shuffle of the 12
// bytes at pw+96): the even scales in the low lane, in order, the odd
// ones in the high lane, so that chunk k of half h, whose first 16 values
// take scale 8h+2k and next 16 scale 8h+2k+1, finds both at word 4h+k of
// its lane (oneScale).
func q3KScales(pw reg.Register) reg.VecVirtual {
	// low four bits: scale i < 8 the low nibble of byte i, i ≥ 8 the high
	// nibble of byte i-8
	lo := XMM()
	VPBROADCASTQ(Mem{Base: pw, Disp: 96}, lo)
	VPSRLVQ(table16("q3kloshift", [16]byte{8: 4}), lo, lo)
	VPAND(bytes32(0x0F).Offset(0), lo, lo)
	// high two bits: scale 4q+r's are bits 2q, 2q+1 of byte 8+r, moved
	// to bits 4 and 5
	hi := XMM()
	VPBROADCASTD(Mem{Base: pw, Disp: 104}, hi)
	VPSRLVD(table16("q3khishift", [16]byte{4: 2, 8: 4, 12: 6}), hi, hi)
	VPSLLW(U8(4), hi, hi)
	VPAND(bytes32(0x30).Offset(0), hi, hi)
	VPOR(hi, lo, lo)
	VPSUBB(bytes32(32).Offset(0), lo, lo)
	VPSHUFB(table16("q3korder", [16]byte{0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15}), lo, lo)
	s := YMM()
	VPMOVSXBW(lo, s)
	return s
}

// dotQ3K: the two low bits times the activations, less 4 times them
// where the high bit (hmask) is clear, times the signed six-bit scales
// (ggml_vec_dot_q3_K_q8_K). For one or two rows the low bits are taken as
// Q2_K's are (dotQ2K), four times the code in the odd chunks of a half,
// with 16 in place of 4 where the high bit is clear (pairs of products
// stay under 2^13), into a second accumulator divided by 4 at the end.
func dotQ3K(rows int) {
	k := newKRows("Q3_K", rows, 110, false)
	pw := k.pw
	split := rows <= 2
	scales := q3KScales(pw)
	k.start()
	var sums4 []reg.VecVirtual
	if split {
		sums4 = make([]reg.VecVirtual, rows)
	}
	for half := range 2 {
		src := Mem{Base: pw, Disp: 32 + 32*half}
		var a, hi reg.VecVirtual
		if split {
			a, hi = YMM(), YMM()
			VMOVDQU(src, a)
			VPSRLW(U8(4), a, hi)
		}
		for ch := range 4 {
			q := YMM()
			sums, pos := k.sumi, 2 // h has 1<<pos where the high bit is clear
			switch {
			case split:
				base, mask := a, uint8(0x03)
				if ch >= 2 {
					base = hi
				}
				if ch%2 == 1 {
					mask, sums, pos = 0x0C, sums4, 4
				}
				VPAND(bytes32(mask), base, q)
			case ch == 0:
				VMOVDQU(src, q)
				VPAND(bytes32(0x03), q, q)
			default:
				VPSRLW(U8(2*ch), src, q)
				VPAND(bytes32(0x03), q, q)
			}
			h := YMM()
			switch bit := 4*half + ch; {
			case bit < pos:
				VPSLLW(U8(pos-bit), Mem{Base: pw}, h)
			case bit == pos:
				VMOVDQU(Mem{Base: pw}, h)
			default:
				VPSRLW(U8(bit-pos), Mem{Base: pw}, h)
			}
			VPANDN(bytes32(uint8(1)<<pos), h, h)
			sc := oneScale(scales, 4*half+ch)
			for c := range rows {
				x := k.addr[c].Offset(4 + 128*half + 32*ch)
				p, m := YMM(), YMM()
				VPMADDUBSW(x, q, p)
				VPMADDUBSW(x, h, m)
				VPSUBW(m, p, p)
				VPMADDWD(sc, p, p)
				accum(sums, c, p)
			}
		}
	}
	if split {
		k.addQuarter(sums4)
	}
	k.closeWith(k.dScales(Mem{Base: pw, Disp: 108}))
}

// k4ScalesMins unpacks the eight six-bit scales and mins of the Q4_K or
// Q5_K block at pw (12 bytes at pw+4), as ggml's utmp shuffle does: the
// scales as eight int16 in both lanes of a YMM register, the mins as
// eight int16 in an XMM one.
func k4ScalesMins(pw reg.Register) (scales, mins reg.VecVirtual) {
	u0, u1, u2 := GP32(), GP32(), GP32()
	MOVL(Mem{Base: pw, Disp: 4}, u0)
	MOVL(Mem{Base: pw, Disp: 8}, u1)
	MOVL(Mem{Base: pw, Disp: 12}, u2)
	// utmp[3] = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4)
	t3, t := GP32(), GP32()
	MOVL(u2, t3)
	SHRL(U8(4), t3)
	ANDL(U32(0x0f0f0f0f), t3)
	MOVL(u1, t)
	SHRL(U8(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(U8(4), t)
	ORL(t, t3)
	// utmp[2] = u1 & 0x3f3f3f3f
	t2 := GP32()
	MOVL(u1, t2)
	ANDL(U32(0x3f3f3f3f), t2)
	// utmp[1] = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4)
	t1 := GP32()
	MOVL(u2, t1)
	ANDL(U32(0x0f0f0f0f), t1)
	MOVL(u0, t)
	SHRL(U8(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(U8(4), t)
	ORL(t, t1)
	// utmp[0] = u0 & 0x3f3f3f3f
	ANDL(U32(0x3f3f3f3f), u0)
	x := XMM()
	VMOVD(u0, x)
	VPINSRD(U8(1), t1, x, x)
	VPINSRD(U8(2), t2, x, x)
	VPINSRD(U8(3), t3, x, x)
	all := YMM()
	VPMOVZXBW(x, all) // scales in the low lane, mins in the high
	scales = YMM()
	VINSERTI128(U8(1), all.AsX(), all, scales)
	mins = XMM()
	VEXTRACTI128(U8(1), all, mins)
	return scales, mins
}

// k4ScalesMinsVec is k4ScalesMins in vector registers alone (Q5_K's):
// the 12 bytes u0, u1, u2 at pw+4 shuffled to u0, u2, u1, u2; per dword
// the six low bits (scales 0-3, mins 0-3), the low nibbles (scales 4-7)
// or the high nibbles (mins 4-7, shifted by VPSRLVD), or-ed with the top
// two bits of u0 and u1, moved to bits 4 and 5, for scales and mins 4-7.
func k4ScalesMinsVec(pw reg.Register) (scales, mins reg.VecVirtual) {
	x := XMM()
	VMOVDQU(Mem{Base: pw}, x)
	t := XMM()
	VPSHUFB(table16("k4order", [16]byte{4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15}), x, t)
	VPSRLVD(table16("k4shift", [16]byte{12: 4}), t, t)
	VPAND(table16("k4mask", [16]byte{0x3f, 0x3f, 0x3f, 0x3f, 0x0f, 0x0f, 0x0f, 0x0f, 0x3f, 0x3f, 0x3f, 0x3f, 0x0f, 0x0f, 0x0f, 0x0f}), t, t)
	top := XMM()
	VPSHUFB(table16("k4top", [16]byte{0x80, 0x80, 0x80, 0x80, 4, 5, 6, 7, 0x80, 0x80, 0x80, 0x80, 8, 9, 10, 11}), x, top)
	VPSRLW(U8(2), top, top)
	VPAND(bytes32(0x30).Offset(0), top, top)
	VPOR(top, t, t)
	all := YMM()
	VPMOVZXBW(t, all) // scales in the low lane, mins in the high
	scales = YMM()
	VINSERTI128(U8(1), all.AsX(), all, scales)
	mins = XMM()
	VEXTRACTI128(U8(1), all, mins)
	return scales, mins
}

// dotQ5K: the five-bit codes (nibbles and qh bits) times the six-bit
// scales into the float lanes, -dmin·Σ m·(bsum pairs) into a scalar kept
// in out[c] (ggml_vec_dot_q5_K_q8_K). For one or two rows the fifth bits
// come from the qh bytes' nibbles by table (16 where bit j is set), the
// nibbles split once a block.
func dotQ5K(rows int) {
	k := newKRows("Q5_K", rows, 176, true)
	pw := k.pw
	lut := rows <= 2
	scales, mins := k4ScalesMinsVec(pw)
	// d and dmin of the block as floats in lanes 0 and 1
	dd := XMM()
	VMOVD(Mem{Base: pw}, dd)
	VCVTPH2PS(dd, dd)
	ds := make([]reg.VecVirtual, rows)
	for c := range rows {
		// Σ m_j·(bsum_2j + bsum_2j+1), exact, to a float
		b, t := XMM(), XMM()
		VMOVDQU(k.addr[c].Offset(260), b)
		VPHADDW(k.addr[c].Offset(276), b, b)
		VPMADDWD(mins, b, b)
		VPSHUFD(U8(0x4e), b, t)
		VPADDD(t, b, b)
		VPSHUFD(U8(0xb1), b, t)
		VPADDD(t, b, b)
		VCVTDQ2PS(b, b)
		dv, dm := XMM(), XMM()
		VBROADCASTSS(k.addr[c], dv)
		VMULPS(dd, dv, dv) // d_x·d, d_x·dmin
		VMOVSHDUP(dv, dm)
		sm := XMM()
		VMOVSS(Mem{Base: k.out, Disp: 4 * c}, sm)
		VFNMADD231SS(b, dm, sm) // sm - d_x·dmin·Σ: ggml's fma(-d_x·dmin, Σ, sm)
		VMOVSS(sm, Mem{Base: k.out, Disp: 4 * c})
		if lut {
			ds[c] = YMM()
			VBROADCASTSS(dv, ds[c])
		}
	}
	var qlo, qhi reg.VecVirtual
	if lut {
		qlo, qhi = YMM(), YMM()
		VMOVDQU(Mem{Base: pw, Disp: 16}, qlo)
		VPSRLW(U8(4), qlo, qhi)
		VPAND(bytes32(0x0F), qlo, qlo)
		VPAND(bytes32(0x0F), qhi, qhi)
	}
	k.start()
	for pair := range 4 {
		for hh := range 2 {
			j := 2*pair + hh
			src := Mem{Base: pw, Disp: 48 + 32*pair}
			q := YMM()
			if hh == 0 {
				VMOVDQU(src, q)
			} else {
				VPSRLW(U8(4), src, q)
			}
			VPAND(bytes32(0x0F), q, q)
			h := YMM() // bit j of qh, as 16
			if lut {
				VBROADCASTI128(fifthBitLut(j%4), h)
				idx := qlo
				if j >= 4 {
					idx = qhi
				}
				VPSHUFB(idx, h, h)
			} else {
				switch {
				case j < 4:
					VPSLLW(U8(4-j), Mem{Base: pw, Disp: 16}, h)
				case j == 4:
					VMOVDQU(Mem{Base: pw, Disp: 16}, h)
				default:
					VPSRLW(U8(j-4), Mem{Base: pw, Disp: 16}, h)
				}
				VPAND(bytes32(0x10), h, h)
			}
			VPOR(h, q, q)
			sc := oneScale(scales, j)
			for c := range rows {
				accum(k.sumi, c, k.product(c, q, nil, sc, 64*pair+32*hh))
			}
		}
	}
	if !lut {
		for c := range rows {
			d := XMM()
			VMULSS(k.addr[c], dd, d)
			ds[c] = YMM()
			VBROADCASTSS(d, ds[c])
		}
	}
	k.closeWith(ds)
}

// fifthBitLut is the table of 16 for the four-bit values with bit t set.
func fifthBitLut(t int) Mem {
	var b [16]byte
	for n := range b {
		if n>>t&1 == 1 {
			b[n] = 16
		}
	}
	return table16(fmt.Sprintf("q5kbit%d", t), b)
}

// iq4XSScales returns the eight six-bit scales of the IQ4_XS block at
// pw, less 32, as int16 in both lanes: four bits from scales_l (nibble
// order is sub-block order), two from scales_h.
func iq4XSScales(pw reg.Register) reg.VecVirtual {
	lo, hi, mask := GP64(), GP64(), GP64()
	MOVL(Mem{Base: pw, Disp: 4}, lo.As32())
	MOVQ(U64(0x0f0f0f0f0f0f0f0f), mask)
	PDEPQ(mask, lo, lo)
	MOVWQZX(Mem{Base: pw, Disp: 2}, hi)
	MOVQ(U64(0x0303030303030303), mask)
	PDEPQ(mask, hi, hi)
	SHLQ(U8(4), hi)
	ORQ(hi, lo)
	x := XMM()
	VMOVQ(lo, x)
	VPSUBB(bytes32(32).Offset(0), x, x)
	s := XMM()
	VPMOVSXBW(x, s)
	return bothLanes(s)
}

// dotIQ4XS: the non-linear four-bit values times the six-bit scales
// (ggml_vec_dot_iq4_xs_q8_K). A sub-block's 16 code bytes are loaded into
// both lanes and the high lane shifted by 4 (VPSRLVQ), so that one mask
// gives the 32 codes in value order.
func dotIQ4XS(rows int) {
	k := newKRows("IQ4_XS", rows, 136, false)
	pw := k.pw
	lut := lut16("kvaluesiq4nl", kvaluesIQ4NL)
	k.start()
	scales := iq4XSScales(pw)
	for ib := range 8 {
		q := YMM()
		VBROADCASTI128(Mem{Base: pw, Disp: 8 + 16*ib}, q)
		VPSRLVQ(table32("highlane4", [32]byte{16: 4, 24: 4}), q, q)
		VPAND(bytes32(0x0F), q, q)
		VPSHUFB(q, lut, q)
		ax := YMM()
		VPSIGNB(q, q, ax)
		sc := oneScale(scales, ib)
		for c := range rows {
			accum(k.sumi, c, k.product(c, q, ax, sc, 32*ib))
		}
	}
	k.closeWith(k.dScales(Mem{Base: pw}))
}

// dotQ6KxN is the Q6_K × Q8_K dot product of DotQ6_K for one weight row
// and rows (1 to 4) activation rows, in the order of ggml's AVX2
// ggml_vec_dot_q6_K_q8_K: the six-bit values unpacked to bytes 0…63 (once
// for all rows), times the activations in 16-bit pairs less 32 times them,
// times the int8 scales in 32-bit lanes; each row's lanes scaled by
// dx·d into its float lanes.
func dotQ6KxN(rows int) {
	k := newKRows("Q6_K", rows, 210, false)
	pw := k.pw
	k.zero()
	low, three := bytes32(0x0F), bytes32(0x03)
	m32 := YMM()
	VMOVDQU(bytes32(32), m32)
	for n := range 2 {
		h := YMM()
		VMOVDQU(Mem{Base: pw, Disp: 128 + 32*n}, h)
		for kk := range 4 {
			y := q6KValues(pw, h, low, three, n, kk)
			scv := q6KScales(pw, 8*n+2*kk)
			for c := range rows {
				x := k.addr[c].Offset(4 + 128*n + 32*kk)
				p, m := YMM(), YMM()
				VPMADDUBSW(x, y, p)
				VPMADDUBSW(x, m32, m)
				VPSUBW(m, p, p)
				VPMADDWD(scv, p, p)
				VPADDD(p, k.sumi[c], k.sumi[c])
			}
		}
	}
	k.close(Mem{Base: pw, Disp: 208})
}

// dotQ4KxN is the Q4_K × Q8_K dot product of DotQ4_K for one weight row
// and rows (1 to 4) activation rows, in the order of ggml's AVX2
// ggml_vec_dot_q4_K_q8_K: the nibbles times the activations times the
// six-bit scales into eight float lanes a row; the mins times pairs of
// bsum pairs (VPHADDW, VPMADDWD) scaled by -dx·dmin into four more, kept
// on the stack, reduced pairwise and added at the end.
func dotQ4KxN(rows int) {
	var accm []Mem
	k := newKRows("Q4_K", rows, 144, false, func(k *kRows) {
		z := XMM()
		VXORPS(z, z, z)
		for range k.rows {
			m := AllocLocal(16)
			VMOVUPS(z, m)
			accm = append(accm, m)
		}
	})
	pw := k.pw
	k.final = func(c int, s reg.Register) {
		m, t := XMM(), XMM()
		VMOVUPS(accm[c], m)
		VMOVHLPS(m, m, t)
		VADDPS(t, m, m) // a0+a2, a1+a3
		VMOVSHDUP(m, t)
		VADDSS(t, m, m)
		VADDSS(m, s, s)
	}
	scales, mins := k4ScalesMins(pw)
	dminw := f16Scalar(Mem{Base: pw, Disp: 2})
	for c := range rows {
		b := XMM()
		VMOVDQU(k.addr[c].Offset(260), b)
		VPHADDW(k.addr[c].Offset(276), b, b)
		VPMADDWD(mins, b, b)
		VCVTDQ2PS(b, b)
		d := XMM()
		VMULSS(k.addr[c], dminw, d)
		VBROADCASTSS(d, d)
		m := XMM()
		VMOVUPS(accm[c], m)
		VFNMADD231PS(b, d, m) // m - dx·dmin·prod: ggml's fma(-dx·dmin, prod, m)
		VMOVUPS(m, accm[c])
	}
	k.zero()
	for pr := range 4 {
		for hh := range 2 {
			q := YMM()
			if hh == 0 {
				VMOVDQU(Mem{Base: pw, Disp: 16 + 32*pr}, q)
			} else {
				VPSRLW(U8(4), Mem{Base: pw, Disp: 16 + 32*pr}, q)
			}
			VPAND(bytes32(0x0F), q, q)
			sc := oneScale(scales, 2*pr+hh)
			for c := range rows {
				k.add(c, q, nil, sc, 64*pr+32*hh)
			}
		}
	}
	k.close(Mem{Base: pw})
}
