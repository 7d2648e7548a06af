package model

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// ErrType is returned (wrapped, naming the tensor and its type) for a file
// holding a tensor of a type the engine cannot compute with.
var ErrType = errors.New("model: unsupported tensor type")

// later are the types of the "1.58-bit" and 2-to-3-bit i-quant files
// (DeepSeek's IQ1_S/IQ1_M, the IQ2/IQ3 mixes, the ternary TQ types):
// refused for now, with a word on what to use instead.
var later = []tensor.DType{tensor.IQ1_S, tensor.IQ1_M, tensor.IQ2_XXS, tensor.IQ2_XS, tensor.IQ2_S,
	tensor.IQ3_XXS, tensor.IQ3_S, tensor.TQ1_0, tensor.TQ2_0}

// checkTypes refuses a file in which any tensor is of a type without a
// kernel, before anything is loaded: the first such tensor, in file
// order, is named.
func checkTypes(g *gguf.File) error {
	for _, ti := range g.Tensors {
		if ti.Type.Supported() {
			continue
		}
		hint := ""
		switch {
		case slices.Contains(later, ti.Type):
			hint = " (the 1-to-3-bit i-quant and ternary files are not supported yet: use a Q2_K or larger quantisation)"
		case ti.Type.Interleaved():
			hint = " (an interleaved layout ggml no longer writes: convert the file again)"
		}
		return fmt.Errorf("%w: tensor %q is %s%s; supported: %s", ErrType, ti.Name, ti.Type, hint, supportedTypes())
	}
	return nil
}

// supportedTypes lists the types with kernels, in ggml's numbering.
func supportedTypes() string {
	var names []string
	for t := tensor.DType(0); t < 64; t++ {
		if t.Supported() {
			names = append(names, t.String())
		}
	}
	return strings.Join(names, ", ")
}
