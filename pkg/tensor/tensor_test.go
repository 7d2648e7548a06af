package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	k "github.com/switchyard-llm/switchyard/pkg/tensor/internal/kernels"
)

func TestF16(t *testing.T) {
	// Every half value survives a round trip through float32.
	for h := range 1 << 16 {
		f := F16ToF32(uint16(h))
		if f != f { // NaN
			continue
		}
		if got := F32ToF16(f); got != uint16(h) {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)=%g) = %#04x", h, f, got)
		}
	}
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00}, {5.960464477539063e-08, 0x0001},
		{1 + 1.0/2048, 0x3c00},          // tie, rounds to even
		{1 + 3.0/2048, 0x3c02},          // tie, rounds to even (up)
		{2.980232238769531e-08, 0x0000}, // half the smallest subnormal: tie to even (zero)
		{float32(math.Inf(-1)), 0xfc00},
	}
	for _, c := range cases {
		if got := F32ToF16(c.in); got != c.want {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{{1, 0x3f80}, {-2, 0xc000}, {1 + 1.0/256, 0x3f80}, {1 + 3.0/256, 0x3f82}}
	for _, c := range cases {
		if got := F32ToBF16(c.in); got != c.want {
			t.Errorf("F32ToBF16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
		if back := BF16ToF32(c.want); F32ToBF16(back) != c.want {
			t.Errorf("BF16 %#04x does not round-trip", c.want)
		}
	}
}

func randRow(r *rand.Rand, n int, scale float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * scale
	}
	return x
}

var computeTypes = []DType{F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K,
	Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, Q2_K, Q3_K, Q5_K, IQ4_XS}

// TestQuantizeRoundTrip checks each type's error bound against its step.
func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// Relative RMS error bounds for Gaussian data.
	bound := map[DType]float64{F32: 0, F16: 1e-3, BF16: 8e-3, Q8_0: 0.01, Q4_0: 0.15, Q4_K: 0.15, Q6_K: 0.04,
		Q4_1: 0.15, Q5_0: 0.07, Q5_1: 0.07, IQ4_NL: 0.15, MXFP4: 0.25, Q2_K: 0.5, Q3_K: 0.3, Q5_K: 0.07, IQ4_XS: 0.15}
	for _, dt := range computeTypes {
		x := randRow(r, 1024, 1)
		q := Quantize(dt, nil, x)
		if len(q) != dt.RowBytes(len(x)) {
			t.Fatalf("%s: %d bytes, want %d", dt, len(q), dt.RowBytes(len(x)))
		}
		y := make([]float32, len(x))
		Dequantize(dt, y, q, len(x))
		var se, ss float64
		for i := range x {
			se += float64((x[i] - y[i]) * (x[i] - y[i]))
			ss += float64(x[i] * x[i])
		}
		if rel := math.Sqrt(se / ss); rel > bound[dt] {
			t.Errorf("%s: relative RMS error %.4f exceeds %.4f", dt, rel, bound[dt])
		}
	}
	// Zeros stay zeros in every type.
	for _, dt := range computeTypes {
		y := make([]float32, 256)
		Dequantize(dt, y, Quantize(dt, nil, make([]float32, 256)), 256)
		for i, v := range y {
			if v != 0 {
				t.Fatalf("%s: zero row dequantised to %g at %d", dt, v, i)
			}
		}
	}
}

// TestMatMul compares each type's product with a float64 product of the
// dequantised weights and the activations rounded to the activation type.
func TestMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := NewPool(3)
	defer p.Close()
	for _, dt := range computeTypes {
		for _, shape := range [][3]int{{1, 256, 1}, {7, 512, 1}, {33, 256, 5}, {130, 768, 3}} {
			rows, cols, n := shape[0], shape[1], shape[2]
			t.Run(fmt.Sprintf("%s/%dx%dx%d", dt, rows, cols, n), func(t *testing.T) {
				w := Quantize(dt, nil, randRow(r, rows*cols, 0.1))
				m, err := NewMatrix(dt, rows, cols, w)
				if err != nil {
					t.Fatal(err)
				}
				x := randRow(r, n*cols, 1)
				for _, lm := range layouts(m) {
					testMatMul(t, p, lm, m, x, n)
				}
			})
		}
	}
}

