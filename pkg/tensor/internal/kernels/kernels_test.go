package kernels

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

const guard = 64

// guarded returns a slice of n elements inside a buffer whose guard
// regions hold NaN (or bytes that decode as NaN scales): a kernel that
// reads past its slice returns NaN, one that writes there is caught by
// checkGuards.
func guardedF32(r *rand.Rand, n int) ([]float32, []float32) {
	buf := make([]float32, n+2*guard)
	for i := range buf {
		buf[i] = float32(math.NaN())
	}
	s := buf[guard : guard+n]
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s, buf
}

func checkGuardsF32(t *testing.T, buf []float32, n int) {
	t.Helper()
	for i := range guard {
		if !math.IsNaN(float64(buf[i])) || !math.IsNaN(float64(buf[guard+n+i])) {
			t.Fatalf("guard value overwritten")
		}
	}
}

// TestAsmMatchesGeneric compares every assembly kernel with its Go twin on
// random inputs of many lengths, odd tails included.
func TestAsmMatchesGeneric(t *testing.T) {
	if !UseAsm(true) {
		t.Log("no assembly kernels in this build or on this CPU: comparing Go with itself")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n += 1 + n/8 {
		a, abuf := guardedF32(r, n)
		b, bbuf := guardedF32(r, n)
		got := DotF32(a, b)
		want := dotF32Generic(a, b)
		if got != want { // same order of operations: bit-identical
			t.Fatalf("DotF32 n=%d: asm %g, Go %g", n, got, want)
		}
		checkGuardsF32(t, abuf, n)
		checkGuardsF32(t, bbuf, n)

		ha, hb := make([]uint16, n+2*guard), make([]uint16, n+2*guard)
		for i := range ha {
			ha[i], hb[i] = 0x7e00, 0x7e00 // NaN
		}
		for i := range n {
			ha[guard+i] = F32ToF16(float32(r.NormFloat64()))
			hb[guard+i] = F32ToF16(float32(r.NormFloat64()))
		}
		if got, want := DotF16(ha[guard:guard+n], hb[guard:guard+n]), dotF16Generic(ha[guard:guard+n], hb[guard:guard+n]); got != want {
			t.Fatalf("DotF16 n=%d: asm %g, Go %g", n, got, want)
		}
	}
	for n := 0; n <= 100; n++ {
		x, _ := guardedF32(r, n)
		d1, buf := guardedF32(r, n)
		d2 := append([]float32(nil), d1...)
		Axpy(d1, x, 0.37)
		axpyGeneric(d2, x, 0.37)
		for i := range d1 {
			if d1[i] != d2[i] {
				t.Fatalf("Axpy n=%d: element %d: asm %g, Go %g", n, i, d1[i], d2[i])
			}
		}
		checkGuardsF32(t, buf, n)
	}
	for n := 0; n <= 300; n += 1 + n/8 {
		a, b := make([]uint16, n+2*guard), make([]uint16, n+2*guard)
		for i := range a {
			a[i], b[i] = 0x7fc0, 0x7fc0 // NaN
		}
		for i := range n {
			a[guard+i] = uint16(math.Float32bits(float32(r.NormFloat64())) >> 16)
			b[guard+i] = uint16(math.Float32bits(float32(r.NormFloat64())) >> 16)
		}
		for _, lanes := range []int{16, 32} {
			got, want := make([]float32, lanes), make([]float32, lanes)
			for i := range got {
				got[i] = float32(r.NormFloat64())
			}
			copy(want, got)
			bf16Lanes(a[guard:guard+n], b[guard:guard+n], got)
			bf16LanesGeneric(a[guard:guard+n], b[guard:guard+n], want)
			if !slices.Equal(got, want) {
				t.Fatalf("bf16Lanes n=%d, %d lanes: asm %v, Go %v", n, lanes, got, want)
			}
		}
	}
	for nb := 0; nb <= 40; nb++ {
		w4, x := q4Blocks(r, nb), q8Blocks(r, nb)
		got := DotQ4_0(w4[guard:guard+nb*18], x[guard:guard+nb*34], nb)
		want := dotQ4_0Generic(w4[guard:guard+nb*18], x[guard:guard+nb*34], nb)
		if got != want || math.IsNaN(float64(got)) {
			t.Fatalf("DotQ4_0 nb=%d: asm %g, Go %g", nb, got, want)
		}
		// Up to four activation rows: each row's result equals its own
		// DotQ4_0, bit for bit.
		xs, stride := q8Rows(r, nb)
		checkRows(t, fmt.Sprintf("DotQ4_0xN nb=%d", nb), func(rows int, out *[4]float32) {
			DotQ4_0xN(w4[guard:guard+nb*18], xs[guard:guard+(rows-1)*stride+nb*34], stride, nb, rows, out)
		}, func(c int) float32 {
			return DotQ4_0(w4[guard:guard+nb*18], xs[guard+c*stride:guard+c*stride+nb*34], nb)
		})
	}
	for nb := 0; nb <= 40; nb++ {
		w, x := q8Blocks(r, nb), q8Blocks(r, nb)
		got := DotQ8_0(w[guard:guard+nb*34], x[guard:guard+nb*34], nb)
		want := dotQ8_0Generic(w[guard:guard+nb*34], x[guard:guard+nb*34], nb)
		// Same order of operations: bit-identical.
		if got != want || math.IsNaN(float64(got)) {
			t.Fatalf("DotQ8_0 nb=%d: asm %g, Go %g", nb, got, want)
		}
		xs, stride := q8Rows(r, nb)
		// Several weight rows at once, each token's results a stride
		// apart in dst, with NaN guards around and between them.
		const nrows, dstride = 3, 5
		ws := q8Blocks(r, nrows*nb)
		for rows := 1; rows <= 4; rows++ {
			testDotQ8_0xN(t, r, ws, xs, stride, nb, rows, nrows, dstride)
		}
	}
}

// testDotQ8_0xN checks DotQ8_0xN of nrows weight rows with rows
// activation rows against DotQ8_0 and the Go twin, bit for bit, and that
// it writes nothing but its results.
func testDotQ8_0xN(t *testing.T, r *rand.Rand, ws, xs []byte, stride, nb, rows, nrows, dstride int) {
	t.Helper()
	xp := Q8_0Pack(nil, xs[guard:], stride, nb, rows)
	got, buf := guardedF32(r, rows*dstride)
	DotQ8_0xN(ws[guard:guard+nrows*nb*34], xs[guard:guard+(rows-1)*stride+nb*34], stride, nb, rows, nrows, xp, got, dstride)
	for c := range rows {
		for wr := range dstride {
			v := got[c*dstride+wr]
			if wr >= nrows { // not written: still the random value
				continue
			}
			one := DotQ8_0(ws[guard+wr*nb*34:guard+(wr+1)*nb*34], xs[guard+c*stride:guard+c*stride+nb*34], nb)
			if v != one || math.IsNaN(float64(one)) {
				t.Fatalf("DotQ8_0xN nb=%d rows=%d token %d weight row %d: %g, DotQ8_0 %g", nb, rows, c, wr, v, one)
			}
		}
	}
	checkGuardsF32(t, buf, rows*dstride)
	want := make([]float32, rows*dstride)
	copy(want, got)
	dotQ8_0xNGeneric(ws[guard:], xs[guard:], stride, nb, rows, nrows, want, dstride)
	if !slices.Equal(want, got) {
		t.Fatalf("DotQ8_0xN nb=%d rows=%d: Go twin differs", nb, rows)
	}
}

// TestKQuantsAsmMatchGeneric compares the Q4_K and Q6_K kernels with their
// Go twins on random blocks, bit for bit.
func TestKQuantsAsmMatchGeneric(t *testing.T) {
	UseAsm(true)
	r := rand.New(rand.NewPCG(7, 8))
	for nb := 0; nb <= 12; nb++ {
		x := q8KBlocks(r, nb)
		w4 := randomBlocks(r, nb, 144, func(blk []byte) {
			binary.LittleEndian.PutUint16(blk, F32ToF16(float32(r.Float64()*0.01)))
			binary.LittleEndian.PutUint16(blk[2:], F32ToF16(float32(r.Float64()*0.01)))
		})
		got := DotQ4_K(w4[guard:guard+nb*144], x[guard:guard+nb*292], nb)
		want := dotQ4_KGeneric(w4[guard:guard+nb*144], x[guard:guard+nb*292], nb)
		if got != want || math.IsNaN(float64(got)) {
			t.Fatalf("DotQ4_K nb=%d: asm %g, Go %g", nb, got, want)
		}
		stride := nb*292 + 4
		xs := randomBlocks(r, 4, stride, func([]byte) {})
		for c := range 4 {
			copy(xs[guard+c*stride:], q8KBlocks(r, nb)[guard:guard+nb*292])
		}
		checkRows(t, fmt.Sprintf("DotQ4_KxN nb=%d", nb), func(rows int, out *[4]float32) {
			DotQ4_KxN(w4[guard:guard+nb*144], xs[guard:guard+(rows-1)*stride+nb*292], stride, nb, rows, out)
		}, func(c int) float32 {
			return DotQ4_K(w4[guard:guard+nb*144], xs[guard+c*stride:guard+c*stride+nb*292], nb)
		})
		w6 := randomBlocks(r, nb, 210, func(blk []byte) {
			binary.LittleEndian.PutUint16(blk[208:], F32ToF16(float32(r.Float64()*0.01)))
		})
		got = DotQ6_K(w6[guard:guard+nb*210], x[guard:guard+nb*292], nb)
		want = dotQ6_KGeneric(w6[guard:guard+nb*210], x[guard:guard+nb*292], nb)
		if got != want || math.IsNaN(float64(got)) {
			t.Fatalf("DotQ6_K nb=%d: asm %g, Go %g", nb, got, want)
		}
		checkRows(t, fmt.Sprintf("DotQ6_KxN nb=%d", nb), func(rows int, out *[4]float32) {
			DotQ6_KxN(w6[guard:guard+nb*210], xs[guard:guard+(rows-1)*stride+nb*292], stride, nb, rows, out)
		}, func(c int) float32 {
			return DotQ6_K(w6[guard:guard+nb*210], xs[guard+c*stride:guard+c*stride+nb*292], nb)
		})
	}
}

// The batched float kernels equal one DotF32 or DotF16 call per
// row, bit for bit, for every row count and lengths with and without a
// tail; they read nothing past their rows (NaN guards) and leave the
// outputs past rows alone.
func TestFloatxN(t *testing.T) {
	for _, asm := range []bool{true, false} {
		UseAsm(asm)
		r := rand.New(rand.NewPCG(9, 10))
		for n := 0; n <= 300; n += 1 + n/6 {
			stride := n + r.IntN(5)
			wf, _ := guardedF32(r, n)
			xf, _ := guardedF32(r, 3*stride+n)
			for c := range 3 { // the gaps between rows are guards too
				for i := c*stride + n; i < (c+1)*stride; i++ {
					xf[i] = float32(math.NaN())
				}
			}
			wh, xh := make([]uint16, n), make([]uint16, 3*stride+n+2*guard)
			for i := range wh {
				wh[i] = F32ToF16(wf[i])
			}
			for i := range xh {
				xh[i] = 0x7e00 // NaN: guards
			}
			for i, v := range xf {
				xh[guard+i] = F32ToF16(v)
			}
			xh = xh[guard : guard+len(xf)]
			last := func(rows int) int { return (rows-1)*stride + n }
			checkRows(t, fmt.Sprintf("asm %v: DotF32xN n=%d", asm, n), func(rows int, o *[4]float32) {
				DotF32xN(wf, xf[:last(rows)], stride, rows, o)
			}, func(c int) float32 { return DotF32(wf, xf[c*stride:]) })
			checkRows(t, fmt.Sprintf("asm %v: DotF16xN n=%d", asm, n), func(rows int, o *[4]float32) {
				DotF16xN(wh, xh[:last(rows)], stride, rows, o)
			}, func(c int) float32 { return DotF16(wh, xh[c*stride:]) })
		}
	}
	UseAsm(true)
}

// The attention kernels equal one DotF32 or Axpy call per row, bit for
// bit, for head sizes with and without a tail.
func TestRowKernels(t *testing.T) {
	UseAsm(true)
	r := rand.New(rand.NewPCG(9, 10))
	for _, d := range []int{8, 32, 64, 100, 128} {
		for _, rows := range []int{1, 3, 17} {
			stride := 2*d + 3
			k, _ := guardedF32(r, rows*stride)
			q, _ := guardedF32(r, d)
			got := make([]float32, rows)
			DotRowsF32(got, q, k, stride)
			for j := range rows {
				if want := DotF32(q, k[j*stride:j*stride+d]); got[j] != want {
					t.Fatalf("DotRowsF32 d=%d row %d: %g, DotF32 %g", d, j, got[j], want)
				}
			}
			w, _ := guardedF32(r, rows)
			dst, buf := guardedF32(r, d)
			want := append([]float32(nil), dst...)
			AxpyRowsF32(dst, k, stride, w)
			for j := range rows {
				Axpy(want, k[j*stride:j*stride+d], w[j])
			}
			for i := range dst {
				if dst[i] != want[i] {
					t.Fatalf("AxpyRowsF32 d=%d rows=%d element %d: %g, Axpy %g", d, rows, i, dst[i], want[i])
				}
			}
			checkGuardsF32(t, buf, d)
		}
	}
}

// The Q8_0 quantizer equals its Go twin byte for byte on blocks of every
// scale, all-zero blocks and ones whose scale is subnormal in half
// precision included.
func TestQuantQ8_0(t *testing.T) {
	UseAsm(true)
	r := rand.New(rand.NewPCG(11, 12))
	for _, scale := range []float64{0, 1e-9, 1e-6, 0.01, 1, 1e3, 6e4} {
		for nb := 0; nb <= 9; nb++ {
			x := make([]float32, nb*32+r.IntN(32)) // a partial block at the end is ignored
			for i := range x {
				x[i] = float32(r.NormFloat64() * scale)
			}
			if nb > 2 {
				clear(x[32:64]) // a zero block
			}
			got, want := make([]byte, nb*34+2), make([]byte, nb*34+2)
			got[nb*34], got[nb*34+1] = 0x5a, 0x5a // guards
			want[nb*34], want[nb*34+1] = 0x5a, 0x5a
			QuantQ8_0(got, x)
			quantQ8_0Generic(want, x)
			if !bytes.Equal(got, want) {
				t.Fatalf("scale %g, %d blocks: asm %x, Go %x", scale, nb, got, want)
			}
		}
	}
}

// TestQuantQ8_K compares the assembly quantiser with ggml's reference
// loop: zero blocks, a negative value of largest magnitude, ties between a
// value and its negation (the first sets the sign), halves that round to
// even, and partial blocks at the end (ignored), on dirty buffers.
func TestQuantQ8_K(t *testing.T) {
	UseAsm(true)
	r := rand.New(rand.NewPCG(13, 14))
	for _, scale := range []float64{0, 1e-30, 1e-6, 0.01, 1, 1e3, 1e30} {
		for nb := 0; nb <= 5; nb++ {
			x := make([]float32, nb*256+r.IntN(256))
			for i := range x {
				x[i] = float32(r.NormFloat64() * scale)
			}
			if nb > 1 {
				clear(x[256:512]) // a zero block
			}
			if nb > 2 { // block 2: its largest magnitude three times, negative first
				x[512+41], x[512+44], x[512+200] = -float32(9*scale), float32(9*scale), float32(9*scale)
			}
			if nb > 3 { // block 3: quants landing on halves
				for i := range 256 {
					x[768+i] = float32(i%17-8) * 0.5
				}
				x[768+255] = 127
			}
			got, want := make([]byte, nb*292+2), make([]byte, nb*292+2)
			for i := range got {
				got[i], want[i] = 0x5a, 0x5a // stale bytes and guards
			}
			QuantQ8_K(got, x)
			quantQ8_KGeneric(want, x)
			if !bytes.Equal(got, want) {
				for b := range nb + 1 {
					if e := min(len(got), (b+1)*292); !bytes.Equal(got[b*292:e], want[b*292:e]) {
						t.Fatalf("scale %g, %d blocks: block %d: asm %x, Go %x", scale, nb, b, got[b*292:e], want[b*292:e])
					}
				}
			}
		}
	}
}

// randomBlocks makes nb blocks of size random bytes between guard bytes
// of 0x7e (NaN as half-precision scales), then lets set fix each block's
// scales.
func randomBlocks(r *rand.Rand, nb, size int, set func(blk []byte)) []byte {
	buf := make([]byte, nb*size+2*guard)
	for i := range buf {
		buf[i] = 0x7e
	}
	for b := range nb {
		blk := buf[guard+b*size : guard+(b+1)*size]
		for i := range blk {
			blk[i] = byte(r.Uint32())
		}
		set(blk)
	}
	return buf
}

// q8KBlocks makes nb random Q8_K activation blocks (f32 scale, 256 int8,
// their 16 sums) between NaN guard bytes.
func q8KBlocks(r *rand.Rand, nb int) []byte {
	return randomBlocks(r, nb, 292, func(blk []byte) {
		binary.LittleEndian.PutUint32(blk, math.Float32bits(float32(r.Float64()*0.05)))
		for j := range 256 {
			blk[4+j] = byte(int8(r.IntN(255) - 127))
		}
		for j := range 16 {
			var s int16
			for l := range 16 {
				s += int16(int8(blk[4+16*j+l]))
			}
			binary.LittleEndian.PutUint16(blk[260+2*j:], uint16(s))
		}
	})
}

// q8Blocks makes nb random Q8_0 blocks between guard bytes that decode as
// NaN scales.
func q8Blocks(r *rand.Rand, nb int) []byte {
	return randomBlocks(r, nb, 34, func(blk []byte) {
		binary.LittleEndian.PutUint16(blk, F32ToF16(float32(r.Float64()*0.1)))
		for j := range 32 {
			blk[2+j] = byte(int8(r.IntN(255) - 127))
		}
	})
}

// checkRows runs a batched kernel for 2 to 4 rows and checks that each
// row's result equals the single-row kernel's (one), bit for bit, and that
// the outputs past rows are left alone.
func checkRows(t *testing.T, name string, run func(rows int, out *[4]float32), one func(c int) float32) {
	t.Helper()
	for rows := 2; rows <= 4; rows++ {
		out := [4]float32{42, 42, 42, 42}
		run(rows, &out)
		for c := range out {
			want := float32(42)
			if c < rows {
				want = one(c)
			}
			if out[c] != want || math.IsNaN(float64(out[c])) {
				t.Fatalf("%s rows=%d row %d: %g, want %g", name, rows, c, out[c], want)
			}
		}
	}
}

// q8Rows makes four rows of nb random Q8_0 blocks, stride bytes apart,
// with gaps between them and guards around them that hold NaN scales.
func q8Rows(r *rand.Rand, nb int) (xs []byte, stride int) {
	stride = nb*34 + 6
	xs = make([]byte, 4*stride+2*guard)
	for i := range xs {
		xs[i] = 0x7e
	}
	for c := range 4 {
		copy(xs[guard+c*stride:], q8Blocks(r, nb)[guard:guard+nb*34])
	}
	return xs, stride
}

// q4Blocks makes nb random Q4_0 blocks between NaN-scale guard bytes.
func q4Blocks(r *rand.Rand, nb int) []byte {
	return randomBlocks(r, nb, 18, func(blk []byte) {
		binary.LittleEndian.PutUint16(blk, F32ToF16(float32(r.Float64()*0.1)))
	})
}

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 4096
	fa, _ := guardedF32(r, n)
	fb, _ := guardedF32(r, n)
	w, x := q8Blocks(r, n/32), q8Blocks(r, n/32)
	for _, asm := range []bool{false, true} {
		name := "go"
		if asm {
			name = "asm"
		}
		prev := UseAsm(asm)
		b.Run("F32/"+name, func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				DotF32(fa, fb)
			}
		})
		b.Run("Q8_0/"+name, func(b *testing.B) {
			b.SetBytes(34 * n / 32)
			for b.Loop() {
				DotQ8_0(w[guard:], x[guard:], n/32)
			}
		})
		UseAsm(prev)
	}
}

