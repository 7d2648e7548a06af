package model

// gpt-oss: GQA attention with q/k/v/o biases and per-head sinks, a
// sliding window on every other layer (from layer 0), NEOX RoPE with
// YaRN; routed experts only, picked by the top k of the biased gate
// logits and weighed by a softmax over those k; SwiGLU-OAI experts with
// biases; the FFN input norm is named post_attention_norm.
func init() {
	register(&Arch{
		Name:     "gpt-oss",
		RopeNeoX: true,
		hyper: func(k *keys, h *Hyper) {
			k.int("attention.sliding_window", &h.SlidingWindow, 0, 0, maxContext)
			h.SlidingPattern = 2
		},
		shapes: func(h Hyper, s map[string][]int) {
			s["post_attention_norm"], s["attn_sinks"] = []int{h.Embd}, []int{h.Heads}
		},
		rename:     map[string]string{"ffn_norm": "post_attention_norm"},
		oaiExperts: true,
		layer: func(h Hyper, l int) Layer {
			a := &gqa{}
			if h.Sliding(l) {
				a.win = h.SlidingWindow
			}
			return Layer{Attn: a, FFN: &moe{Router: &topKSoftmax{}}}
		},
	})
}
