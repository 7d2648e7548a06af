package tensor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkMatVec multiplies one token row by a matrix of each type
// larger than the caches and reports GB/s of weights read. Compare with
// BenchmarkMemRead, measured in the same run. The quantised 16384×4096
// matrix is repeated down the rows until it is over twice the last-level
// cache (this VM's L3 is 480 MiB: a lone 16384×4096 matrix stays in it,
// and the figure is then the kernel's arithmetic, not the stream).
func BenchmarkMatVec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 16384, 4096
	x := randRow(r, cols, 1)
	// The weights are made in the sub-benchmark, so that -bench picks
	// the types it quantises. A type with a packed layout (Pack) is run
	// packed, as a model's matrices are, and unpacked ("-avx2").
	w := randRow(r, rows*cols, 0.05)
	for _, dt := range computeTypes {
		var m Matrix
		layout := func(name string, packed bool) {
			b.Run(name, func(b *testing.B) {
				if m.Data == nil {
					m = beyondCaches(b, dt, rows, cols, Quantize(dt, nil, w))
				}
				mm := m
				if packed {
					mm = m.Pack()
				}
				dst := make([]float32, m.Rows)
				b.SetBytes(int64(len(m.Data))) // the type's bytes, whatever the layout
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

// beyondCaches is the rows×cols matrix data repeated down the rows until
// it holds more than twice the last-level cache's bytes.
func beyondCaches(b *testing.B, dt DType, rows, cols int, data []byte) Matrix {
	reps := 2*lastLevelCache()/len(data) + 1
	big := make([]byte, 0, reps*len(data))
	for range reps {
		big = append(big, data...)
	}
	m, err := NewMatrix(dt, reps*rows, cols, big)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// lastLevelCache is the size of the largest CPU cache Linux reports, or
// 64 MiB where it reports none.
func lastLevelCache() int {
	largest := 64 << 20
	paths, _ := filepath.Glob("/sys/devices/system/cpu/cpu0/cache/index*/size")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		unit := 1
		switch {
		case strings.HasSuffix(s, "K"):
			unit, s = 1<<10, strings.TrimSuffix(s, "K")
		case strings.HasSuffix(s, "M"):
			unit, s = 1<<20, strings.TrimSuffix(s, "M")
		}
		if n, err := strconv.Atoi(s); err == nil && n*unit > largest {
			largest = n * unit
		}
	}
	return largest
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