// The exp and SwiGLU kernels equal their Go twins bit for bit over odd
// lengths, across the clamp (NaN kept), and e^x is within 3 ulp of
// math.Exp where it is not clamped.
func TestExpKernels(t *testing.T) {
	UseAsm(true)
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 64, 100} {
		x, xbuf := guardedF32(r, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 40) // many beyond ±87
		}
		if n > 3 {
			x[0], x[1], x[2] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
		}
		want := slices.Clone(x)
		ExpShift(x, 1.5)
		expShiftGeneric(want, 1.5)
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(want[i]) && !(isNaN32(x[i]) && isNaN32(want[i])) {
				t.Fatalf("ExpShift n=%d element %d: asm %g, Go %g", n, i, x[i], want[i])
			}
		}
		checkGuardsF32(t, xbuf, n)
		g, gbuf := guardedF32(r, n)
		u, _ := guardedF32(r, n)
		for i := range g {
			g[i] = float32(r.NormFloat64() * 30)
		}
		wantG := slices.Clone(g)
		SwiGLU(g, u)
		swigluGeneric(wantG, u)
		if !slices.Equal(g, wantG) {
			t.Fatalf("SwiGLU n=%d: asm %v, Go %v", n, g, wantG)
		}
		checkGuardsF32(t, gbuf, n)
	}
	if got := expGeneric(float32(math.NaN())); !isNaN32(got) {
		t.Errorf("e^NaN = %g, want NaN", got)
	}
	for i := range 100000 {
		x := float32(-87 + 174*float64(i)/100000)
		got, want := expGeneric(x), float32(math.Exp(float64(x)))
		if ulps := math.Abs(float64(math.Float32bits(got)) - float64(math.Float32bits(want))); ulps > 3 {
			t.Fatalf("e^%g = %g, math.Exp %g: %g ulp apart", x, got, want, ulps)
		}
	}
}

