package tensor_test

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// The block decoders read bytes from files: each is fuzzed from real
// blocks (llama-quantize's, from the reference models) or, for types no
// reference model holds, from the package's own quantiser. Any bytes
// decode without a panic; where they decode to finite values, the matrix
// kernels' product with an activation row (which decodes the blocks its
// own way) equals the float64 product of the decoded row.

func FuzzDecodeQ4_1(f *testing.F)   { fuzzDecode(f, tensor.Q4_1) }
func FuzzDecodeQ5_0(f *testing.F)   { fuzzDecode(f, tensor.Q5_0) }
func FuzzDecodeQ5_1(f *testing.F)   { fuzzDecode(f, tensor.Q5_1) }
func FuzzDecodeIQ4_NL(f *testing.F) { fuzzDecode(f, tensor.IQ4_NL) }
func FuzzDecodeMXFP4(f *testing.F)  { fuzzDecode(f, tensor.MXFP4) }
func FuzzDecodeQ2_K(f *testing.F)   { fuzzDecode(f, tensor.Q2_K) }
func FuzzDecodeQ3_K(f *testing.F)   { fuzzDecode(f, tensor.Q3_K) }
func FuzzDecodeQ5_K(f *testing.F)   { fuzzDecode(f, tensor.Q5_K) }
func FuzzDecodeIQ4_XS(f *testing.F) { fuzzDecode(f, tensor.IQ4_XS) }

// realBlocks returns runs of up to four blocks of type t from the first
// tensor of that type in each reference model: the start, the middle and
// the end of the tensor.
func realBlocks(t testing.TB, dt tensor.DType) [][]byte {
	files, _ := filepath.Glob("../../testdata/models/small-kquant-*.gguf")
	var seeds [][]byte
	for _, p := range files {
		f, err := gguf.Open(p, gguf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range f.Tensors {
			if ti.Type != dt {
				continue
			}
			data, err := f.TensorData(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			bb := dt.BlockBytes()
			nb := len(data) / bb
			for _, at := range []int{0, nb / 2, max(0, nb-4)} {
				seeds = append(seeds, append([]byte(nil), data[at*bb:min(nb, at+4)*bb]...))
			}
			break
		}
		f.Close()
	}
	return seeds
}

func fuzzDecode(f *testing.F, dt tensor.DType) {
	seeds := realBlocks(f, dt)
	if len(seeds) == 0 { // no reference model holds dt: the quantiser's blocks
		x := make([]float32, 4*dt.BlockSize())
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.37) * (1 + float64(i%7)))
		}
		seeds = append(seeds, tensor.Quantize(dt, nil, x))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	bb, bs := dt.BlockBytes(), dt.BlockSize()
	f.Fuzz(func(t *testing.T, data []byte) {
		nb := min(len(data)/bb, 8)
		if nb == 0 {
			return
		}
		data, n := data[:nb*bb], nb*bs
		y := make([]float32, n)
		tensor.Dequantize(dt, y, data, n)
		for _, v := range y {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e30 {
				return // scales out of range: the products are not comparable
			}
		}
		m, err := tensor.NewMatrix(dt, 1, n, data)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Sin(float64(i) * 0.7))
		}
		got := make([]float32, 1)
		m.MatVec(nil, got, x)
		act := dt.ActivationType()
		xq := tensor.Quantize(act, nil, x)
		xr := make([]float32, n)
		tensor.Dequantize(act, xr, xq, n)
		var want, mag float64
		for i := range y {
			want += float64(y[i]) * float64(xr[i])
			mag += math.Abs(float64(y[i]) * float64(xr[i]))
		}
		if act == tensor.Q8_1 { // the kernels take Σx from the blocks' s, in half precision
			for b := range nb {
				mb := float64(tensor.F16ToF32(binary.LittleEndian.Uint16(data[b*bb+2:])))
				s := float64(tensor.F16ToF32(binary.LittleEndian.Uint16(xq[b*36+2:])))
				var sx float64
				for _, v := range xr[b*bs : b*bs+bs] {
					sx += float64(v)
				}
				want += mb*s - mb*sx
				mag += math.Abs(mb * s)
			}
		}
		if d := math.Abs(float64(got[0]) - want); d > 1e-5*mag+1e-30 {
			t.Fatalf("%s, %d blocks %x: product %g, float64 product of the decoded row %g", dt, nb, data, got[0], want)
		}
	})
}
