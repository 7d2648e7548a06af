// Package tensor holds ggml's element types and block layouts, their
// dequantisation and the dot, matrix-vector and matrix-matrix products the
// model engine is built from. It knows nothing of files or models.
package tensor

import "fmt"

// DType is a ggml element type, numbered as ggml numbers them (and as GGUF
// stores them).
type DType uint32

// The ggml types. Only those with a kernel (see Supported) can be computed
// with; the others are known so that a file holding them can still be read.
const (
	F32     DType = 0
	F16     DType = 1
	Q4_0    DType = 2
	Q4_1    DType = 3
	Q5_0    DType = 6
	Q5_1    DType = 7
	Q8_0    DType = 8
	Q8_1    DType = 9
	Q2_K    DType = 10
	Q3_K    DType = 11
	Q4_K    DType = 12
	Q5_K    DType = 13
	Q6_K    DType = 14
	Q8_K    DType = 15
	IQ2_XXS DType = 16
	IQ2_XS  DType = 17
	IQ3_XXS DType = 18
	IQ1_S   DType = 19
	IQ4_NL  DType = 20
	IQ3_S   DType = 21
	IQ2_S   DType = 22
	IQ4_XS  DType = 23
	I8      DType = 24
	I16     DType = 25
	I32     DType = 26
	I64     DType = 27
	F64     DType = 28
	IQ1_M   DType = 29
	BF16    DType = 30
	// Q4_0 and IQ4_NL rows interleaved 4 or 8 at a time, which ggml wrote
	// for a while and no longer does; known so that such a file is
	// named, not taken for a corrupt one.
	Q4_0_4_4   DType = 31
	Q4_0_4_8   DType = 32
	Q4_0_8_8   DType = 33
	TQ1_0      DType = 34
	TQ2_0      DType = 35
	IQ4_NL_4_4 DType = 36
	IQ4_NL_4_8 DType = 37
	IQ4_NL_8_8 DType = 38
	MXFP4      DType = 39
)

// QK is the block size of the 32-element formats, QKK that of the K-quants.
const (
	QK  = 32
	QKK = 256
)

type traits struct {
	name       string
	blockSize  int // elements per block
	blockBytes int // bytes per block
}

var table = map[DType]traits{
	F32: {"F32", 1, 4}, F16: {"F16", 1, 2}, BF16: {"BF16", 1, 2}, F64: {"F64", 1, 8},
	I8: {"I8", 1, 1}, I16: {"I16", 1, 2}, I32: {"I32", 1, 4}, I64: {"I64", 1, 8},
	Q4_0: {"Q4_0", QK, 18}, Q4_1: {"Q4_1", QK, 20}, Q5_0: {"Q5_0", QK, 22}, Q5_1: {"Q5_1", QK, 24},
	Q8_0: {"Q8_0", QK, 34}, Q8_1: {"Q8_1", QK, 36}, IQ4_NL: {"IQ4_NL", QK, 18}, MXFP4: {"MXFP4", QK, 17},
	Q2_K: {"Q2_K", QKK, 84}, Q3_K: {"Q3_K", QKK, 110}, Q4_K: {"Q4_K", QKK, 144}, Q5_K: {"Q5_K", QKK, 176},
	Q6_K: {"Q6_K", QKK, 210}, Q8_K: {"Q8_K", QKK, 292},
	IQ2_XXS: {"IQ2_XXS", QKK, 66}, IQ2_XS: {"IQ2_XS", QKK, 74}, IQ3_XXS: {"IQ3_XXS", QKK, 98},
	IQ1_S: {"IQ1_S", QKK, 50}, IQ3_S: {"IQ3_S", QKK, 110}, IQ2_S: {"IQ2_S", QKK, 82},
	IQ4_XS: {"IQ4_XS", QKK, 136}, IQ1_M: {"IQ1_M", QKK, 56}, TQ1_0: {"TQ1_0", QKK, 54}, TQ2_0: {"TQ2_0", QKK, 66},
	Q4_0_4_4: {"Q4_0_4_4", QK, 18}, Q4_0_4_8: {"Q4_0_4_8", QK, 18}, Q4_0_8_8: {"Q4_0_8_8", QK, 18},
	IQ4_NL_4_4: {"IQ4_NL_4_4", QK, 18}, IQ4_NL_4_8: {"IQ4_NL_4_8", QK, 18}, IQ4_NL_8_8: {"IQ4_NL_8_8", QK, 18},
}

// Interleaved reports whether t is one of the row-interleaved layouts ggml
// has dropped (Q4_0_4_4 … IQ4_NL_8_8).
func (t DType) Interleaved() bool {
	return t >= Q4_0_4_4 && t <= Q4_0_8_8 || t >= IQ4_NL_4_4 && t <= IQ4_NL_8_8
}

// Known reports whether t is a ggml type this package knows the layout of.
func (t DType) Known() bool { _, ok := table[t]; return ok }

// Supported reports whether matrices of type t can be computed with.
func (t DType) Supported() bool { _, ok := kernelTable[t]; return ok }

// BlockSize is the number of elements in one block of t (1 for plain types).
func (t DType) BlockSize() int { return table[t].blockSize }

// BlockBytes is the size in bytes of one block of t.
func (t DType) BlockBytes() int { return table[t].blockBytes }

func (t DType) String() string {
	if tr, ok := table[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// ParseDType returns the type named s (case-insensitive, as ggml spells it).
func ParseDType(s string) (DType, error) {
	for t, tr := range table {
		if equalFold(tr.name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("tensor: unknown type %q", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// RowBytes is the number of bytes n elements of t occupy; n must be a
// multiple of the block size (see ValidRow).
func (t DType) RowBytes(n int) int { return n / t.BlockSize() * t.BlockBytes() }

// ValidRow reports an error when a row of n elements cannot be stored in t.
func (t DType) ValidRow(n int) error {
	if !t.Known() {
		return fmt.Errorf("tensor: unknown type %d", uint32(t))
	}
	if n%t.BlockSize() != 0 {
		return fmt.Errorf("tensor: row of %d elements is not a multiple of the %s block size %d", n, t, t.BlockSize())
	}
	return nil
}
