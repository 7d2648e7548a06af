package synth

import (
	"fmt"
	"math"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// mlaShape is a DeepSeek-V3-style model's hyperparameters: multi-head
// latent attention with a low-rank query, leading dense layers, then
// layers of sigmoid-scored routed experts chosen within the best groups,
// plus shared experts.
type mlaShape struct {
	vocab, ctx, embd, layers, dense, heads int
	qLoRA, kvLoRA, nope, rope, v           int // MLA ranks and per-head sizes
	ffn                                    int // dense layers' FFN
	experts, used, groups, groupsUsed      int
	expertFFN, shared                      int
	eps, ropeBase, weightsScale            float32
	yarnFactor                             float32
	yarnOrigCtx                            int
}

// deepseek2Shape returns the preset's shape. tiny is the shape of the
// llama.cpp-made fixture tiny-deepseek3-f32.gguf; small and medium keep
// every row length but attn_k_b's (the nope size, as in DeepSeek-V3
// itself) a multiple of 256, so Q4_K fits them; medium has about 1.03 B
// parameters; full is DeepSeek-V3's own shape.
func deepseek2Shape(preset string) (mlaShape, error) {
	var s mlaShape
	switch preset {
	case "tiny":
		s = mlaShape{vocab: 512, ctx: 256, embd: 64, layers: 4, dense: 1, heads: 4,
			qLoRA: 64, kvLoRA: 32, nope: 32, rope: 16, v: 32, ffn: 128,
			experts: 16, used: 4, groups: 4, groupsUsed: 2, expertFFN: 32, shared: 1, yarnOrigCtx: 64}
	case "small":
		s = mlaShape{vocab: 4096, ctx: 1024, embd: 512, layers: 4, dense: 1, heads: 8,
			qLoRA: 256, kvLoRA: 256, nope: 32, rope: 16, v: 32, ffn: 1536,
			experts: 16, used: 4, groups: 4, groupsUsed: 2, expertFFN: 256, shared: 1, yarnOrigCtx: 256}
	case "medium":
		s = mlaShape{vocab: 32000, ctx: 2048, embd: 1024, layers: 10, dense: 1, heads: 16,
			qLoRA: 512, kvLoRA: 256, nope: 64, rope: 32, v: 64, ffn: 2816,
			experts: 64, used: 6, groups: 8, groupsUsed: 4, expertFFN: 512, shared: 1, yarnOrigCtx: 512}
	case "full":
		// DeepSeek-V3 itself (its config.json): 671 B parameters, 14,848
		// routed experts. Written with HeaderOnly, for planning.
		s = mlaShape{vocab: 129280, ctx: 163840, embd: 7168, layers: 61, dense: 3, heads: 128,
			qLoRA: 1536, kvLoRA: 512, nope: 128, rope: 64, v: 128, ffn: 18432,
			experts: 256, used: 8, groups: 8, groupsUsed: 4, expertFFN: 2048, shared: 1, yarnOrigCtx: 4096}
		s.eps, s.ropeBase, s.weightsScale, s.yarnFactor = 1e-6, 1e4, 2.5, 40
		return s, nil
	default:
		return s, fmt.Errorf("synth: unknown preset %q (want one of %v)", preset, Presets)
	}
	s.eps, s.ropeBase, s.weightsScale, s.yarnFactor = 1e-6, 1e4, 2.5, 4
	return s, nil
}

func (s mlaShape) vocabSize() int { return s.vocab }

// write lays out the keys and tensors as llama.cpp's converter writes a
// DeepSeek-V3 file (the split attn_k_b/attn_v_b form, with the *_mla keys).
func (s mlaShape) write(w *gguf.Writer, arch string, g gen) {
	u := func(k string, v int) { w.Set(arch+"."+k, gguf.U32(uint32(v))) }
	f := func(k string, v float32) { w.Set(arch+"."+k, gguf.F32(v)) }
	u("vocab_size", s.vocab)
	u("context_length", s.ctx)
	u("embedding_length", s.embd)
	u("block_count", s.layers)
	u("feed_forward_length", s.ffn)
	u("attention.head_count", s.heads)
	u("attention.head_count_kv", 1) // the latent cache is one MQA head
	f("attention.layer_norm_rms_epsilon", s.eps)
	f("rope.freq_base", s.ropeBase)
	u("rope.dimension_count", s.rope)
	w.Set(arch+".rope.scaling.type", gguf.Str("yarn"))
	f("rope.scaling.factor", s.yarnFactor)
	u("rope.scaling.original_context_length", s.yarnOrigCtx)
	f("rope.scaling.yarn_beta_fast", 32)
	f("rope.scaling.yarn_beta_slow", 1)
	f("rope.scaling.yarn_log_multiplier", 0.1)
	u("expert_count", s.experts)
	u("expert_used_count", s.used)
	u("expert_group_count", s.groups)
	u("expert_group_used_count", s.groupsUsed)
	u("expert_gating_func", 2) // sigmoid
	u("leading_dense_block_count", s.dense)
	u("attention.q_lora_rank", s.qLoRA)
	u("attention.kv_lora_rank", s.kvLoRA)
	u("attention.key_length", s.kvLoRA+s.rope)
	u("attention.value_length", s.kvLoRA)
	u("attention.key_length_mla", s.nope+s.rope)
	u("attention.value_length_mla", s.v)
	u("expert_feed_forward_length", s.expertFFN)
	u("expert_shared_count", s.shared)
	f("expert_weights_scale", s.weightsScale)
	w.Set(arch+".expert_weights_norm", gguf.BoolV(true))

	E, H, dt := s.embd, s.heads, g.mat
	shFFN := s.expertFFN * s.shared
	rms := func(n int) float64 { return 1 / math.Sqrt(float64(n)) }
	// Scales as in shape.write: entries of RMS 1/sqrt(inputs). The latent
	// c and the low-rank query are RMS-normed, so k_b, v_b and q_b see
	// unit-RMS inputs of kv_lora and q_lora values.
	w.Add(g.matrix("token_embd.weight", E, s.vocab, 1, dt))
	w.Add(g.norm("output_norm.weight", E))
	w.Add(g.matrix("output.weight", E, s.vocab, 3/math.Sqrt(float64(E)), headType(dt)))
	for l := range s.layers {
		p := fmt.Sprintf("blk.%d.", l)
		w.Add(g.norm(p+"attn_norm.weight", E))
		w.Add(g.matrix(p+"attn_q_a.weight", E, s.qLoRA, rms(E), dt))
		w.Add(g.norm(p+"attn_q_a_norm.weight", s.qLoRA))
		w.Add(g.matrix(p+"attn_q_b.weight", s.qLoRA, H*(s.nope+s.rope), rms(s.qLoRA), dt))
		w.Add(g.matrix(p+"attn_kv_a_mqa.weight", E, s.kvLoRA+s.rope, rms(E), dt))
		w.Add(g.norm(p+"attn_kv_a_norm.weight", s.kvLoRA))
		w.Add(g.experts(p+"attn_k_b.weight", s.nope, s.kvLoRA, H, rms(s.kvLoRA), dt))
		w.Add(g.experts(p+"attn_v_b.weight", s.kvLoRA, s.v, H, rms(s.kvLoRA), dt))
		w.Add(g.matrix(p+"attn_output.weight", H*s.v, E, rms(H*s.v), dt))
		w.Add(g.norm(p+"ffn_norm.weight", E))
		if l < s.dense {
			w.Add(g.matrix(p+"ffn_gate.weight", E, s.ffn, rms(E), dt))
			w.Add(g.matrix(p+"ffn_up.weight", E, s.ffn, rms(E), dt))
			w.Add(g.matrix(p+"ffn_down.weight", s.ffn, E, rms(s.ffn), dt))
			continue
		}
		w.Add(g.matrix(p+"ffn_gate_inp.weight", E, s.experts, 2/math.Sqrt(float64(E)), tensor.F32))
		// The selection bias is small beside the sigmoid scores' spread, so
		// it reorders close calls without deciding every choice.
		w.Add(g.vector(p+"exp_probs_b.bias", s.experts, 0.05))
		w.Add(g.experts(p+"ffn_gate_exps.weight", E, s.expertFFN, s.experts, rms(E), dt))
		w.Add(g.experts(p+"ffn_up_exps.weight", E, s.expertFFN, s.experts, rms(E), dt))
		w.Add(g.experts(p+"ffn_down_exps.weight", s.expertFFN, E, s.experts, rms(s.expertFFN), dt))
		w.Add(g.matrix(p+"ffn_gate_shexp.weight", E, shFFN, rms(E), dt))
		w.Add(g.matrix(p+"ffn_up_shexp.weight", E, shFFN, rms(E), dt))
		w.Add(g.matrix(p+"ffn_down_shexp.weight", shFFN, E, rms(shFFN), dt))
	}
}