// layouts is m and, where this machine's kernels want one (Pack), m in
// its packed layout.
func layouts(m Matrix) []Matrix {
	if pm := m.Pack(); pm.r16 != nil {
		return []Matrix{m, pm}
	}
	return []Matrix{m}
}

// testMatMul checks m's product with the n rows of x against float64
// sums of the dequantised weights of ref (m unpacked) and activations.
func testMatMul(t *testing.T, p *Pool, m, ref Matrix, x []float32, n int) {
	t.Helper()
	dt, rows, cols := m.Type, m.Rows, m.Cols
	got := make([]float32, n*rows)
	m.MatMul(p, got, x, n)
	wf := make([]float32, cols)
	xr := make([]float32, cols)
	for i := range n {
		act := dt.ActivationType()
		xq := Quantize(act, nil, x[i*cols:(i+1)*cols])
		Dequantize(act, xr, xq, cols)
		for row := range rows {
			ref.DequantizeRow(wf, row)
			var want float64
			for c := range cols {
				want += float64(wf[c]) * float64(xr[c])
			}
			if act == Q8_1 { // Σ m·x is m·s, s = d·Σq stored in half precision
				want += q8_1MinTerm(ref.Row(row), xq, xr)
			}
			if d := math.Abs(float64(got[i*rows+row]) - want); d > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("packed=%v row %d token %d: got %g, want %g", m.r16 != nil, row, i, got[i*rows+row], want)
			}
		}
	}
}

// q8_1MinTerm is, for a row of Q4_1 or Q5_1 blocks w (m at bytes 2…3 of
// each) and its activations xq (Q8_1, s at bytes 2…3) decoded to xr,
// Σ m·s - Σ m·Σx: what the kernels' use of s (ggml's) adds to the float
// product of the decoded rows.
func q8_1MinTerm(w, xq []byte, xr []float32) float64 {
	wb := len(w) / (len(xr) / QK)
	var t float64
	for b := range len(xr) / QK {
		m := float64(F16ToF32(uint16(w[b*wb+2]) | uint16(w[b*wb+3])<<8))
		s := float64(F16ToF32(uint16(xq[b*36+2]) | uint16(xq[b*36+3])<<8))
		var sx float64
		for _, v := range xr[b*QK : b*QK+QK] {
			sx += float64(v)
		}
		t += m*s - m*sx
	}
	return t
}

func TestNewMatrixChecks(t *testing.T) {
	if _, err := NewMatrix(Q8_0, 2, 32, make([]byte, 10)); err == nil {
		t.Error("short data: got nil error")
	}
	if _, err := NewMatrix(Q8_0, 2, 33, make([]byte, 68)); err == nil {
		t.Error("row not a multiple of the block: got nil error")
	}
	if _, err := NewMatrix(IQ2_XXS, 1, 256, make([]byte, 66)); err == nil {
		t.Error("type without kernel: got nil error")
	}
}

func TestPoolCoversRange(t *testing.T) {
	p := NewPool(4)
	defer p.Close()
	for _, n := range []int{0, 1, 3, 4, 5, 100, 1001} {
		seen := make([]int32, n)
		p.For(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, s := range seen {
			if s != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, s)
			}
		}
	}
}

