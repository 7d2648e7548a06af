package model

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// A file holding a tensor of a type without a kernel is refused when it is
// opened, before any weight is read, with an error that names the type
// and the tensor; the i-quant and ternary types of the 1.58-bit files and
// the dropped interleaved layouts say what to do instead.
func TestRefusedTypes(t *testing.T) {
	const victim = "blk.1.ffn_down_exps.weight" // [512 256 4] in the reference model
	cases := []struct {
		t    tensor.DType
		hint string
	}{
		{tensor.IQ1_S, "Q2_K or larger"}, {tensor.IQ1_M, "Q2_K or larger"},
		{tensor.IQ2_XXS, "Q2_K or larger"}, {tensor.IQ2_XS, "Q2_K or larger"}, {tensor.IQ2_S, "Q2_K or larger"},
		{tensor.IQ3_XXS, "Q2_K or larger"}, {tensor.IQ3_S, "Q2_K or larger"},
		{tensor.TQ1_0, "Q2_K or larger"}, {tensor.TQ2_0, "Q2_K or larger"},
		{tensor.Q4_0_8_8, "convert the file again"}, {tensor.IQ4_NL_4_4, "convert the file again"},
		{tensor.Q8_K, "supported: F32, F16, Q4_0"},
	}
	for _, c := range cases {
		t.Run(c.t.String(), func(t *testing.T) {
			_, err := rewriteErr(t, "../../testdata/models/small-kquant-q4_0.gguf", func(w *gguf.Writer, g *gguf.File) {
				for i := range w.Tensors {
					if ti := &w.Tensors[i]; ti.Name == victim {
						ti.Type = c.t
						n := ti.Dims[0] * ti.Dims[1] * ti.Dims[2]
						ti.Data = make([]byte, n/uint64(c.t.BlockSize())*uint64(c.t.BlockBytes()))
					}
				}
			})
			want := fmt.Sprintf("tensor %q is %s", victim, c.t)
			if !errors.Is(err, ErrType) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.hint) {
				t.Fatalf("got %v, want %v naming %s and saying %q", err, ErrType, want, c.hint)
			}
			t.Log(err)
		})
	}
	// Every type with a kernel opens.
	if _, err := rewriteErr(t, "../../testdata/models/small-kquant-q4_0.gguf", func(*gguf.Writer, *gguf.File) {}); err != nil {
		t.Fatalf("the unchanged file: %v", err)
	}
}
