package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkMatVec streams a 16384×4096 matrix per op for each type (larger
// than the caches) and reports GB/s of weights read. Compare with
// BenchmarkMemRead, measured in the same run.
func BenchmarkMatVec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 16384, 4096
	x := randRow(r, cols, 1)
	dst := make([]float32, rows)
	// The weights are made in the sub-benchmark, so that -bench picks
	// the types it quantises. A type with a packed layout (Pack) is run
	// packed, as a model's matrices are, and unpacked ("-avx2").
	w := randRow(r, rows*cols, 0.05)
	for _, dt := range computeTypes {
		var m Matrix
		layout := func(name string, packed bool) {
			b.Run(name, func(b *testing.B) {
				if m.Data == nil {
					m, _ = NewMatrix(dt, rows, cols, Quantize(dt, nil, w))
				}
				mm := m
				if packed {
					mm = m.Pack()
				}
				b.SetBytes(int64(dt.RowBytes(cols) * rows)) // the type's bytes, whatever the layout
				for b.Loop() {
					mm.MatVec(nil, dst, x)
				}
			})
		}
		layout(dt.String(), true)
		if _, ok := kQuantR16[dt]; ok || dt == Q8_0 {
			layout(dt.String()+"-avx2", false)
		}
	}
}

// BenchmarkMatMul multiplies a batch of token rows (as prefill and an
// expert's routed tokens do) and reports GB/s of weights per batch.
func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	const rows, cols = 2048, 2048
	for _, n := range []int{8, 64} {
		x := randRow(r, n*cols, 1)
		dst := make([]float32, n*rows)
		for _, dt := range computeTypes {
			w := Quantize(dt, nil, randRow(r, rows*cols, 0.05))
			m, _ := NewMatrix(dt, rows, cols, w)
			m = m.Pack()
			b.Run(fmt.Sprintf("%s/batch%d", dt, n), func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					m.MatMul(nil, dst, x, n)
				}
			})
		}
	}
}

// BenchmarkMemRead sums a 256 MiB buffer on every core: the memory read
// bandwidth kernel figures are quoted against.
func BenchmarkMemRead(b *testing.B) {
	buf := make([]uint64, 32<<20)
	for i := range buf {
		buf[i] = uint64(i)
	}
	sums := make([]uint64, Default().Workers())
	b.SetBytes(int64(8 * len(buf)))
	for b.Loop() {
		Default().For(len(buf), 1<<16, func(lo, hi int) {
			var s0, s1, s2, s3 uint64
			for i := lo; i+4 <= hi; i += 4 {
				s0 += buf[i]
				s1 += buf[i+1]
				s2 += buf[i+2]
				s3 += buf[i+3]
			}
			sums[lo*len(sums)/len(buf)] = s0 + s1 + s2 + s3
		})
	}
}
