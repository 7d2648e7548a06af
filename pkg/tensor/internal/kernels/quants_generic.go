//go:build !amd64 || noasm

package kernels

// DotQ4_1 returns the dot product of nb Q4_1 weight blocks w with nb Q8_1
// activation blocks x.
func DotQ4_1(w, x []byte, nb int) float32 { return dotQ4_1Generic(w, x, nb) }

// DotQ5_0 returns the dot product of nb Q5_0 weight blocks w with nb Q8_0
// activation blocks x.
func DotQ5_0(w, x []byte, nb int) float32 { return dotQ5_0Generic(w, x, nb) }

// DotQ5_1 returns the dot product of nb Q5_1 weight blocks w with nb Q8_1
// activation blocks x.
func DotQ5_1(w, x []byte, nb int) float32 { return dotQ5_1Generic(w, x, nb) }

// DotIQ4_NL returns the dot product of nb IQ4_NL weight blocks w with nb
// Q8_0 activation blocks x.
func DotIQ4_NL(w, x []byte, nb int) float32 { return dotIQ4_NLGeneric(w, x, nb) }

// DotMXFP4 returns the dot product of nb MXFP4 weight blocks w with nb
// Q8_0 activation blocks x.
func DotMXFP4(w, x []byte, nb int) float32 { return dotMXFP4Generic(w, x, nb) }

// DotQ2_K returns the dot product of nb Q2_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ2_K(w, x []byte, nb int) float32 { return dotQ2_KGeneric(w, x, nb) }

// DotQ3_K returns the dot product of nb Q3_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ3_K(w, x []byte, nb int) float32 { return dotQ3_KGeneric(w, x, nb) }

// DotQ5_K returns the dot product of nb Q5_K weight blocks w with nb Q8_K
// activation blocks x.
func DotQ5_K(w, x []byte, nb int) float32 { return dotQ5_KGeneric(w, x, nb) }

// DotIQ4_XS returns the dot product of nb IQ4_XS weight blocks w with nb
// Q8_K activation blocks x.
func DotIQ4_XS(w, x []byte, nb int) float32 { return dotIQ4_XSGeneric(w, x, nb) }

// DotQ4_1xN computes DotQ4_1 of one weight row w with rows (2 to 4)
// activation rows x[c*stride:] into out[:rows]; so do the other xN
// kernels for their types.
func DotQ4_1xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotQ4_1Generic, w, x, stride, nb, rows, out)
}

func DotQ5_0xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotQ5_0Generic, w, x, stride, nb, rows, out)
}

func DotQ5_1xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotQ5_1Generic, w, x, stride, nb, rows, out)
}

func DotIQ4_NLxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotIQ4_NLGeneric, w, x, stride, nb, rows, out)
}

func DotMXFP4xN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotMXFP4Generic, w, x, stride, nb, rows, out)
}

func DotQ2_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotQ2_KGeneric, w, x, stride, nb, rows, out)
}

func DotQ3_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotQ3_KGeneric, w, x, stride, nb, rows, out)
}

func DotQ5_KxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotQ5_KGeneric, w, x, stride, nb, rows, out)
}

func DotIQ4_XSxN(w, x []byte, stride, nb, rows int, out *[4]float32) {
	dotxNBlocks(dotIQ4_XSGeneric, w, x, stride, nb, rows, out)
}

// QuantQ8_1 writes the len(x)/32 Q8_1 blocks of x into dst (36 bytes
// each).
func QuantQ8_1(dst []byte, x []float32) { quantQ8_1Generic(dst, x) }

// DotQ5_KR16 is not available in this build (HasR16).
func DotQ5_KR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	panic("kernels: DotQ5_KR16 without assembly")
}

// DotIQ4_XSR16 is not available in this build (HasR16).
func DotIQ4_XSR16(wp, x []byte, nb, xstride, tokens int, dst []float32, dstride, valid int) {
	panic("kernels: DotIQ4_XSR16 without assembly")
}
