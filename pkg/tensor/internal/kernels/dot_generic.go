//go:build !amd64 || noasm

package kernels

// UseAsm reports false: this build has no assembly kernels.
func UseAsm(bool) bool { return false }

// DotF32 returns Σ a[i]·b[i] over len(a) elements (len(b) ≥ len(a)).
func DotF32(a, b []float32) float32 { return dotF32Generic(a, b) }

// DotF16 returns Σ a[i]·b[i] for half-precision rows, accumulated in float32.
func DotF16(a, b []uint16) float32 { return dotF16Generic(a, b) }

// DotQ8_0 returns the dot product of nb Q8_0 weight blocks w with nb Q8_0
// activation blocks x: Σ_b d_w·d_x·Σ q_w·q_x.
func DotQ8_0(w, x []byte, nb int) float32 { return dotQ8_0Generic(w, x, nb) }

// DotF32xN computes DotF32 of one weight row w with rows (2 to 4)
// activation rows x[c*stride:] into out[:rows].
func DotF32xN(w, x []float32, stride, rows int, out *[4]float32) {
	dotxNGeneric(dotF32Generic, w, x, stride, rows, out)
}

// DotF16xN computes DotF16 of one weight row w with rows (2 to 4)
// activation rows x[c*stride:] into out[:rows].
func DotF16xN(w, x []uint16, stride, rows int, out *[4]float32) {
	dotxNGeneric(dotF16Generic, w, x, stride, rows, out)
}

// Axpy adds a·x to dst (len(dst) ≥ len(x)).
func Axpy(dst, x []float32, a float32) { axpyGeneric(dst, x, a) }

func bf16Lanes(a, b []uint16, acc []float32) { bf16LanesGeneric(a, b, acc) }

// DotQ4_0 returns the dot product of nb Q4_0 weight blocks w with nb Q8_0
// activation blocks x.
func DotQ4_0(w, x []byte, nb int) float32 { return dotQ4_0Generic(w, x, nb) }

// DotQ4_0xN computes DotQ4_0 of one weight row w with rows (2 to 4) Q8_0
// activation rows x[c*stride:] into out[:rows].
func DotQ4_0xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotQ4_0xNGeneric(w, x, stride, nb, rows, out)
}

// DotQ8_0xN computes DotQ8_0 of nrows weight rows w (contiguous) with
// rows (1 to 4) activation rows x[c*stride:] into dst[c*dstride+r]; xd
// (Q8_0Pack) is for the assembly.
func DotQ8_0xN(w, x []byte, stride, nb, rows, nrows int, xd []byte, dst []float32, dstride int) {
	dotQ8_0xNGeneric(w, x, stride, nb, rows, nrows, dst, dstride)
}

// Q8_0Pack returns dst: this build's DotQ8_0xN needs nothing packed.
func Q8_0Pack(dst, x []byte, stride, nb, n int) []byte { return dst }

// DotQ4_K returns the dot product of nb Q4_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ4_K(w, x []byte, nb int) float32 { return dotQ4_KGeneric(w, x, nb) }

// DotQ6_K returns the dot product of nb Q6_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ6_K(w, x []byte, nb int) float32 { return dotQ6_KGeneric(w, x, nb) }

// DotRowsF32 sets dst[j] = DotF32(q, k[j*stride:]) for every j.
func DotRowsF32(dst, q, k []float32, stride int) { dotRowsF32Generic(dst, q, k, stride) }

// AxpyRowsF32 adds w[j]·v[j*stride:] to dst for every j in order.
func AxpyRowsF32(dst, v []float32, stride int, w []float32) { axpyRowsF32Generic(dst, v, stride, w) }

// DotQ4_KxN computes DotQ4_K of one weight row w with rows (2 to 4) Q8_K
// activation rows x[c*stride:] into out[:rows].
func DotQ4_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotQ4_KxNGeneric(w, x, stride, nb, rows, out)
}

// DotQ6_KxN computes DotQ6_K of one weight row w with rows (2 to 4) Q8_K
// activation rows x[c*stride:] into out[:rows].
func DotQ6_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotQ6_KxNGeneric(w, x, stride, nb, rows, out)
}

// QuantQ8_0 writes the len(x)/32 Q8_0 blocks of x into dst (34 bytes each).
func QuantQ8_0(dst []byte, x []float32) { quantQ8_0Generic(dst, x) }

// QuantQ8_K writes the len(x)/256 Q8_K blocks of x into dst (292 bytes
// each).
func QuantQ8_K(dst []byte, x []float32) { quantQ8_KGeneric(dst, x) }

// ExpShift sets x[i] = e^(x[i]-shift) (expGeneric: ggml's approximation).
func ExpShift(x []float32, shift float32) { expShiftGeneric(x, shift) }

// SwiGLU sets g[i] = silu(g[i])·u[i] with silu(g) = g / (1 + e^-g).
func SwiGLU(g, u []float32) { swigluGeneric(g, u) }

// HasR16 reports false: this build has no row-interleaved Q8_0 kernels.
func HasR16() bool { return false }

// DotQ8_0R16 is not available in this build (HasR16).
func DotQ8_0R16(wp, xa []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	panic("kernels: DotQ8_0R16 without assembly")
}

// DotQ4_KR16 is not available in this build (HasR16).
func DotQ4_KR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	panic("kernels: DotQ4_KR16 without assembly")
}

// DotQ6_KR16 is not available in this build (HasR16).
func DotQ6_KR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	panic("kernels: DotQ6_KR16 without assembly")
}
