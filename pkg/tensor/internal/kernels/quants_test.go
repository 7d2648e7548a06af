package kernels

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// blockType describes a weight block type's kernels for the tests: its
// block bytes, values a block, activation blocks, how a random block gets
// sane scales, and its kernels.
type blockType struct {
	name        string
	wBytes, per int
	act         func(r *rand.Rand, nb int) []byte // activation blocks between guards
	aBytes      int
	scale       func(r *rand.Rand, blk []byte)
	dot, twin   func(w, x []byte, nb int) float32
	dotN        func(w, x []byte, stride, nb, rows int, out *[4]float32)
}

func setF16(blk []byte, v float64) { binary.LittleEndian.PutUint16(blk, F32ToF16(float32(v))) }

var blockTypes = []blockType{
	{"Q4_1", 20, 32, q8_1Blocks, 36, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.1); setF16(b[2:], -r.Float64()) },
		DotQ4_1, dotQ4_1Generic, DotQ4_1xN},
	{"Q5_0", 22, 32, q8Blocks, 34, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.1) },
		DotQ5_0, dotQ5_0Generic, DotQ5_0xN},
	{"Q5_1", 24, 32, q8_1Blocks, 36, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.1); setF16(b[2:], -r.Float64()) },
		DotQ5_1, dotQ5_1Generic, DotQ5_1xN},
	{"IQ4_NL", 18, 32, q8Blocks, 34, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.01) },
		DotIQ4_NL, dotIQ4_NLGeneric, DotIQ4_NLxN},
	// Scales 2^-20 to 2^-1 and, now and then, subnormal ones (2^-128,
	// 2^-127) and 2^22.
	{"MXFP4", 17, 32, q8Blocks, 34, func(r *rand.Rand, b []byte) {
		b[0] = byte(108 + r.IntN(20))
		if r.IntN(8) == 0 {
			b[0] = []byte{0, 1, 150}[r.IntN(3)]
		}
	}, DotMXFP4, dotMXFP4Generic, DotMXFP4xN},
	{"Q2_K", 84, 256, q8KBlocks, 292, func(r *rand.Rand, b []byte) { setF16(b[80:], r.Float64()*0.01); setF16(b[82:], r.Float64()*0.01) },
		DotQ2_K, dotQ2_KGeneric, DotQ2_KxN},
	{"Q3_K", 110, 256, q8KBlocks, 292, func(r *rand.Rand, b []byte) { setF16(b[108:], r.Float64()*0.01) },
		DotQ3_K, dotQ3_KGeneric, DotQ3_KxN},
	{"Q5_K", 176, 256, q8KBlocks, 292, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.01); setF16(b[2:], r.Float64()*0.01) },
		DotQ5_K, dotQ5_KGeneric, DotQ5_KxN},
	{"IQ4_XS", 136, 256, q8KBlocks, 292, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.001) },
		DotIQ4_XS, dotIQ4_XSGeneric, DotIQ4_XSxN},
}

// q8_1Blocks makes nb random Q8_1 activation blocks, their s fields d·Σq
// as the quantiser writes them, between NaN-scale guard bytes.
func q8_1Blocks(r *rand.Rand, nb int) []byte {
	return randomBlocks(r, nb, 36, func(blk []byte) {
		d := float32(r.Float64() * 0.1)
		var s int32
		for j := range 32 {
			q := int8(r.IntN(255) - 127)
			blk[4+j] = byte(q)
			s += int32(q)
		}
		setF16(blk, float64(d))
		setF16(blk[2:], float64(d*float32(s)))
	})
}

