package synth

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// tinyDeepSeek3KVs are the metadata of llama.cpp's tiny-deepseek3-f32.gguf
// (testdata/README.md, "DeepSeek-style"), whose shape the tiny preset
// copies: the same keys with the same types and values. A nil value is
// checked for presence only (the vocabulary arrays, and general.name,
// which names the file).
var tinyDeepSeek3KVs = map[string]any{
	"general.architecture":                           "deepseek2",
	"general.name":                                   nil,
	"general.file_type":                              uint32(0),
	"general.quantization_version":                   uint32(2),
	"deepseek2.vocab_size":                           uint32(512),
	"deepseek2.context_length":                       uint32(256),
	"deepseek2.embedding_length":                     uint32(64),
	"deepseek2.block_count":                          uint32(4),
	"deepseek2.feed_forward_length":                  uint32(128),
	"deepseek2.attention.head_count":                 uint32(4),
	"deepseek2.attention.head_count_kv":              uint32(1),
	"deepseek2.attention.layer_norm_rms_epsilon":     float32(1e-6),
	"deepseek2.rope.freq_base":                       float32(10000),
	"deepseek2.rope.dimension_count":                 uint32(16),
	"deepseek2.rope.scaling.type":                    "yarn",
	"deepseek2.rope.scaling.factor":                  float32(4),
	"deepseek2.rope.scaling.original_context_length": uint32(64),
	"deepseek2.rope.scaling.yarn_beta_fast":          float32(32),
	"deepseek2.rope.scaling.yarn_beta_slow":          float32(1),
	"deepseek2.rope.scaling.yarn_log_multiplier":     float32(0.1),
	"deepseek2.expert_count":                         uint32(16),
	"deepseek2.expert_used_count":                    uint32(4),
	"deepseek2.expert_group_count":                   uint32(4),
	"deepseek2.expert_group_used_count":              uint32(2),
	"deepseek2.expert_gating_func":                   uint32(2),
	"deepseek2.leading_dense_block_count":            uint32(1),
	"deepseek2.attention.q_lora_rank":                uint32(64),
	"deepseek2.attention.kv_lora_rank":               uint32(32),
	"deepseek2.attention.key_length":                 uint32(48),
	"deepseek2.attention.value_length":               uint32(32),
	"deepseek2.attention.key_length_mla":             uint32(48),
	"deepseek2.attention.value_length_mla":           uint32(32),
	"deepseek2.expert_feed_forward_length":           uint32(32),
	"deepseek2.expert_shared_count":                  uint32(1),
	"deepseek2.expert_weights_scale":                 float32(2.5),
	"deepseek2.expert_weights_norm":                  true,
	"tokenizer.ggml.model":                           "gpt2",
	"tokenizer.ggml.pre":                             "gpt-2",
	"tokenizer.ggml.tokens":                          nil,
	"tokenizer.ggml.token_type":                      nil,
	"tokenizer.ggml.merges":                          nil,
	"tokenizer.ggml.bos_token_id":                    uint32(510),
	"tokenizer.ggml.eos_token_id":                    uint32(511),
	"tokenizer.ggml.add_bos_token":                   true,
	"tokenizer.ggml.add_eos_token":                   false,
}

// synthOnlyKeys are written by synth for every architecture and are not in
// the reference file: the description records the seed.
var synthOnlyKeys = []string{"general.description"}

type tensorSpec struct {
	name string
	dims []uint64
	// weight: a matrix stored in the model's type (else F32: norms, the
	// router and the selection bias).
	weight bool
}

