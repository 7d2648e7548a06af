//go:build amd64 && !noasm

package kernels

// rowKernels are a block type's assembly kernels of one weight row with
// 1 to 4 activation rows (out[c] for row c), with its Go twin.
type rowKernels struct {
	name           string
	wBlock, xBlock int // bytes of a weight and of an activation block
	asm            [4]func(w, x []byte, stride, nb int, out *[4]float32)
	twin           func(w, x []byte, nb int) float32
}

var (
	q4_1Kernels   = rowKernels{"Q4_1", 20, 36, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotQ4_1x1AVX2, dotQ4_1x2AVX2, dotQ4_1x3AVX2, dotQ4_1x4AVX2}, dotQ4_1Generic}
	q5_0Kernels   = rowKernels{"Q5_0", 22, 34, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotQ5_0x1AVX2, dotQ5_0x2AVX2, dotQ5_0x3AVX2, dotQ5_0x4AVX2}, dotQ5_0Generic}
	q5_1Kernels   = rowKernels{"Q5_1", 24, 36, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotQ5_1x1AVX2, dotQ5_1x2AVX2, dotQ5_1x3AVX2, dotQ5_1x4AVX2}, dotQ5_1Generic}
	iq4_nlKernels = rowKernels{"IQ4_NL", 18, 34, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotIQ4_NLx1AVX2, dotIQ4_NLx2AVX2, dotIQ4_NLx3AVX2, dotIQ4_NLx4AVX2}, dotIQ4_NLGeneric}
	mxfp4Kernels  = rowKernels{"MXFP4", 17, 34, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotMXFP4x1AVX2, dotMXFP4x2AVX2, dotMXFP4x3AVX2, dotMXFP4x4AVX2}, dotMXFP4Generic}
	q2_KKernels   = rowKernels{"Q2_K", 84, 292, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotQ2_Kx1AVX2, dotQ2_Kx2AVX2, dotQ2_Kx3AVX2, dotQ2_Kx4AVX2}, dotQ2_KGeneric}
	q3_KKernels   = rowKernels{"Q3_K", 110, 292, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotQ3_Kx1AVX2, dotQ3_Kx2AVX2, dotQ3_Kx3AVX2, dotQ3_Kx4AVX2}, dotQ3_KGeneric}
	q5_KKernels   = rowKernels{"Q5_K", 176, 292, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotQ5_Kx1AVX2, dotQ5_Kx2AVX2, dotQ5_Kx3AVX2, dotQ5_Kx4AVX2}, dotQ5_KGeneric}
	iq4_xsKernels = rowKernels{"IQ4_XS", 136, 292, [4]func(w, x []byte, stride, nb int, out *[4]float32){dotIQ4_XSx1AVX2, dotIQ4_XSx2AVX2, dotIQ4_XSx3AVX2, dotIQ4_XSx4AVX2}, dotIQ4_XSGeneric}
)

// dot is the dot product of nb weight blocks w with nb activation
// blocks x.
func (k *rowKernels) dot(w, x []byte, nb int) float32 {
	if !useAsm {
		return k.twin(w, x, nb)
	}
	_, _ = w[:nb*k.wBlock], x[:nb*k.xBlock] // bounds: the assembly does not check
	var out [4]float32
	k.asm[0](w, x, nb*k.xBlock, nb, &out)
	return out[0]
}

// dotN is dot of one weight row w with rows (2 to 4) activation rows
// x[c*stride:] into out[:rows], bit-identical to separate calls but
// unpacking each weight block once.
func (k *rowKernels) dotN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	if !useAsm {
		dotxNBlocks(k.twin, w, x, stride, nb, rows, out)
		return
	}
	_, _ = w[:nb*k.wBlock], x[:(rows-1)*stride+nb*k.xBlock] // bounds: the assembly does not check
	switch {
	case stride < nb*k.xBlock:
		panic("kernels: Dot" + k.name + "xN rows overlap")
	case rows < 2 || rows > 4:
		panic("kernels: Dot" + k.name + "xN takes 2 to 4 rows")
	}
	k.asm[rows-1](w, x, stride, nb, out)
}

// DotQ4_1 returns the dot product of nb Q4_1 weight blocks w with nb Q8_1
// activation blocks x.
func DotQ4_1(w, x []byte, nb int) float32 { return q4_1Kernels.dot(w, x, nb) }