// TestBlockKernels checks every new block type's kernel against its Go
// twin bit for bit (the same sum in the same order) over many block
// counts, odd ones included, with guard bytes around the rows that make a
// stray read give NaN or a wrong sum; and its 2-to-4-row kernel against
// single-row calls, bit for bit, rows a stride with a gap apart.
func TestBlockKernels(t *testing.T) {
	for _, asm := range []bool{true, false} {
		UseAsm(asm)
		for _, ty := range blockTypes {
			r := rand.New(rand.NewPCG(21, uint64(ty.wBytes)))
			maxNB := 40
			if ty.per == 256 {
				maxNB = 12
			}
			for nb := 0; nb <= maxNB; nb++ {
				w := randomBlocks(r, nb, ty.wBytes, func(b []byte) { ty.scale(r, b) })
				x := ty.act(r, nb)
				wr, xr := w[guard:guard+nb*ty.wBytes], x[guard:guard+nb*ty.aBytes]
				got, want := ty.dot(wr, xr, nb), ty.twin(wr, xr, nb)
				if math.Float32bits(got) != math.Float32bits(want) || math.IsNaN(float64(got)) {
					t.Fatalf("asm %v: Dot%s nb=%d: %g, Go twin %g", asm, ty.name, nb, got, want)
				}
				stride := nb*ty.aBytes + 5
				xs := make([]byte, 4*stride+2*guard)
				for i := range xs {
					xs[i] = 0x7e
				}
				for c := range 4 {
					copy(xs[guard+c*stride:], ty.act(r, nb)[guard:guard+nb*ty.aBytes])
				}
				checkRows(t, fmt.Sprintf("asm %v: Dot%sxN nb=%d", asm, ty.name, nb), func(rows int, out *[4]float32) {
					ty.dotN(wr, xs[guard:guard+(rows-1)*stride+nb*ty.aBytes], stride, nb, rows, out)
				}, func(c int) float32 {
					return ty.dot(wr, xs[guard+c*stride:guard+c*stride+nb*ty.aBytes], nb)
				})
			}
		}
	}
	UseAsm(true)
}

// TestBlockKernelOrder pins the order of ggml's AVX2 sums, which float
// results depend on: a row whose blocks' products are exact, of very
// different sizes, sums to what eight lanes of fused multiply-adds and a
// pairwise reduction give, computed here in float64 and rounded as each
// step of that order rounds; a single float accumulator would lose the
// small terms differently.
func TestBlockKernelOrder(t *testing.T) {
	for _, asm := range []bool{true, false} {
		UseAsm(asm)
		// Q5_0 blocks, d = 1 (w = q-16) and Q8_0 blocks of scale 2^-k
		// with only x[4j] = 1: lane j of block b gets d_b·(q_{4j}-16).
		const nb = 6
		w := make([]byte, nb*22)
		x := make([]byte, nb*34)
		var lanes [8]float32
		for b := range nb {
			blk := w[b*22:]
			setF16(blk, 1)
			for j := range 16 {
				blk[6+j] = byte(j%16) | byte(15-j%16)<<4
			}
			binary.LittleEndian.PutUint32(blk[2:], 0xA5A5A5A5)
			dx := math.Ldexp(1, -4*b) // 1, 2^-4 … 2^-20: sums exact in float64
			setF16(x[b*34:], dx)
			for j := range 8 {
				x[b*34+2+4*j] = 1
			}
			h := binary.LittleEndian.Uint32(blk[2:])
			for j := range 8 {
				e := 4 * j
				nib := blk[6+e%16] & 0xf
				if e >= 16 {
					nib = blk[6+e%16] >> 4
				}
				q := float64(int(nib) | int(h>>e&1)<<4 - 16)
				lanes[j] = float32(float64(lanes[j]) + float64(float32(dx))*q)
			}
		}
		v0, v1, v2, v3 := lanes[0]+lanes[4], lanes[1]+lanes[5], lanes[2]+lanes[6], lanes[3]+lanes[7]
		want := (v0 + v2) + (v1 + v3)
		if got := DotQ5_0(w, x, nb); got != want {
			t.Errorf("asm %v: DotQ5_0 of blocks of scales 2^-4k: %g, want %g (eight lanes, pairwise)", asm, got, want)
		}
	}
	UseAsm(true)
}