// tinyDeepSeek3Tensors is the tensor table of tiny-deepseek3-f32.gguf in
// file order, from the README's shapes with E 64, 4 heads, q_lora 64,
// kv_lora 32, nope 32, rope 16, v 32, dense ff 128, 16 experts of ff 32,
// 1 shared expert, vocab 512.
func tinyDeepSeek3Tensors() []tensorSpec {
	ts := []tensorSpec{
		{"token_embd.weight", []uint64{64, 512}, true},
		{"output_norm.weight", []uint64{64}, false},
		{"output.weight", []uint64{64, 512}, true},
	}
	for l := range 4 {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			tensorSpec{p + "attn_norm.weight", []uint64{64}, false},
			tensorSpec{p + "attn_q_a.weight", []uint64{64, 64}, true},
			tensorSpec{p + "attn_q_a_norm.weight", []uint64{64}, false},
			tensorSpec{p + "attn_q_b.weight", []uint64{64, 192}, true}, // 4 heads × (32 + 16)
			tensorSpec{p + "attn_kv_a_mqa.weight", []uint64{64, 48}, true},
			tensorSpec{p + "attn_kv_a_norm.weight", []uint64{32}, false},
			tensorSpec{p + "attn_k_b.weight", []uint64{32, 32, 4}, true},
			tensorSpec{p + "attn_v_b.weight", []uint64{32, 32, 4}, true},
			tensorSpec{p + "attn_output.weight", []uint64{128, 64}, true},
			tensorSpec{p + "ffn_norm.weight", []uint64{64}, false},
		)
		if l == 0 {
			ts = append(ts,
				tensorSpec{p + "ffn_gate.weight", []uint64{64, 128}, true},
				tensorSpec{p + "ffn_up.weight", []uint64{64, 128}, true},
				tensorSpec{p + "ffn_down.weight", []uint64{128, 64}, true},
			)
			continue
		}
		ts = append(ts,
			tensorSpec{p + "ffn_gate_inp.weight", []uint64{64, 16}, false},
			tensorSpec{p + "exp_probs_b.bias", []uint64{16}, false},
			tensorSpec{p + "ffn_gate_exps.weight", []uint64{64, 32, 16}, true},
			tensorSpec{p + "ffn_up_exps.weight", []uint64{64, 32, 16}, true},
			tensorSpec{p + "ffn_down_exps.weight", []uint64{32, 64, 16}, true},
			tensorSpec{p + "ffn_gate_shexp.weight", []uint64{64, 32}, true},
			tensorSpec{p + "ffn_up_shexp.weight", []uint64{64, 32}, true},
			tensorSpec{p + "ffn_down_shexp.weight", []uint64{32, 64}, true},
		)
	}
	return ts
}

func readBack(t *testing.T, data []byte) *gguf.File {
	t.Helper()
	f, err := gguf.Read(bytes.NewReader(data), int64(len(data)), gguf.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDeepSeek2TinyMatchesReference checks the written tiny file against
// the reference's metadata and tensor table. Every row in it is 32, 64 or
// 128 values long, so Q8_0 stores every weight matrix as Q8_0, and Q4_K
// (256-value blocks) falls back to Q8_0 everywhere.
func TestDeepSeek2TinyMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		dt, weight tensor.DType
		fileType   uint32
	}{
		{tensor.F32, tensor.F32, 0},
		{tensor.Q8_0, tensor.Q8_0, 7},
		{tensor.Q4_K, tensor.Q8_0, 15},
	} {
		t.Run(tc.dt.String(), func(t *testing.T) {
			f := readBack(t, write(t, Config{Arch: "deepseek2", Preset: "tiny", DType: tc.dt, Seed: 3}))
			var got []string
			for _, kv := range f.KVs {
				got = append(got, kv.Key)
			}
			var want []string
			for k := range tinyDeepSeek3KVs {
				want = append(want, k)
			}
			want = append(want, synthOnlyKeys...)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("keys:\n got %v\nwant %v", got, want)
			}
			for k, wv := range tinyDeepSeek3KVs {
				if k == "general.file_type" {
					wv = tc.fileType
				}
				v, ok := f.Get(k)
				if !ok || wv == nil {
					continue
				}
				if !reflect.DeepEqual(v.V, wv) {
					t.Errorf("%s: got %v (%T), want %v (%T)", k, v.V, v.V, wv, wv)
				}
			}
			specs := tinyDeepSeek3Tensors()
			if len(f.Tensors) != len(specs) {
				t.Errorf("got %d tensors, want %d", len(f.Tensors), len(specs))
			}
			for i, s := range specs {
				if i >= len(f.Tensors) {
					break
				}
				ti := f.Tensors[i]
				wt := tensor.F32
				if s.weight {
					wt = tc.weight
				}
				if ti.Name != s.name || ti.Type != wt || !slices.Equal(ti.Dims, s.dims) {
					t.Errorf("tensor %d: got %s %s %v, want %s %s %v", i, ti.Name, ti.Type, ti.Dims, s.name, wt, s.dims)
				}
			}
		})
	}
}

