package synth

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// The file types put each tensor in the type llama.cpp's llama-quantize
// gives it for that file type (llama_tensor_get_type), worked out here by
// hand for a 4-layer model: Q4_K_M's use_more_bits takes layers 2 and 3
// (i ≥ 7n/8 = 3, and (i - n/8) % 3 = 2), MXFP4_MOE's MXFP4 goes to routed
// experts only.
func TestFileTypes(t *testing.T) {
	cases := []struct {
		fileType string
		arch     string
		want     map[string]tensor.DType
	}{
		{"q4_k_m", "mixtral", map[string]tensor.DType{
			"token_embd.weight": tensor.Q4_K, "output.weight": tensor.Q6_K,
			"blk.0.attn_q.weight": tensor.Q4_K, "blk.0.attn_v.weight": tensor.Q4_K,
			"blk.1.attn_v.weight": tensor.Q4_K, "blk.2.attn_v.weight": tensor.Q6_K, "blk.3.attn_v.weight": tensor.Q6_K,
			"blk.1.ffn_down_exps.weight": tensor.Q4_K, "blk.2.ffn_down_exps.weight": tensor.Q6_K,
			"blk.3.ffn_up_exps.weight": tensor.Q4_K, "blk.3.ffn_gate_inp.weight": tensor.F32,
		}},
		{"q5_k", "qwen2moe", map[string]tensor.DType{
			"token_embd.weight": tensor.Q5_K, "output.weight": tensor.Q6_K,
			"blk.3.attn_v.weight": tensor.Q5_K, "blk.2.ffn_down_shexp.weight": tensor.Q5_K,
		}},
		{"q5_k_m", "qwen2moe", map[string]tensor.DType{
			"blk.2.ffn_down_shexp.weight": tensor.Q6_K, "blk.0.ffn_down_shexp.weight": tensor.Q5_K,
		}},
		{"mxfp4", "gpt-oss", map[string]tensor.DType{
			"token_embd.weight": tensor.Q8_0, "output.weight": tensor.Q8_0,
			"blk.0.attn_q.weight": tensor.Q8_0, "blk.0.ffn_gate_exps.weight": tensor.MXFP4,
			"blk.1.ffn_down_exps.weight": tensor.MXFP4, "blk.1.ffn_gate_inp.weight": tensor.F32,
		}},
		{"mxfp4", "deepseek2", map[string]tensor.DType{ // llama-quantize's 3-D rule takes attn_k_b/attn_v_b too
			"blk.1.ffn_up_exps.weight": tensor.MXFP4, "blk.1.attn_v_b.weight": tensor.MXFP4,
			"blk.1.ffn_up_shexp.weight": tensor.Q8_0, "blk.0.ffn_up.weight": tensor.Q8_0,
		}},
	}
	for _, c := range cases {
		t.Run(c.fileType+"/"+c.arch, func(t *testing.T) {
			dt, mix, err := ParseFileType(c.fileType)
			if err != nil {
				t.Fatal(err)
			}
			w, err := New(Config{Arch: c.arch, Preset: "small", DType: dt, Mix: mix})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]tensor.DType{}
			for _, wt := range w.Tensors {
				got[wt.Name] = wt.Type
			}
			for name, want := range c.want {
				if g, ok := got[name]; !ok || g != want {
					t.Errorf("%s: %s, want %s", name, g, want)
				}
			}
		})
	}
	for _, bad := range []string{"q4_0_m", "q6_k", "q8_0_m", "bf16"} {
		if _, _, err := ParseFileType(bad); err == nil {
			t.Errorf("ParseFileType(%q): nil error", bad)
		}
	}
	if _, err := New(Config{Arch: "mixtral", Preset: "tiny", DType: tensor.Q8_0, Mix: "m"}); err == nil {
		t.Error("Q8_0 with the _M mix: nil error")
	}
}

// A small Q4_K_M, Q5_K and MXFP4 model (rows wide enough for the
// K-quants' blocks) loads and runs to finite logits that are not flat.
func TestFileTypesRun(t *testing.T) {
	for _, ft := range []string{"q4_k_m", "q5_k", "mxfp4"} {
		t.Run(ft, func(t *testing.T) {
			dt, mix, _ := ParseFileType(ft)
			data := write(t, Config{Arch: "mixtral", Preset: "small", DType: dt, Mix: mix, Seed: 3})
			f, err := gguf.Read(bytes.NewReader(data), int64(len(data)), gguf.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if ftv, _ := f.Get("general.file_type"); fmt.Sprint(ftv.V) != fmt.Sprint(map[string]uint32{"q4_k_m": 15, "q5_k": 16, "mxfp4": 38}[ft]) {
				t.Errorf("general.file_type %v", ftv.V)
			}
			mf, err := model.NewFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.LoadLocal(mf, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Forward(t.Context(), []model.Chunk{{Seq: m.NewSequence(), Tokens: []int32{1, 2, 3}}})
			if err != nil {
				t.Fatal(err)
			}
			var lo, hi float32
			for i, v := range out[0] {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("logit %d is %g", i, v)
				}
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo < 1 {
				t.Errorf("logits span only %g: flat", hi-lo)
			}
		})
	}
}