// TestQuantQ8_1 checks the Q8_1 activation quantiser against its
// definition (ggml's quantize_row_q8_1) re-derived here in float64:
// d = max|x|/127, q the nearest integer to x·127/max|x| (halves to even),
// s = d·Σq, both stored in half precision; zero blocks are zeros.
func TestQuantQ8_1(t *testing.T) {
	for _, asm := range []bool{true, false} {
		UseAsm(asm)
		r := rand.New(rand.NewPCG(31, 32))
		for _, scale := range []float64{0, 1e-6, 0.01, 1, 1e3} {
			for nb := 0; nb <= 9; nb++ {
				x := make([]float32, nb*32+r.IntN(32))
				for i := range x {
					x[i] = float32(r.NormFloat64() * scale)
				}
				if nb > 2 {
					clear(x[32:64])
				}
				if nb > 3 { // a block whose quants land on halves
					for i := range 32 {
						x[96+i] = float32(i%9-4) * 0.5
					}
					x[96+31] = 127
				}
				got := make([]byte, nb*36+2)
				got[nb*36], got[nb*36+1] = 0x5a, 0x5a
				QuantQ8_1(got, x)
				for b := range nb {
					blk, xs := got[b*36:], x[b*32:b*32+32]
					var amax float64
					for _, v := range xs {
						amax = math.Max(amax, math.Abs(float64(v)))
					}
					d := float32(amax / 127)
					var s int64
					for j, v := range xs {
						var want int8
						if amax != 0 {
							want = int8(math.RoundToEven(float64(v * float32(127/amax))))
						}
						if q := int8(blk[4+j]); q != want {
							t.Fatalf("asm %v scale %g block %d value %d (%g): q %d, want %d", asm, scale, b, j, v, q, want)
						}
						s += int64(want)
					}
					if got, want := binary.LittleEndian.Uint16(blk), F32ToF16(d); got != want {
						t.Fatalf("asm %v scale %g block %d: d %#04x, want %#04x", asm, scale, b, got, want)
					}
					if got, want := binary.LittleEndian.Uint16(blk[2:]), F32ToF16(float32(float64(d)*float64(s))); got != want {
						t.Fatalf("asm %v scale %g block %d: s %#04x, want %#04x", asm, scale, b, got, want)
					}
				}
				if !bytes.Equal(got[nb*36:], []byte{0x5a, 0x5a}) {
					t.Fatalf("asm %v: wrote past %d blocks", asm, nb)
				}
			}
		}
	}
	UseAsm(true)
}

// TestE8M0 checks MXFP4's scale against its definition: half of 2^(e-127),
// exact for every e (subnormal below 2; 2^127, not infinity, at 255).
func TestE8M0(t *testing.T) {
	for e := range 256 {
		want := float32(math.Ldexp(1, e-128))
		if got := E8M0HalfToF32(uint8(e)); got != want {
			t.Errorf("E8M0HalfToF32(%d) = %g, want %g", e, got, want)
		}
	}
}

// BenchmarkBlockDots runs each new type's dot product (asm and Go) over a
// row of 4096 values held in the caches, beside the existing types it is
// measured against (Q4_0 for the 32-value types, Q4_K for the K-quants
// and IQ4_XS), in GB/s of weights.
func BenchmarkBlockDots(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(5, 6))
	refs := []blockType{
		{"Q4_0", 18, 32, q8Blocks, 34, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.1) }, DotQ4_0, dotQ4_0Generic, DotQ4_0xN},
		{"Q4_K", 144, 256, q8KBlocks, 292, func(r *rand.Rand, b []byte) { setF16(b, r.Float64()*0.01); setF16(b[2:], r.Float64()*0.01) },
			DotQ4_K, dotQ4_KGeneric, DotQ4_KxN},
	}
	for _, ty := range append(refs, blockTypes...) {
		nb := n / ty.per
		w := randomBlocks(r, nb, ty.wBytes, func(blk []byte) {
			ty.scale(r, blk)
			if ty.name == "MXFP4" {
				blk[0] = byte(108 + r.IntN(20)) // no subnormal scales: they take microcode assists
			}
		})[guard : guard+nb*ty.wBytes]
		x := ty.act(r, nb)[guard : guard+nb*ty.aBytes]
		for _, asm := range []bool{true, false} {
			name := ty.name + "/go"
			if asm {
				name = ty.name + "/asm"
			}
			b.Run(name, func(b *testing.B) {
				prev := UseAsm(asm)
				defer UseAsm(prev)
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					ty.dot(w, x, nb)
				}
			})
		}
	}
}