// TestDeepSeek2SelectionBias checks that exp_probs_b is small (RMS 0.05,
// uniform, so within ±0.05·√3) but not zero.
func TestDeepSeek2SelectionBias(t *testing.T) {
	f := readBack(t, write(t, Config{Arch: "deepseek2", Preset: "tiny", DType: tensor.F32, Seed: 5}))
	data, err := f.TensorData("blk.1.exp_probs_b.bias")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]float32, 16)
	tensor.Dequantize(tensor.F32, b, data, 16)
	var ss float64
	for _, x := range b {
		if math.Abs(float64(x)) > 0.05*math.Sqrt(3) {
			t.Errorf("bias %g is outside ±0.087", x)
		}
		ss += float64(x) * float64(x)
	}
	if rms := math.Sqrt(ss / 16); rms < 0.02 || rms > 0.08 {
		t.Errorf("bias RMS %g, want about 0.05", rms)
	}
}

// deepseek2Params re-derives a DeepSeek-V3-style model's parameter count
// from its hyperparameters, in float64.
func deepseek2Params(vocab, E, layers, dense, H, qLoRA, kvLoRA, nope, rope, v, ffn, experts, expertFFN, shared float64) float64 {
	attn := E + E*qLoRA + qLoRA + qLoRA*H*(nope+rope) + E*(kvLoRA+rope) + kvLoRA + nope*kvLoRA*H + kvLoRA*v*H + H*v*E + E
	denseFFN := 3 * E * ffn
	moe := E*experts + experts + 3*E*expertFFN*experts + 3*E*expertFFN*shared
	return 2*vocab*E + E + layers*attn + dense*denseFFN + (layers-dense)*moe
}

func paramCount(w *gguf.Writer) float64 {
	var n float64
	for _, t := range w.Tensors {
		e := 1.0
		for _, d := range t.Dims {
			e *= float64(d)
		}
		n += e
	}
	return n
}

// TestDeepSeek2Params counts the parameters of each preset from the
// writer's tensor table (no data is generated) and checks it against a
// re-derivation from the preset's stated shape; medium is about 1 B.
func TestDeepSeek2Params(t *testing.T) {
	for _, tc := range []struct {
		preset string
		want   float64
	}{
		{"tiny", deepseek2Params(512, 64, 4, 1, 4, 64, 32, 32, 16, 32, 128, 16, 32, 1)},
		{"small", deepseek2Params(4096, 512, 4, 1, 8, 256, 256, 32, 16, 32, 1536, 16, 256, 1)},
		{"medium", deepseek2Params(32000, 1024, 10, 1, 16, 512, 256, 64, 32, 64, 2816, 64, 512, 1)},
	} {
		w, err := New(Config{Arch: "deepseek2", Preset: tc.preset, DType: tensor.Q4_K})
		if err != nil {
			t.Fatal(err)
		}
		if got := paramCount(w); got != tc.want {
			t.Errorf("%s: got %.0f parameters, want %.0f", tc.preset, got, tc.want)
		}
		t.Logf("%s: %.0f parameters, %d MiB as Q4_K", tc.preset, tc.want, Size(w)>>20)
		if tc.preset == "medium" && math.Abs(tc.want-1e9) > 0.15e9 {
			t.Errorf("medium has %.3g parameters, want 1e9 ± 15%%", tc.want)
		}
	}
}

// TestDeepSeek2QuantFits checks that small and medium were shaped for the
// block types: with Q8_0 every weight matrix is Q8_0, and with Q4_K every
// one is Q4_K (Q6_K for the head) except attn_k_b, whose rows are the
// per-head nope size (64 or 32, as 128 in DeepSeek-V3), which llama.cpp
// cannot store in 256-value blocks either.
func TestDeepSeek2QuantFits(t *testing.T) {
	for _, preset := range []string{"small", "medium"} {
		for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q4_K} {
			w, err := New(Config{Arch: "deepseek2", Preset: preset, DType: dt})
			if err != nil {
				t.Fatal(err)
			}
			for _, wt := range w.Tensors {
				want := dt
				switch {
				case len(wt.Dims) == 1 || strings.Contains(wt.Name, "ffn_gate_inp"):
					want = tensor.F32
				case wt.Name == "output.weight" && dt == tensor.Q4_K:
					want = tensor.Q6_K
				case strings.Contains(wt.Name, "attn_k_b") && dt == tensor.Q4_K:
					want = tensor.Q8_0
				}
				if wt.Type != want {
					t.Errorf("%s %s: %s %v is %s, want %s", preset, dt, wt.Name, wt.Dims, wt.Type, want)
				}
			}
		}
	}
}
