package model

// deepseek2: DeepSeek-V2, V2-Lite, V2.5, V3, R1, Kimi-K2 and other files
// of this arch name. Multi-head latent attention; leading dense layers;
// routed experts scored by softmax or sigmoid, with a selection bias and
// group-limited top-k; ungated shared experts; YaRN.
func init() {
	register(&Arch{Name: "deepseek2", hyper: deepseek2Hyper, shapes: deepseek2Shapes, layer: deepseek2Layer})
}

func deepseek2Hyper(k *keys, h *Hyper) {
	k.int("leading_dense_block_count", &h.DenseLeading, 0, 0, h.Layers)
	k.int("expert_shared_count", &h.SharedExperts, 0, 0, maxExperts)
	var gating int
	// V2 and V2.5 files predate the key: softmax, as llama.cpp assumes.
	k.int("expert_gating_func", &gating, int(GatingSoftmax), int(GatingSoftmax), int(GatingSigmoid))
	h.Gating = Gating(gating)
	k.int("expert_group_count", &h.Groups, 0, 0, maxExperts)
	k.int("expert_group_used_count", &h.GroupsUsed, 0, 0, maxExperts)
	k.bool("expert_weights_norm", &h.WeightsNorm)
	k.float("expert_weights_scale", &h.WeightsScale, 0, 0, 1e6)
	k.int("attention.q_lora_rank", &h.QLoRA, 0, 0, maxEmbd)
	k.int("attention.kv_lora_rank", &h.KVLoRA, -1, 1, maxEmbd)
	// Files with the split attn_k_b/attn_v_b give the MQA view of the
	// latent cache in key_length/value_length and the per-head sizes in
	// the *_mla keys; older files give the per-head sizes directly.
	if k.has("attention.key_length_mla") {
		k.int("attention.key_length_mla", &h.HeadDim, -1, 1, maxEmbd)
		k.int("attention.value_length_mla", &h.ValueDim, -1, 1, maxEmbd)
	}
	h.SharedFFN = h.ExpertFFN * h.SharedExperts
}

func deepseek2Shapes(h Hyper, s map[string][]int) {
	mlaShapes(h, s)
	s["exp_probs_b.bias"] = []int{h.Experts}
}

func deepseek2Layer(h Hyper, l int) Layer {
	ly := Layer{Attn: &mla{}}
	if !h.MoELayer(l) {
		ly.FFN = &dense{}
		return ly
	}
	ly.FFN = &moe{Router: newScoreRouter(h), sharedNeed: h.SharedExperts > 0}
	return ly
}