// Loops started from several goroutines at once share the workers; each
// still covers its range exactly once, in ranges of at least grain (the
// last excepted).
func TestPoolConcurrentLoops(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	fail := func(format string, a ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	for g := range 8 {
		wg.Go(func() {
			for it := range 200 {
				n, grain := 1+(g*37+it*11)%500, 1+it%7
				seen := make([]atomic.Int32, n)
				p.For(n, grain, func(lo, hi int) {
					if hi-lo < grain && hi != n {
						fail("range [%d,%d) under grain %d", lo, hi, grain)
					}
					for i := lo; i < hi; i++ {
						seen[i].Add(1)
					}
				})
				for i := range seen {
					if c := seen[i].Load(); c != 1 {
						fail("n=%d: index %d visited %d times", n, i, c)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
}

// A loop does not wait for a worker that is busy with another loop (as a
// node's is with the next node's loop when the roles of a cluster share a
// process): its caller runs the chunks the worker did not take and returns.
func TestPoolLoopDoesNotWaitForBusyWorker(t *testing.T) {
	p := NewPool(2) // the caller and one worker
	defer p.Close()
	started, release, first := make(chan struct{}, 2), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(first)
		p.For(2, 1, func(lo, hi int) { // two chunks: one each, both held
			started <- struct{}{}
			<-release
		})
	}()
	<-started
	<-started // the worker is inside the first loop
	second := make(chan struct{})
	go func() {
		defer close(second)
		seen := make([]int, 100)
		p.For(len(seen), 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Errorf("index %d visited %d times", i, c)
			}
		}
	}()
	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Error("a loop waited for the worker busy with another loop")
	}
	close(release)
	<-first
	<-second
}

// A token's product is the same bit for bit whatever batch it is in (the
// batched kernels sum in the single-row kernels' order), so a sequence
// decodes the same alone and among others.
func TestMatMulBatchEqualsRows(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 37, 512
	for _, dt := range computeTypes {
		m0, _ := NewMatrix(dt, rows, cols, Quantize(dt, nil, randRow(r, rows*cols, 0.1)))
		for _, m := range layouts(m0) {
			testBatchEqualsRows(t, r, m)
		}
	}
}

// testBatchEqualsRows checks that m's products with batches of 1 to 9
// tokens equal its products with each token alone, bit for bit.
func testBatchEqualsRows(t *testing.T, r *rand.Rand, m Matrix) {
	t.Helper()
	rows, cols := m.Rows, m.Cols
	for n := 1; n <= 9; n++ {
		x := randRow(r, n*cols, 1)
		got := make([]float32, n*rows)
		m.MatMul(nil, got, x, n)
		one := make([]float32, rows)
		for i := range n {
			m.MatVec(nil, one, x[i*cols:(i+1)*cols])
			for row, v := range one {
				if got[i*rows+row] != v {
					t.Fatalf("%s packed=%v batch of %d, token %d row %d: %g in the batch, %g alone", m.Type, m.r16 != nil, n, i, row, got[i*rows+row], v)
				}
			}
		}
	}
}

// TestPackOffHeap checks that a packed matrix holds its weights outside
// the Go heap, and that products read them after the collector has run
// with only the Matrix left to refer to them.
func TestPackOffHeap(t *testing.T) {
	if !k.HasR16() {
		t.Skip("this CPU has no AVX-512 VNNI: nothing is packed")
	}
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 4096, 4096 // 17 MiB of Q8_0
	w := Quantize(Q8_0, nil, randRow(r, rows*cols, 0.1))
	m, err := NewMatrix(Q8_0, rows, cols, w)
	if err != nil {
		t.Fatal(err)
	}
	x := randRow(r, cols, 1)
	want := make([]float32, rows)
	m.MatVec(nil, want, x)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pm := m.Pack()
	runtime.ReadMemStats(&after)
	if !pm.Packed() {
		t.Fatal("not packed")
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > int64(pm.Bytes())/8 {
		t.Errorf("packing %d bytes grew the Go heap by %d", pm.Bytes(), grew)
	}
	runtime.GC()
	runtime.GC()
	got := make([]float32, rows)
	pm.MatVec(nil, got, x)
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-3*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("row %d: packed %g, unpacked %g", i, got[i], want[i])
		}
	}
}
