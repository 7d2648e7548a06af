package synth

import (
	"fmt"
	"math"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// oaiShape is a gpt-oss-style model's hyperparameters: GQA with q/k/v/o
// biases and per-head attention sinks, a sliding window on every other
// layer (from layer 0), NEOX RoPE with YaRN, and in every layer routed
// SwiGLU-OAI experts with biases, picked by a router with a bias.
type oaiShape struct {
	vocab, ctx, embd, layers, heads, kvHeads, headDim int
	experts, used, ffn, window                        int
	eps, ropeBase, yarnFactor                         float32
	yarnOrigCtx                                       int
}

// gptossShape returns the preset's shape. tiny is the shape of the
// llama.cpp-made fixture tiny-gptoss-f32.gguf; small and medium keep every
// row length a multiple of 256, so Q8_0 and Q4_K fit every matrix; medium
// is gpt-oss-20b (E 2880, 24 layers, 64/8 heads of 64, 32 experts top-4,
// window 128) scaled down to about 0.70 B parameters.
func gptossShape(preset string) (oaiShape, error) {
	var s oaiShape
	switch preset {
	case "tiny":
		s = oaiShape{vocab: 512, ctx: 256, embd: 64, layers: 4, heads: 4, kvHeads: 2, headDim: 32,
			experts: 8, used: 2, ffn: 64, window: 8, yarnOrigCtx: 64}
	case "small":
		s = oaiShape{vocab: 4096, ctx: 1024, embd: 512, layers: 4, heads: 8, kvHeads: 2, headDim: 64,
			experts: 16, used: 4, ffn: 256, window: 64, yarnOrigCtx: 256}
	case "medium":
		s = oaiShape{vocab: 32000, ctx: 2048, embd: 1024, layers: 12, heads: 16, kvHeads: 4, headDim: 64,
			experts: 32, used: 4, ffn: 512, window: 128, yarnOrigCtx: 512}
	default:
		return s, fmt.Errorf("synth: unknown preset %q (want one of %v)", preset, Presets)
	}
	s.eps, s.ropeBase, s.yarnFactor = 1e-5, 1.5e5, 4
	return s, nil
}

func (s oaiShape) vocabSize() int { return s.vocab }

// write lays out the keys and tensors in the order llama.cpp's converter
// writes a gpt-oss file (here unquantised: the released MXFP4 experts are
// not among synth's types).
func (s oaiShape) write(w *gguf.Writer, arch string, g gen) {
	u := func(k string, v int) { w.Set(arch+"."+k, gguf.U32(uint32(v))) }
	f := func(k string, v float32) { w.Set(arch+"."+k, gguf.F32(v)) }
	u("vocab_size", s.vocab)
	u("context_length", s.ctx)
	u("embedding_length", s.embd)
	u("block_count", s.layers)
	u("feed_forward_length", s.ffn)
	u("attention.head_count", s.heads)
	u("attention.head_count_kv", s.kvHeads)
	f("attention.layer_norm_rms_epsilon", s.eps)
	f("rope.freq_base", s.ropeBase)
	u("rope.dimension_count", s.headDim)
	u("attention.key_length", s.headDim)
	u("attention.value_length", s.headDim)
	w.Set(arch+".rope.scaling.type", gguf.Str("yarn"))
	f("rope.scaling.factor", s.yarnFactor)
	u("rope.scaling.original_context_length", s.yarnOrigCtx)
	f("rope.scaling.yarn_beta_fast", 32)
	f("rope.scaling.yarn_beta_slow", 1)
	u("expert_count", s.experts)
	u("expert_used_count", s.used)
	u("attention.sliding_window", s.window)
	u("expert_feed_forward_length", s.ffn)

	E, q, kv, dt := s.embd, s.heads*s.headDim, s.kvHeads*s.headDim, g.mat
	rms := func(n int) float64 { return 1 / math.Sqrt(float64(n)) }
	// Scales as in shape.write: entries of RMS 1/sqrt(inputs), so outputs
	// keep their inputs' scale. Biases are small beside what they are added
	// to. The exceptions are the experts':
	//   - gate and up have RMS 4/sqrt(E): their unit-RMS input then gives
	//     pre-activations of RMS about 4, so the SwiGLU-OAI clamp at ±7
	//     (|z| > 1.75) is hit now and then (in about 12% of hidden units,
	//     as in llama.cpp's fixture) without deciding most of them;
	//   - those hidden units, x·σ(1.702x)·(y+1), then have RMS about 10, so
	//     down has RMS 0.1/sqrt(ffn) to bring an expert's output back to
	//     about 1.
	// Sinks are logits beside q·k/√d, which has RMS about 1: a sink of the
	// same size takes a real share of a short context's attention.
	w.Add(g.matrix("token_embd.weight", E, s.vocab, 1, dt))
	w.Add(g.norm("output_norm.weight", E))
	w.Add(g.matrix("output.weight", E, s.vocab, 3/math.Sqrt(float64(E)), headType(dt)))
	for l := range s.layers {
		p := fmt.Sprintf("blk.%d.", l)
		w.Add(g.norm(p+"attn_norm.weight", E))
		w.Add(g.matrix(p+"attn_q.weight", E, q, rms(E), dt))
		w.Add(g.vector(p+"attn_q.bias", q, 0.1))
		w.Add(g.matrix(p+"attn_k.weight", E, kv, rms(E), dt))
		w.Add(g.vector(p+"attn_k.bias", kv, 0.1))
		w.Add(g.matrix(p+"attn_v.weight", E, kv, rms(E), dt))
		w.Add(g.vector(p+"attn_v.bias", kv, 0.1))
		w.Add(g.matrix(p+"attn_output.weight", q, E, rms(q), dt))
		w.Add(g.vector(p+"attn_output.bias", E, 0.1))
		w.Add(g.vector(p+"attn_sinks.weight", s.heads, 1))
		w.Add(g.norm(p+"post_attention_norm.weight", E))
		w.Add(g.matrix(p+"ffn_gate_inp.weight", E, s.experts, 2/math.Sqrt(float64(E)), tensor.F32))
		w.Add(g.vector(p+"ffn_gate_inp.bias", s.experts, 0.1))
		w.Add(g.experts(p+"ffn_gate_exps.weight", E, s.ffn, s.experts, 4*rms(E), dt))
		w.Add(g.matrix(p+"ffn_gate_exps.bias", s.ffn, s.experts, 0.5, tensor.F32))
		w.Add(g.experts(p+"ffn_up_exps.weight", E, s.ffn, s.experts, 4*rms(E), dt))
		w.Add(g.matrix(p+"ffn_up_exps.bias", s.ffn, s.experts, 0.5, tensor.F32))
		w.Add(g.experts(p+"ffn_down_exps.weight", s.ffn, E, s.experts, 0.1*rms(s.ffn), dt))
		w.Add(g.matrix(p+"ffn_down_exps.bias", E, s.experts, 0.1, tensor.F32))
	}
}
