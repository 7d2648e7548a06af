package tensor

import (
	"fmt"

	k "github.com/switchyard-llm/switchyard/pkg/tensor/internal/kernels"
)

// Matrix is a row-major weight matrix stored in a ggml type: Rows rows of
// Cols elements (ggml's ne1 × ne0). Data is not copied; it may be a view
// into a memory-mapped file.
type Matrix struct {
	Type       DType
	Rows, Cols int
	Data       []byte
}

// NewMatrix checks that data holds exactly rows × cols elements of t.
func NewMatrix(t DType, rows, cols int, data []byte) (Matrix, error) {
	if !t.Supported() {
		return Matrix{}, fmt.Errorf("tensor: type %s has no kernel", t)
	}
	if err := t.ValidRow(cols); err != nil {
		return Matrix{}, err
	}
	if want := rows * t.RowBytes(cols); len(data) != want {
		return Matrix{}, fmt.Errorf("tensor: %d×%d %s matrix needs %d bytes, got %d", rows, cols, t, want, len(data))
	}
	return Matrix{Type: t, Rows: rows, Cols: cols, Data: data}, nil
}

// Row returns the bytes of row i.
func (m Matrix) Row(i int) []byte {
	rb := m.Type.RowBytes(m.Cols)
	return m.Data[i*rb : (i+1)*rb]
}

// DequantizeRow writes row i as float32 into dst[:Cols].
func (m Matrix) DequantizeRow(dst []float32, i int) { Dequantize(m.Type, dst, m.Row(i), m.Cols) }

// Bytes is the size of the matrix's data.
func (m Matrix) Bytes() int { return len(m.Data) }

// kernel pairs a weight type with the type ggml converts activations to
// before multiplying (its vec_dot_type) and the dot product of the two.
type kernel struct {
	act DType
	dot func(w, a []byte, n int) float32
}

var kernelTable = map[DType]kernel{
	F32:  {F32, func(w, a []byte, n int) float32 { return k.DotF32(asF32(w), asF32(a)) }},
	F16:  {F16, func(w, a []byte, n int) float32 { return k.DotF16(asU16(w), asU16(a)) }},
	BF16: {BF16, func(w, a []byte, n int) float32 { return k.DotBF16(asU16(w), asU16(a)) }},
	Q8_0: {Q8_0, func(w, a []byte, n int) float32 { return k.DotQ8_0(w, a, n/QK) }},
	Q4_0: {Q8_0, func(w, a []byte, n int) float32 { return k.DotQ4_0(w, a, n/QK) }},
	Q4_K: {Q8_K, func(w, a []byte, n int) float32 { return k.DotQ4_K(w, a, n/QKK) }},
	Q6_K: {Q8_K, func(w, a []byte, n int) float32 { return k.DotQ6_K(w, a, n/QKK) }},
}

// ActivationType is the type activations are converted to before they are
// multiplied with a matrix of type t, as ggml's CPU backend does.
func (t DType) ActivationType() DType { return kernelTable[t].act }

// MatVec computes dst[r] = row_r · x for every row (dst has Rows elements,
// x has Cols).
func (m Matrix) MatVec(p *Pool, dst, x []float32) { m.MatMul(p, dst, x, 1) }

// MatMul multiplies n activation rows x (n × Cols, row-major) with the
// matrix: dst[i*Rows+r] = row_r · x_i. Each weight row is read once for the
// whole batch. Work is split by weight rows over the pool (nil: Default).
func (m Matrix) MatMul(p *Pool, dst, x []float32, n int) {
	if len(x) < n*m.Cols || len(dst) < n*m.Rows {
		panic(fmt.Sprintf("tensor: MatMul %d×%d with %d rows: x has %d, dst %d", m.Rows, m.Cols, n, len(x), len(dst)))
	}
	kn := kernelTable[m.Type]
	var act []byte
	if kn.act == F32 {
		act = F32Bytes(x[:n*m.Cols])
	} else {
		act = make([]byte, 0, n*kn.act.RowBytes(m.Cols))
		for i := range n {
			act = Quantize(kn.act, act, x[i*m.Cols:(i+1)*m.Cols])
		}
	}
	arb, wrb := kn.act.RowBytes(m.Cols), m.Type.RowBytes(m.Cols)
	// Aim for chunks of at least ~64 KiB of weights so that small matrices
	// are not split into tasks smaller than their scheduling cost.
	grain := max(1, (64<<10)/max(wrb, 1))
	p.For(m.Rows, grain, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			w := m.Data[r*wrb : (r+1)*wrb]
			for i := range n {
				dst[i*m.Rows+r] = kn.dot(w, act[i*arb:(i+1)*arb], m.Cols)
			}
		}
	})
}

// Dot returns Σ a[i]·b[i] (len(b) ≥ len(a)), summed in ggml's order.
func Dot(a, b []float32) float32 { return k.DotF32(a, b) }

// Axpy adds a·x to dst (len(dst) ≥ len(x)).
func Axpy(dst, x []float32, a float32) { k.Axpy(dst, x, a) }
