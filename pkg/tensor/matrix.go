package tensor

import (
	"fmt"
	"slices"

	"github.com/switchyard-llm/switchyard/pkg/freelist"
	"github.com/switchyard-llm/switchyard/pkg/offheap"
	k "github.com/switchyard-llm/switchyard/pkg/tensor/internal/kernels"
)

// Matrix is a row-major weight matrix stored in a ggml type: Rows rows of
// Cols elements (ggml's ne1 × ne0). Data is not copied; it may be a view
// into a memory-mapped file. A packed matrix (see Pack) holds its weights
// in another layout only, and its Data is nil.
type Matrix struct {
	Type       DType
	Rows, Cols int
	Data       []byte
	// r16 is the weights in the row-interleaved layout of the VNNI
	// kernels (Pack), or nil.
	r16 []byte
	// hold owns r16's memory, outside the Go heap: products keep it
	// reachable (MatMulAll's Products) while they read r16.
	hold *offheap.Hold
	// expert is whether the rows are one expert's (Expert).
	expert bool
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

// Row returns the bytes of row i of an unpacked matrix.
func (m Matrix) Row(i int) []byte {
	rb := m.Type.RowBytes(m.Cols)
	return m.Data[i*rb : (i+1)*rb]
}

// DequantizeRow writes row i as float32 into dst[:Cols].
func (m Matrix) DequantizeRow(dst []float32, i int) { Dequantize(m.Type, dst, m.Row(i), m.Cols) }

// Bytes is the size of the matrix's weights, in whichever layout.
func (m Matrix) Bytes() int { return len(m.Data) + len(m.r16) }

// Expert returns m marked as one expert's weights. llama.cpp multiplies
// those a token at a time (mul_mat_id and the type's vec_dot), and a dense
// matrix's batches of two tokens or more with llamafile's tinyBLAS where
// it has a kernel for the type. Only for BF16 does the difference show
// against the goldens: pooled |Δlogit| p50/p99 of 3.8e-4/6.3e-3 with
// ggml's AVX2 order, 1.2e-6/4.8e-3 with vec_dot's AVX512-BF16 order
// throughout, 4.2e-7/1.2e-4 with each where llama.cpp uses it
// (kernels.DotBF16 and DotBF16Gemm). The other types keep vec_dot's. A matrix keeps one order for every
// batch, so that a token's numbers never depend on what it is batched
// with: a BF16 expert's is vec_dot's, a dense BF16 matrix's tinyBLAS's
// where tinyBLAS takes it (rows of a multiple of 32 elements, a multiple
// of 4 rows), and vec_dot's elsewhere, as llama.cpp falls back.
func (m Matrix) Expert() Matrix {
	m.expert = true
	return m
}

// kernel is the kernel of m's products.
func (m Matrix) kernel() kernel {
	if m.Type == BF16 && !m.expert && m.Cols%32 == 0 && m.Rows%4 == 0 {
		return bf16Gemm
	}
	return kernelTable[m.Type]
}

// Packed reports whether Pack laid the weights out anew (and dropped
// Data).
func (m Matrix) Packed() bool { return m.r16 != nil }

// Pack returns m with its data laid out for this machine's fastest
// kernels, where they want one: Q8_0, Q4_K, Q5_K, Q6_K and IQ4_XS
// matrices of 16 rows or more, on CPUs with AVX-512 VNNI, get their rows
// interleaved 16 at a time, so that one instruction multiplies a token
// with 16 rows at once.
// The packed matrix no longer refers to the original bytes (Data is nil),
// so they can be freed, or their pages released when mapped: weights are
// held once. The packed copy lives outside the Go heap (package offheap),
// given back when the last copy of the Matrix is collected. K-quant
// products are bit-identical either way; packed Q8_0 products sum each
// block's integer dot product before scaling it, an order that differs
// from the unpacked kernels' in the last bits, so a model packs all its
// matrices or none.
func (m Matrix) Pack() Matrix {
	if !k.HasR16() || m.Rows < k.R16 || m.r16 != nil {
		return m
	}
	var pack func(dst, w []byte, rows, nb int) []byte
	nb := m.Cols / QKK
	group := 0 // bytes of a packed group of rows
	switch m.Type {
	case Q8_0:
		nb = m.Cols / QK
		pack, group = k.PackQ8_0R16, k.R16Q8Bytes(nb)
	case Q4_K:
		pack, group = k.PackQ4_KR16, nb*k.R16Q4K
	case Q6_K:
		pack, group = k.PackQ6_KR16, nb*k.R16Q6K
	case Q5_K:
		pack, group = k.PackQ5_KR16, nb*k.R16Q5K
	case IQ4_XS:
		pack, group = k.PackIQ4_XSR16, nb*k.R16IQ4XS
	default:
		return m
	}
	buf, hold := offheap.Alloc((m.Rows + k.R16 - 1) / k.R16 * group)
	m.r16, m.hold = pack(buf[:0], m.Data, m.Rows, nb), hold
	m.Data = nil
	return m
}

// kernel pairs a weight type with the type ggml converts activations to
// before multiplying (its vec_dot_type) and the dot product of the two.
type kernel struct {
	act DType
	dot func(w, a []byte, n int) float32
	// dotN, where there is one, is dot with rows (2 to 4) activation rows
	// spaced by stride bytes, bit-identical to separate dot calls.
	dotN func(w, a []byte, stride, n, rows int) [4]float32
	// gemm, where there is one, is dotN over nrows contiguous weight rows
	// at once, writing token c's product with row r to dst[c*dstride+r];
	// ap are the activations' block scales as pack lays them out.
	gemm func(w, a []byte, stride, n, rows, nrows int, ap []byte, dst []float32, dstride int)
	pack func(dst, a []byte, stride, n, rows int) []byte
}

var kernelTable = map[DType]kernel{
	F32: {act: F32, dot: func(w, a []byte, n int) float32 { return k.DotF32(asF32(w), asF32(a)) },
		dotN: func(w, a []byte, stride, n, rows int) (o [4]float32) {
			k.DotF32xN(asF32(w), asF32(a), stride/4, rows, &o)
			return o
		}},
	F16: {act: F16, dot: func(w, a []byte, n int) float32 { return k.DotF16(asU16(w), asU16(a)) },
		dotN: func(w, a []byte, stride, n, rows int) (o [4]float32) {
			k.DotF16xN(asU16(w), asU16(a), stride/2, rows, &o)
			return o
		}},
	BF16: {act: BF16, dot: func(w, a []byte, n int) float32 { return k.DotBF16(asU16(w), asU16(a)) }},
	Q8_0: {act: Q8_0, dot: func(w, a []byte, n int) float32 { return k.DotQ8_0(w, a, n/QK) },
		gemm: func(w, a []byte, stride, n, rows, nrows int, ap []byte, dst []float32, dstride int) {
			k.DotQ8_0xN(w, a, stride, n/QK, rows, nrows, ap, dst, dstride)
		},
		pack: func(dst, a []byte, stride, n, rows int) []byte {
			return k.Q8_0Pack(dst, a, stride, n/QK, rows)
		}},
	Q4_0: {act: Q8_0, dot: func(w, a []byte, n int) float32 { return k.DotQ4_0(w, a, n/QK) },
		dotN: func(w, a []byte, stride, n, rows int) (o [4]float32) {
			k.DotQ4_0xN(w, a, stride, n/QK, rows, &o)
			return o
		}},
	Q4_K: {act: Q8_K, dot: func(w, a []byte, n int) float32 { return k.DotQ4_K(w, a, n/QKK) },
		dotN: func(w, a []byte, stride, n, rows int) (o [4]float32) {
			k.DotQ4_KxN(w, a, stride, n/QKK, rows, &o)
			return o
		}},
	Q6_K: {act: Q8_K, dot: func(w, a []byte, n int) float32 { return k.DotQ6_K(w, a, n/QKK) },
		dotN: func(w, a []byte, stride, n, rows int) (o [4]float32) {
			k.DotQ6_KxN(w, a, stride, n/QKK, rows, &o)
			return o
		}},
	Q4_1:   blockKernel(Q8_1, QK, k.DotQ4_1, k.DotQ4_1xN),
	Q5_0:   blockKernel(Q8_0, QK, k.DotQ5_0, k.DotQ5_0xN),
	Q5_1:   blockKernel(Q8_1, QK, k.DotQ5_1, k.DotQ5_1xN),
	IQ4_NL: blockKernel(Q8_0, QK, k.DotIQ4_NL, k.DotIQ4_NLxN),
	MXFP4:  blockKernel(Q8_0, QK, k.DotMXFP4, k.DotMXFP4xN),
	Q2_K:   blockKernel(Q8_K, QKK, k.DotQ2_K, k.DotQ2_KxN),
	Q3_K:   blockKernel(Q8_K, QKK, k.DotQ3_K, k.DotQ3_KxN),
	Q5_K:   blockKernel(Q8_K, QKK, k.DotQ5_K, k.DotQ5_KxN),
	IQ4_XS: blockKernel(Q8_K, QKK, k.DotIQ4_XS, k.DotIQ4_XSxN),
}

// bf16Gemm is the kernel of a dense BF16 matrix (Matrix.Expert).
var bf16Gemm = kernel{act: BF16, dot: func(w, a []byte, n int) float32 { return k.DotBF16Gemm(asU16(w), asU16(a)) }}

// blockKernel is the kernel of a block type whose activations are of
// type act, from its dot product and its 2-to-4-row product of blocks of
// bs elements.
func blockKernel(act DType, bs int, dot func(w, x []byte, nb int) float32, dotN func(w, x []byte, stride, nb, rows int, out *[4]float32)) kernel {
	return kernel{act: act,
		dot: func(w, a []byte, n int) float32 { return dot(w, a, n/bs) },
		dotN: func(w, a []byte, stride, n, rows int) (o [4]float32) {
			dotN(w, a, stride, n/bs, rows, &o)
			return o
		}}
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
	MatMulAll(p, []Product{{M: m, Dst: dst, X: x, N: n}})
}

// Product is one matrix product of MatMulAll: Dst = M · X for N rows.
type Product struct {
	M      Matrix
	Dst, X []float32
	N      int
}

// MatMulAll computes several products as one parallel loop over all their
// weight rows, so that a layer's independent products (queries, keys and
// values; every expert's gate and up) cost one synchronisation instead of
// one each. Products that share X convert it to their activation type once.
// In steady state it allocates nothing: its working state is pooled.
func MatMulAll(p *Pool, ps []Product) {
	m := matmuls.Get()
	m.ps = append(m.ps[:0], ps...)
	m.prep = slices.Grow(m.prep[:0], len(ps))[:len(ps)]
	total, need, bytes := 0, 0, 0
	for i := range m.ps {
		pr, pp := &m.ps[i], &m.prep[i]
		mt := pr.M
		if len(pr.X) < pr.N*mt.Cols || len(pr.Dst) < pr.N*mt.Rows {
			panic(fmt.Sprintf("tensor: MatMul %d×%d with %d rows: x has %d, dst %d", mt.Rows, mt.Cols, pr.N, len(pr.X), len(pr.Dst)))
		}
		kn := mt.kernel()
		*pp = prepared{kn: kn, arb: kn.act.RowBytes(mt.Cols), wrb: mt.Type.RowBytes(mt.Cols), start: total, same: -1, off: -1, units: mt.Rows}
		if mt.r16 != nil {
			pp.units = (mt.Rows + k.R16 - 1) / k.R16
		}
		for j := range i { // reuse an earlier conversion of the same rows
			q := &m.ps[j]
			if m.prep[j].kn.act == kn.act && q.N == pr.N && q.M.Cols == mt.Cols && len(q.X) > 0 && &q.X[0] == &pr.X[0] {
				pp.same = j
				break
			}
		}
		if pp.same < 0 && kn.act != F32 {
			pp.off = need
			need += pr.N * pp.arb
		}
		total += pp.units
		bytes += mt.Bytes()
	}
	if cap(m.act) < need {
		m.act = make([]byte, need)
	}
	for i := range m.ps {
		pr, pp := &m.ps[i], &m.prep[i]
		switch {
		case pp.same >= 0:
			pp.act = m.prep[pp.same].act
		case pp.off < 0:
			pp.act = F32Bytes(pr.X[:pr.N*pr.M.Cols])
		default:
			a := m.act[pp.off : pp.off : pp.off+pr.N*pp.arb]
			for r := range pr.N {
				a = Quantize(pp.kn.act, a, pr.X[r*pr.M.Cols:(r+1)*pr.M.Cols])
			}
			pp.act = a
		}
	}
	m.packed = m.packed[:0]
	for i := range m.ps {
		pr, pp := &m.ps[i], &m.prep[i]
		switch {
		case pr.M.r16 != nil && pr.M.Type != Q8_0: // K-quants take Q8_K rows as they are
		case pr.M.r16 != nil:
			pp.packOff = len(m.packed)
			m.packed = k.PackQ8_0R16Act(m.packed, pp.act, pp.arb, pr.M.Cols/QK, pr.N)
			pp.packEnd = len(m.packed)
		case pp.kn.pack != nil:
			pp.packOff = len(m.packed)
			m.packed = pp.kn.pack(m.packed, pp.act, pp.arb, pr.M.Cols, pr.N)
			pp.packEnd = len(m.packed)
		}
	}
	// Chunks of at least ~64 KiB of weights, so that small products are
	// not split into tasks smaller than their scheduling cost.
	grain := max(1, total*(64<<10)/max(bytes, 1))
	p.Run(total, grain, m)
	clear(m.ps) // drop the caller's buffers
	clear(m.prep)
	matmuls.Put(m)
}

// matmul is MatMulAll's working state: the products, each one's kernel
// and converted activations.
type matmul struct {
	ps     []Product
	prep   []prepared
	act    []byte // converted activations of every product
	packed []byte // the same packed for kernel.gemm or the R16 kernels
}

type prepared struct {
	kn       kernel
	act      []byte
	arb, wrb int // activation and weight row bytes
	start    int // first global unit (a row, or a group of R16 rows when packed)
	units    int // rows, or groups of rows when packed
	same     int // index of an earlier product with the same activations, or -1
	off      int // offset of the converted activations in matmul.act, or -1
	packOff  int // the activations packed for kernel.gemm or R16 are
	packEnd  int // matmul.packed[packOff:packEnd]
}

var matmuls freelist.List[matmul]

// Range computes global units [lo, hi) of every product.
func (m *matmul) Range(lo, hi int) {
	for i := range m.ps {
		pp, pr := &m.prep[i], &m.ps[i]
		a, b := max(lo, pp.start)-pp.start, min(hi, pp.start+pp.units)-pp.start
		if a >= b {
			continue
		}
		if pr.M.r16 != nil {
			m.r16(pp, pr, a, b)
			continue
		}
		if pp.kn.gemm != nil {
			m.gemm(pp, pr, a, b)
			continue
		}
		m.rows(pp, pr, a, b)
	}
}

// gemmRows is how many weight rows gemm takes at a time: few enough to
// stay in the L1 cache while every group of tokens goes over them.
const gemmRows = 16

// rows computes weight rows [a, b) of a product with the dot kernels:
// gemmRows weight rows at a time, each group of up to four tokens (dotN,
// where the type has one) going over them while its activations stay in
// the L1 cache, rather than every token's going over each row.
func (m *matmul) rows(pp *prepared, pr *Product, a, b int) {
	for r0 := a; r0 < b; r0 += gemmRows {
		r1 := min(b, r0+gemmRows)
		t := 0
		for pp.kn.dotN != nil && t+1 < pr.N {
			n := min(4, pr.N-t)
			x := pp.act[t*pp.arb : (t+n)*pp.arb]
			for r := r0; r < r1; r++ {
				o := pp.kn.dotN(pr.M.Data[r*pp.wrb:(r+1)*pp.wrb], x, pp.arb, pr.M.Cols, n)
				for c, v := range o[:n] {
					pr.Dst[(t+c)*pr.M.Rows+r] = v
				}
			}
			t += n
		}
		for ; t < pr.N; t++ {
			x := pp.act[t*pp.arb : (t+1)*pp.arb]
			for r := r0; r < r1; r++ {
				pr.Dst[t*pr.M.Rows+r] = pp.kn.dot(pr.M.Data[r*pp.wrb:(r+1)*pp.wrb], x, pr.M.Cols)
			}
		}
	}
}

// gemm computes weight rows [a, b) of a product with the many-row kernel,
// gemmRows at a time, for every group of up to four tokens.
func (m *matmul) gemm(pp *prepared, pr *Product, a, b int) {
	ap := m.packed[pp.packOff:pp.packEnd]
	prb := len(ap) / pr.N // packed bytes a row
	for r0 := a; r0 < b; r0 += gemmRows {
		r1 := min(b, r0+gemmRows)
		w := pr.M.Data[r0*pp.wrb : r1*pp.wrb]
		for t := 0; t < pr.N; {
			rows := min(4, pr.N-t)
			pp.kn.gemm(w, pp.act[t*pp.arb:(t+rows)*pp.arb], pp.arb, pr.M.Cols, rows, r1-r0,
				ap[t*prb:(t+rows)*prb], pr.Dst[t*pr.M.Rows+r0:], pr.M.Rows)
			t += rows
		}
	}
}

// kQuantR16 is, per K-quant type, its packed kernel and the bytes of a
// packed group of rows and super-block.
var kQuantR16 = map[DType]struct {
	dot   func(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int)
	bytes int
}{
	Q4_K:   {k.DotQ4_KR16, k.R16Q4K},
	Q6_K:   {k.DotQ6_KR16, k.R16Q6K},
	Q5_K:   {k.DotQ5_KR16, k.R16Q5K},
	IQ4_XS: {k.DotIQ4_XSR16, k.R16IQ4XS},
}

// r16 computes row groups [a, b) of a packed product, for every group of
// tokens its kernel takes at once.
func (m *matmul) r16(pp *prepared, pr *Product, a, b int) {
	if kq, ok := kQuantR16[pr.M.Type]; ok {
		nb := pr.M.Cols / QKK
		for g := a; g < b; g++ {
			r0 := g * k.R16
			wp := pr.M.r16[g*nb*kq.bytes : (g+1)*nb*kq.bytes]
			valid := min(k.R16, pr.M.Rows-r0)
			for t := 0; t < pr.N; t += 4 {
				tokens := min(4, pr.N-t)
				kq.dot(wp, pp.act[t*pp.arb:], nb, pp.arb, tokens, pr.Dst[t*pr.M.Rows+r0:], pr.M.Rows, valid)
			}
		}
		return
	}
	xa := m.packed[pp.packOff:pp.packEnd]
	nb := pr.M.Cols / QK
	xs := nb * k.R16Q8Act  // bytes of a packed activation row
	gb := k.R16Q8Bytes(nb) // bytes of a packed group
	for g := a; g < b; g++ {
		r0 := g * k.R16
		wp := pr.M.r16[g*gb : (g+1)*gb]
		valid := min(k.R16, pr.M.Rows-r0)
		for t := 0; t < pr.N; t += 8 {
			tokens := min(8, pr.N-t)
			k.DotQ8_0R16(wp, xa[t*xs:], nb, xs, tokens, pr.Dst[t*pr.M.Rows+r0:], pr.M.Rows, valid)
		}
	}
}

// DotRows sets dst[j] = Σ_i q[i]·keys[j*stride+i] for every j: one query
// against many keys, each summed in ggml's order for float32 dot products.
func DotRows(dst, q, keys []float32, stride int) { k.DotRowsF32(dst, q, keys, stride) }

// AxpyRows adds w[j]·v[j*stride:j*stride+len(dst)] to dst for every j in
// order, each element with one fused multiply-add per j.
func AxpyRows(dst, v []float32, stride int, w []float32) { k.AxpyRowsF32(dst, v, stride, w) }

// ExpShift sets x[i] = e^(x[i]-shift), with ggml's approximation of e^x
// (within a few ulp; inputs clamped to ±87), as softmax needs it.
func ExpShift(x []float32, shift float32) { k.ExpShift(x, shift) }

// SwiGLU sets g[i] = silu(g[i])·u[i], silu(g) = g / (1 + e^-g), with
// ExpShift's e^x.
func SwiGLU(g, u []float32) { k.SwiGLU(g, u) }