func isNaN32(f float32) bool { return f != f }

// The row-interleaved Q8_0 kernels equal their Go twin bit for bit for
// every token count, with groups cut short (masked rows are not written)
// and odd block counts; the twin is within rounding of a float64 sum.
func TestQ8_0R16(t *testing.T) {
	if !HasR16() {
		t.Skip("no AVX-512 VNNI here: the R16 kernels do not run (their Go twin is what the other kernels are checked against)")
	}
	r := rand.New(rand.NewPCG(13, 14))
	for _, rows := range []int{1, 5, 16, 17, 40} {
		for _, nb := range []int{1, 2, 7, 32} {
			w := q8Blocks(r, rows*nb)[guard : guard+rows*nb*34]
			const tokens = 8
			x := q8Blocks(r, tokens*nb)[guard : guard+tokens*nb*34]
			wp := PackQ8_0R16(nil, w, rows, nb)
			xa := PackQ8_0R16Act(nil, x, nb*34, nb, tokens)
			for tk := 1; tk <= tokens; tk++ {
				for r0 := 0; r0 < rows; r0 += R16 {
					valid := min(R16, rows-r0)
					const dstride = R16 + 3
					got := make([]float32, tk*dstride)
					for i := range got {
						got[i] = -7
					}
					want := slices.Clone(got)
					DotQ8_0R16(wp[r0/R16*R16Q8Bytes(nb):], xa, nb, nb*R16Q8Act, tk, got, dstride, valid)
					dotQ8_0R16Generic(w, rows, r0, nb, x, nb*34, tk, want, dstride)
					if !slices.Equal(got, want) {
						t.Fatalf("rows=%d nb=%d tokens=%d group %d: asm %v, Go %v", rows, nb, tk, r0/R16, got, want)
					}
					for c := range tk {
						for rr := range valid {
							ref := 0.0
							for b := range nb {
								wb, xb := w[((r0+rr)*nb+b)*34:], x[(c*nb+b)*34:]
								var isum float64
								for i := range 32 {
									isum += float64(int8(wb[2+i])) * float64(int8(xb[2+i]))
								}
								ref += isum * float64(F16(binary.LittleEndian.Uint16(wb))) * float64(F16(binary.LittleEndian.Uint16(xb)))
							}
							if v := float64(got[c*dstride+rr]); math.Abs(v-ref) > 1e-4*(1+math.Abs(ref)) {
								t.Fatalf("rows=%d nb=%d token %d row %d: %g, float64 sum %g", rows, nb, c, r0+rr, v, ref)
							}
						}
					}
				}
			}
		}
	}
}

