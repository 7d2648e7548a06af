package tensor

import (
	"math"

	"github.com/switchyard-llm/switchyard/pkg/tensor/internal/kernels"
)

// F16ToF32 converts an IEEE half-precision value to float32 (exactly).
func F16ToF32(h uint16) float32 { return kernels.F16(h) }

// F32ToF16 converts float32 to half precision, rounding to nearest even as
// the F16C instruction (and so ggml on x86) does.
func F32ToF16(f float32) uint16 { return kernels.F32ToF16(f) }

// BF16ToF32 converts a bfloat16 value to float32 (exactly).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts float32 to bfloat16, rounding to nearest even as ggml does.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet
		return uint16(b>>16) | 64
	}
	return uint16((b + (0x7fff + (b>>16)&1)) >> 16)
}
