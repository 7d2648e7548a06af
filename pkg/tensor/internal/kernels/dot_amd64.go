//go:build amd64 && !noasm

package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"golang.org/x/sys/cpu"
)

// useAsm selects the AVX2/FMA/F16C kernels; it is decided once from the
// CPU's features and can be switched off (UseAsm) to compare with Go.
// useVNNI is whether the CPU has AVX-512 VNNI too, for the kernels of
// packed weights (HasR16).
var (
	useAsm  = hasAVX2()
	useVNNI = useAsm && hasVNNI()
)

func hasAVX2() bool {
	return cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C && cpu.X86.HasBMI2
}

func hasVNNI() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI
}

// UseAsm turns the assembly kernels on or off (if the CPU has them) and
// returns whether they were on. Not safe while kernels run.
func UseAsm(on bool) bool {
	prev := useAsm
	useAsm = on && hasAVX2()
	useVNNI = useAsm && hasVNNI()
	return prev
}

// DotF32 returns Σ a[i]·b[i] over len(a) elements (len(b) ≥ len(a)).
func DotF32(a, b []float32) float32 {
	if !useAsm {
		return dotF32Generic(a, b)
	}
	b = b[:len(a)]
	s := float64(dotF32AVX2(a, b))
	for i := len(a) &^ 31; i < len(a); i++ {
		s += float64(a[i] * b[i])
	}
	return float32(s)
}

// DotF16 returns Σ a[i]·b[i] for half-precision rows, accumulated in float32.
func DotF16(a, b []uint16) float32 {
	if !useAsm {
		return dotF16Generic(a, b)
	}
	b = b[:len(a)]
	s := float64(dotF16AVX2(a, b))
	for i := len(a) &^ 31; i < len(a); i++ {
		s += float64(f16[a[i]] * f16[b[i]])
	}
	return float32(s)
}

// DotF32xN computes DotF32 of one weight row w with rows (2 to 4)
// activation rows x[c*stride:] into out[:rows], bit-identical to separate
// DotF32 calls but loading each weight element once for up to three rows.
func DotF32xN(w, x []float32, stride, rows int, out *[4]float32) {
	if !useAsm {
		dotxNGeneric(dotF32Generic, w, x, stride, rows, out)
		return
	}
	dotxN(w, x, stride, rows, out, dotF32x2AVX2, dotF32x3AVX2, func(a, b float32) float32 { return a * b })
}

// DotF16xN is DotF32xN for half-precision rows (DotF16).
func DotF16xN(w, x []uint16, stride, rows int, out *[4]float32) {
	if !useAsm {
		dotxNGeneric(dotF16Generic, w, x, stride, rows, out)
		return
	}
	dotxN(w, x, stride, rows, out, dotF16x2AVX2, dotF16x3AVX2, func(a, b uint16) float32 { return f16[a] * f16[b] })
}

// floatxN is a two- or three-row float kernel.
type floatxN[T float32 | uint16] func(w, x []T, stride, n int, out *[4]float32)

// dotxN runs a float row type's batched kernels over rows 2 to 4 (four as
// two pairs), then adds each row's tail in float64 as the single-row
// wrappers do; term is one tail element's product.
func dotxN[T float32 | uint16](w, x []T, stride, rows int, out *[4]float32, x2, x3 floatxN[T], term func(a, b T) float32) {
	n := len(w)
	_ = x[:(rows-1)*stride+n] // bounds: the assembly does not check
	if stride < n {
		panic("kernels: dotxN rows overlap")
	}
	switch rows {
	case 2:
		x2(w, x, stride, n, out)
	case 3:
		x3(w, x, stride, n, out)
	case 4:
		var hi [4]float32
		x2(w, x, stride, n, out)
		x2(w, x[2*stride:], stride, n, &hi)
		out[2], out[3] = hi[0], hi[1]
	default:
		panic("kernels: dotxN takes 2 to 4 rows")
	}
	for c := range out[:rows] {
		s, xc := float64(out[c]), x[c*stride:]
		for i := n &^ 31; i < n; i++ {
			s += float64(term(w[i], xc[i]))
		}
		out[c] = float32(s)
	}
}

// DotQ8_0 returns the dot product of nb Q8_0 weight blocks w with nb Q8_0
// activation blocks x: Σ_b d_w·d_x·Σ q_w·q_x.
func DotQ8_0(w, x []byte, nb int) float32 {
	if !useAsm {
		return dotQ8_0Generic(w, x, nb)
	}
	_, _ = w[:nb*34], x[:nb*34] // bounds: the assembly does not check
	return dotQ8_0AVX2(w, x, nb)
}