// The packed K-quant kernels equal the unpacked dot products (and so
// their Go twins) bit for bit for every token count, with groups cut
// short (masked rows are not written) and rows of full random blocks
// (every scale and min encoding, negative Q6_K scales included).
func TestKQuantsR16(t *testing.T) {
	if !HasR16() {
		t.Skip("no AVX-512 VNNI here: the R16 kernels do not run")
	}
	r := rand.New(rand.NewPCG(15, 16))
	types := []struct {
		name       string
		blockBytes int
		scale      func(blk []byte) // sets the block's float scales
		pack       func(dst, w []byte, rows, nb int) []byte
		recBytes   int
		dot        func(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int)
		twin       func(w, x []byte, nb int) float32
	}{
		{"Q4_K", 144, func(blk []byte) {
			binary.LittleEndian.PutUint16(blk, F32ToF16(float32(r.Float64()*0.01)))
			binary.LittleEndian.PutUint16(blk[2:], F32ToF16(float32(r.Float64()*0.01)))
		}, PackQ4_KR16, R16Q4K, DotQ4_KR16, dotQ4_KGeneric},
		{"Q6_K", 210, func(blk []byte) {
			binary.LittleEndian.PutUint16(blk[208:], F32ToF16(float32(r.Float64()*0.01)))
		}, PackQ6_KR16, R16Q6K, DotQ6_KR16, dotQ6_KGeneric},
		{"Q5_K", 176, func(blk []byte) {
			binary.LittleEndian.PutUint16(blk, F32ToF16(float32(r.Float64()*0.01)))
			binary.LittleEndian.PutUint16(blk[2:], F32ToF16(float32(r.Float64()*0.01)))
		}, PackQ5_KR16, R16Q5K, DotQ5_KR16, dotQ5_KGeneric},
		{"IQ4_XS", 136, func(blk []byte) {
			binary.LittleEndian.PutUint16(blk, F32ToF16(float32(r.Float64()*0.001)))
		}, PackIQ4_XSR16, R16IQ4XS, DotIQ4_XSR16, dotIQ4_XSGeneric},
	}
	for _, ty := range types {
		for _, rows := range []int{1, 9, 16, 33} {
			for _, nb := range []int{1, 3} {
				bb := ty.blockBytes
				w := randomBlocks(r, rows*nb, bb, ty.scale)[guard : guard+rows*nb*bb]
				const tokens = 4
				x := make([]byte, 0, tokens*nb*292)
				for range tokens {
					x = append(x, q8KBlocks(r, nb)[guard:guard+nb*292]...)
				}
				wp := ty.pack(nil, w, rows, nb)
				for tk := 1; tk <= tokens; tk++ {
					for r0 := 0; r0 < rows; r0 += R16 {
						valid := min(R16, rows-r0)
						const dstride = R16 + 1
						got := make([]float32, tk*dstride)
						for i := range got {
							got[i] = -7
						}
						ty.dot(wp[r0/R16*nb*ty.recBytes:], x, nb, nb*292, tk, got, dstride, valid)
						for c := range tk {
							for rr := range dstride {
								want := float32(-7) // not written
								if rr < valid {
									want = ty.twin(w[(r0+rr)*nb*bb:(r0+rr+1)*nb*bb], x[c*nb*292:(c+1)*nb*292], nb)
								}
								if got[c*dstride+rr] != want {
									t.Fatalf("%s rows=%d nb=%d tokens=%d token %d row %d: %g, Go %g", ty.name, rows, nb, tk, c, r0+rr, got[c*dstride+rr], want)
								}
							}
						}
					}
				}
			}
		}
	}
}