// DotQ5_0 returns the dot product of nb Q5_0 weight blocks w with nb Q8_0
// activation blocks x.
func DotQ5_0(w, x []byte, nb int) float32 { return q5_0Kernels.dot(w, x, nb) }

// DotQ5_1 returns the dot product of nb Q5_1 weight blocks w with nb Q8_1
// activation blocks x.
func DotQ5_1(w, x []byte, nb int) float32 { return q5_1Kernels.dot(w, x, nb) }

// DotIQ4_NL returns the dot product of nb IQ4_NL weight blocks w with nb
// Q8_0 activation blocks x.
func DotIQ4_NL(w, x []byte, nb int) float32 { return iq4_nlKernels.dot(w, x, nb) }

// DotMXFP4 returns the dot product of nb MXFP4 weight blocks w with nb
// Q8_0 activation blocks x.
func DotMXFP4(w, x []byte, nb int) float32 { return mxfp4Kernels.dot(w, x, nb) }

// DotQ2_K returns the dot product of nb Q2_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ2_K(w, x []byte, nb int) float32 { return q2_KKernels.dot(w, x, nb) }

// DotQ3_K returns the dot product of nb Q3_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ3_K(w, x []byte, nb int) float32 { return q3_KKernels.dot(w, x, nb) }

// DotQ5_K returns the dot product of nb Q5_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ5_K(w, x []byte, nb int) float32 { return q5_KKernels.dot(w, x, nb) }

// DotIQ4_XS returns the dot product of nb IQ4_XS weight blocks w with nb
// Q8_K activation blocks x.
func DotIQ4_XS(w, x []byte, nb int) float32 { return iq4_xsKernels.dot(w, x, nb) }

// DotQ4_1xN computes DotQ4_1 of one weight row w with rows (2 to 4)
// activation rows x[c*stride:] into out[:rows]; so do the other xN
// kernels for their types.
func DotQ4_1xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	q4_1Kernels.dotN(w, x, stride, nb, rows, out)
}

func DotQ5_0xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	q5_0Kernels.dotN(w, x, stride, nb, rows, out)
}

func DotQ5_1xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	q5_1Kernels.dotN(w, x, stride, nb, rows, out)
}

func DotIQ4_NLxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	iq4_nlKernels.dotN(w, x, stride, nb, rows, out)
}

func DotMXFP4xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	mxfp4Kernels.dotN(w, x, stride, nb, rows, out)
}

func DotQ2_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	q2_KKernels.dotN(w, x, stride, nb, rows, out)
}

func DotQ3_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	q3_KKernels.dotN(w, x, stride, nb, rows, out)
}

func DotQ5_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	q5_KKernels.dotN(w, x, stride, nb, rows, out)
}

func DotIQ4_XSxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	iq4_xsKernels.dotN(w, x, stride, nb, rows, out)
}

// QuantQ8_1 writes the len(x)/32 Q8_1 blocks of x into dst (36 bytes
// each).
func QuantQ8_1(dst []byte, x []float32) { quantQ8_1Generic(dst, x) }

// DotQ5_KR16 multiplies a group of 16 weight rows packed by PackQ5_KR16
// (nb super-blocks each; the first valid rows are real) with tokens (1
// to 4) Q8_K activation rows xstride bytes apart, writing token t's
// product with row r to dst[t*dstride+r] for r < valid, bit-identical to
// DotQ5_K.
func DotQ5_KR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	runR16("DotQ5_KR16", dotQ5_KR16[:], wp, nb*R16Q5K, x, nb*292, nb, xstride, tokens, dst, dstride, valid)
}

// DotIQ4_XSR16 is DotQ5_KR16 for IQ4_XS weights packed by
// PackIQ4_XSR16, bit-identical to DotIQ4_XS.
func DotIQ4_XSR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	runR16("DotIQ4_XSR16", dotIQ4_XSR16[:], wp, nb*R16IQ4XS, x, nb*292, nb, xstride, tokens, dst, dstride, valid)
}

var (
	dotQ5_KR16   = [...]r16Kernel{dotQ5_KR16x1, dotQ5_KR16x2, dotQ5_KR16x3, dotQ5_KR16x4}
	dotIQ4_XSR16 = [...]r16Kernel{dotIQ4_XSR16x1, dotIQ4_XSR16x2, dotIQ4_XSR16x3, dotIQ4_XSR16x4}
)