// DotQ8_0xN computes DotQ8_0 of nrows weight rows w (contiguous) with
// rows (1 to 4) activation rows x[c*stride:] into dst[c*dstride+r],
// bit-identical to separate DotQ8_0 calls but loading each weight block
// once. xd is the activations' block scales as Q8_0Pack packs them.
func DotQ8_0xN(w, x []byte, stride, nb, rows, nrows int, xd []byte, dst []float32, dstride int) {
	if !useAsm {
		dotQ8_0xNGeneric(w, x, stride, nb, rows, nrows, dst, dstride)
		return
	}
	if nrows == 0 {
		return
	}
	if rows < 1 || rows > 4 {
		panic("kernels: DotQ8_0xN takes 1 to 4 rows")
	}
	// bounds: the assembly does not check
	_, _, _, _ = w[:nrows*nb*34], x[:(rows-1)*stride+nb*34], xd[:4*rows*nb], dst[(rows-1)*dstride+nrows-1]
	if stride < nb*34 {
		panic("kernels: DotQ8_0xN rows overlap")
	}
	dotQ8_0AVX2xN[rows-1](w, x, stride, nb, nrows, xd, dst, dstride)
}

// The Q8_0 batch kernels by number of activation rows.
var dotQ8_0AVX2xN = [...]func(w, x []byte, stride, nb, nrows int, xd []byte, dst []float32, dstride int){
	dotQ8_0x1AVX2, dotQ8_0x2AVX2, dotQ8_0x3AVX2, dotQ8_0x4AVX2}

// Q8_0Pack appends the block scales of n activation rows of nb Q8_0
// blocks, stride bytes apart, as float32, as DotQ8_0xN takes them: in
// groups of four rows, each interleaved by block, so that the group
// starting at row t (a multiple of 4) starts at byte 4*t*nb.
func Q8_0Pack(dst, x []byte, stride, nb, n int) []byte {
	if !useAsm {
		return dst
	}
	return packQ8_0Scales(dst, x, stride, nb, n)
}

// packQ8_0Scales appends the block scales of n rows of nb Q8_0 blocks
// each, stride bytes apart, as float32 bytes, as the AVX2 DotQ8_0xN takes
// them: in groups of four rows (the last group the rest), each interleaved
// by block, so the group starting at row t starts at byte 4*t*nb.
func packQ8_0Scales(dst, x []byte, stride, nb, n int) []byte {
	for t := 0; t < n; t += 4 {
		g := min(4, n-t)
		for b := range nb {
			for c := range g {
				d := f16[binary.LittleEndian.Uint16(x[(t+c)*stride+b*34:])]
				dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(d))
			}
		}
	}
	return dst
}

// Axpy adds a·x to dst (len(dst) ≥ len(x)).
func Axpy(dst, x []float32, a float32) {
	if !useAsm {
		axpyGeneric(dst, x, a)
		return
	}
	dst = dst[:len(x)]
	axpyAVX2(dst, x, a)
	for i := len(x) &^ 7; i < len(x); i++ {
		dst[i] = float32(math.FMA(float64(a), float64(x[i]), float64(dst[i])))
	}
}

// bf16Lanes runs bf16Lanes1AVX2 or bf16Lanes2AVX2 (bf16LanesGeneric)
// for 16 or 32 lanes.
func bf16Lanes(a, b []uint16, acc []float32) {
	switch {
	case !useAsm:
		bf16LanesGeneric(a, b, acc)
	case len(acc) == 16:
		bf16Lanes1AVX2(a, b[:len(a)], (*[16]float32)(acc))
	default:
		bf16Lanes2AVX2(a, b[:len(a)], (*[32]float32)(acc))
	}
}

// DotQ4_0 returns the dot product of nb Q4_0 weight blocks w with nb Q8_0
// activation blocks x.
func DotQ4_0(w, x []byte, nb int) float32 {
	if !useAsm {
		return dotQ4_0Generic(w, x, nb)
	}
	_, _ = w[:nb*18], x[:nb*34] // bounds: the assembly does not check
	return dotQ4_0AVX2(w, x, nb)
}

// DotQ4_0xN computes DotQ4_0 of one weight row w with rows (2 to 4) Q8_0
// activation rows x[c*stride:] into out[:rows], bit-identical to separate
// DotQ4_0 calls but unpacking each weight block once.
func DotQ4_0xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	if !useAsm {
		dotQ4_0xNGeneric(w, x, stride, nb, rows, out)
		return
	}
	q4_0Rows.run(w, x, stride, nb, rows, out)
}

// blockRows are a block type's kernels of one weight row with 2, 3 and 4
// activation rows.
type blockRows struct {
	name           string
	wBlock, xBlock int // bytes of a weight and of an activation block
	kernels        [3]func(w, x []byte, stride, nb int, out *[4]float32)
}