// The bfloat16 products sum in llama.cpp's two AVX512-BF16 orders, written
// out here element by element: VDPBF16PS's pair order within a lane (odd
// element first), the lanes' reduction, and where the tail goes.
func TestDotBF16Orders(t *testing.T) {
	bfv := func(h uint16) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }
	lane := func(a, b []uint16, acc float32, j int) float32 { // one VDPBF16PS lane
		acc = float32(bfv(a[2*j+1])*bfv(b[2*j+1]) + float64(acc))
		return float32(bfv(a[2*j])*bfv(b[2*j]) + float64(acc))
	}
	reduce := func(x [16]float32) float32 { // _mm512_reduce_add_ps
		var h8 [8]float32
		for j := range h8 {
			h8[j] = x[j+8] + x[j]
		}
		var h4 [4]float32
		for j := range h4 {
			h4[j] = h8[j+4] + h8[j]
		}
		return (h4[0] + h4[2]) + (h4[1] + h4[3])
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, asm := range []bool{true, false} {
		UseAsm(asm)
		for _, n := range []int{0, 31, 32, 64, 96, 128, 200, 256, 1024} {
			a, b := make([]uint16, n), make([]uint16, n)
			for i := range a {
				a[i] = uint16(math.Float32bits(float32(r.NormFloat64()*100)) >> 16)
				b[i] = uint16(math.Float32bits(float32(r.NormFloat64())) >> 16)
			}
			var c1, c2 [16]float32
			i := 0
			for ; i+64 <= n; i += 64 {
				for j := range 16 {
					c1[j] = lane(a[i:], b[i:], c1[j], j)
					c2[j] = lane(a[i+32:], b[i+32:], c2[j], j)
				}
			}
			s := float64(reduce(c1)) + float64(reduce(c2))
			for ; i < n; i++ {
				s += float64(float32(bfv(a[i]) * bfv(b[i])))
			}
			if got := DotBF16(a, b); got != float32(s) {
				t.Errorf("asm %v, n=%d: DotBF16 %g, want %g", asm, n, got, float32(s))
			}
			if n%32 != 0 {
				continue
			}
			var c [16]float32
			for i := 0; i < n; i += 32 {
				for j := range 16 {
					c[j] = lane(a[i:], b[i:], c[j], j)
				}
			}
			if got, want := DotBF16Gemm(a, b), reduce(c); got != want {
				t.Errorf("asm %v, n=%d: DotBF16Gemm %g, want %g", asm, n, got, want)
			}
		}
	}
	UseAsm(true)
}