var (
	q4_0Rows = blockRows{"DotQ4_0xN", 18, 34, [3]func(w, x []byte, stride, nb int, out *[4]float32){dotQ4_0x2AVX2, dotQ4_0x3AVX2, dotQ4_0x4AVX2}}
	q4_KRows = blockRows{"DotQ4_KxN", 144, 292, [3]func(w, x []byte, stride, nb int, out *[4]float32){dotQ4_Kx2AVX2, dotQ4_Kx3AVX2, dotQ4_Kx4AVX2}}
	q6_KRows = blockRows{"DotQ6_KxN", 210, 292, [3]func(w, x []byte, stride, nb int, out *[4]float32){dotQ6_Kx2AVX2, dotQ6_Kx3AVX2, dotQ6_Kx4AVX2}}
)

// run checks the bounds the assembly does not, then runs the kernel.
func (b *blockRows) run(w, x []byte, stride, nb, rows int, out *[4]float32) {
	_, _ = w[:nb*b.wBlock], x[:(rows-1)*stride+nb*b.xBlock]
	switch {
	case stride < nb*b.xBlock:
		panic("kernels: " + b.name + " rows overlap")
	case rows < 2 || rows > 4:
		panic("kernels: " + b.name + " takes 2 to 4 rows")
	}
	b.kernels[rows-2](w, x, stride, nb, out)
}

// DotQ4_K returns the dot product of nb Q4_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ4_K(w, x []byte, nb int) float32 {
	if !useAsm {
		return dotQ4_KGeneric(w, x, nb)
	}
	_, _ = w[:nb*144], x[:nb*292] // bounds: the assembly does not check
	var out [4]float32
	dotQ4_Kx1AVX2(w, x, nb*292, nb, &out)
	return out[0]
}

// DotQ6_K returns the dot product of nb Q6_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ6_K(w, x []byte, nb int) float32 {
	if !useAsm {
		return dotQ6_KGeneric(w, x, nb)
	}
	_, _ = w[:nb*210], x[:nb*292] // bounds: the assembly does not check
	var out [4]float32
	dotQ6_Kx1AVX2(w, x, nb*292, nb, &out)
	return out[0]
}

// DotRowsF32 sets dst[j] = DotF32(q, k[j*stride:]) for every j: one
// query against many keys.
func DotRowsF32(dst, q, k []float32, stride int) {
	if len(dst) == 0 || len(q) == 0 {
		clear(dst)
		return
	}
	_ = k[(len(dst)-1)*stride+len(q)-1] // bounds: the assembly does not check
	if !useAsm || len(q)%32 != 0 {
		dotRowsF32Generic(dst, q, k, stride)
		return
	}
	dotRowsF32AVX2(dst, q, k, stride)
}

// AxpyRowsF32 adds w[j]·v[j*stride:] to dst for every j in order, as
// successive Axpy calls do.
func AxpyRowsF32(dst, v []float32, stride int, w []float32) {
	if len(w) == 0 || len(dst) == 0 {
		return
	}
	_ = v[(len(w)-1)*stride+len(dst)-1] // bounds: the assembly does not check
	if !useAsm {
		axpyRowsF32Generic(dst, v, stride, w)
		return
	}
	axpyRowsF32AVX2(dst, v, stride, w)
	if tail := len(dst) &^ 7; tail < len(dst) {
		for j, a := range w {
			axpyGeneric(dst[tail:], v[j*stride+tail:j*stride+len(dst)], a)
		}
	}
}

// DotQ4_KxN computes DotQ4_K of one weight row w with rows (2 to 4) Q8_K
// activation rows x[c*stride:] into out[:rows], bit-identical to separate
// DotQ4_K calls but unpacking each weight block once.
func DotQ4_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	if !useAsm {
		dotQ4_KxNGeneric(w, x, stride, nb, rows, out)
		return
	}
	q4_KRows.run(w, x, stride, nb, rows, out)
}

// DotQ6_KxN computes DotQ6_K of one weight row w with rows (2 to 4) Q8_K
// activation rows x[c*stride:] into out[:rows], bit-identical to separate
// DotQ6_K calls but unpacking each weight block once.
func DotQ6_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	if !useAsm {
		dotQ6_KxNGeneric(w, x, stride, nb, rows, out)
		return
	}
	q6_KRows.run(w, x, stride, nb, rows, out)
}

// QuantQ8_0 writes the len(x)/32 Q8_0 blocks of x into dst (34 bytes each).
func QuantQ8_0(dst []byte, x []float32) {
	_ = dst[:len(x)/32*34] // bounds: the assembly does not check
	if !useAsm {
		quantQ8_0Generic(dst, x)
		return
	}
	quantQ8_0AVX2(dst, x)
}

// QuantQ8_K writes the len(x)/256 Q8_K blocks of x into dst (292 bytes
// each), as ggml's quantize_row_q8_K_ref.
func QuantQ8_K(dst []byte, x []float32) {
	if !useAsm {
		quantQ8_KGeneric(dst, x)
		return
	}
	nb := len(x) / 256
	quantQ8_KAVX2(dst[:nb*292], x[:nb*256])
}

// ExpShift sets x[i] = e^(x[i]-shift), with ggml's approximation of e^x
// (expGeneric), eight elements at a time.
func ExpShift(x []float32, shift float32) {
	if !useAsm {
		expShiftGeneric(x, shift)
		return
	}
	expShiftF32AVX2(x, shift)
	expShiftGeneric(x[len(x)&^7:], shift)
}

// SwiGLU sets g[i] = silu(g[i])·u[i] with silu(g) = g / (1 + e^-g).
func SwiGLU(g, u []float32) {
	u = u[:len(g)] // bounds: the assembly does not check
	if !useAsm {
		swigluGeneric(g, u)
		return
	}
	swigluF32AVX2(g, u)
	tail := len(g) &^ 7
	swigluGeneric(g[tail:], u[tail:])
}

// HasR16 reports whether the kernels of row-interleaved weights
// (DotQ8_0R16, DotQ4_KR16, DotQ6_KR16, on AVX-512 VNNI) run here.
func HasR16() bool { return useVNNI }

// r16Kernel is a kernel of 16 packed weight rows with a number of tokens
// (its index in its table plus one).
type r16Kernel func(wp, x []byte, nb, xstride int, dst []float32, dstride int, mask uint16)

// runR16 checks a packed product's arguments (wpBytes of weights and
// xBytes of each token's activations are read) and runs the kernel for
// its number of tokens; the assembly does not check bounds.
func runR16(name string, ks []r16Kernel, wp []byte, wpBytes int, x []byte, xBytes, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	if !useVNNI {
		panic("kernels: " + name + " without AVX-512 VNNI")
	}
	if tokens < 1 || tokens > len(ks) || valid < 1 || valid > R16 {
		panic(fmt.Sprintf("kernels: %s takes 1 to %d tokens and 1 to %d rows", name, len(ks), R16))
	}
	_, _, _ = wp[:wpBytes], x[:(tokens-1)*xstride+xBytes], dst[(tokens-1)*dstride+valid-1]
	ks[tokens-1](wp, x, nb, xstride, dst, dstride, uint16(1)<<valid-1)
}

// DotQ8_0R16 multiplies a group of 16 weight rows packed by PackQ8_0R16
// (nb blocks each; the first valid rows are real) with tokens (1 to 8)
// activation rows packed by PackQ8_0R16Act (xstride bytes apart), writing
// token t's product with row r to dst[t*dstride+r] for r < valid, as
// dotQ8_0R16Generic does.
func DotQ8_0R16(wp, xa []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	runR16("DotQ8_0R16", dotQ8_0R16[:], wp, R16Q8Bytes(nb), xa, nb*R16Q8Act, nb, xstride, tokens, dst, dstride, valid)
}

// DotQ4_KR16 multiplies a group of 16 weight rows packed by PackQ4_KR16
// (nb super-blocks each; the first valid rows are real) with tokens (1
// to 4) Q8_K activation rows xstride bytes apart, writing token t's
// product with row r to dst[t*dstride+r] for r < valid, bit-identical to
// DotQ4_K.
func DotQ4_KR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	runR16("DotQ4_KR16", dotQ4_KR16[:], wp, nb*R16Q4K, x, nb*292, nb, xstride, tokens, dst, dstride, valid)
}

// DotQ6_KR16 is DotQ4_KR16 for Q6_K weights packed by PackQ6_KR16,
// bit-identical to DotQ6_K.
func DotQ6_KR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	runR16("DotQ6_KR16", dotQ6_KR16[:], wp, nb*R16Q6K, x, nb*292, nb, xstride, tokens, dst, dstride, valid)
}

var (
	dotQ8_0R16 = [...]r16Kernel{dotQ8_0R16x1, dotQ8_0R16x2, dotQ8_0R16x3, dotQ8_0R16x4,
		dotQ8_0R16x5, dotQ8_0R16x6, dotQ8_0R16x7, dotQ8_0R16x8}
	dotQ4_KR16 = [...]r16Kernel{dotQ4_KR16x1, dotQ4_KR16x2, dotQ4_KR16x3, dotQ4_KR16x4}
	dotQ6_KR16 = [...]r16Kernel{dotQ6_KR16x1, dotQ6_KR16x2, dotQ6_KR16x3, dotQ6_KR16x4}
)
