package model

// The families built from grouped-query attention, softmax routing and
// SwiGLU experts: Mixtral (llama), Qwen2-MoE, Qwen3-MoE and OLMoE.
func init() {
	register(gqaFamily("llama", false, QKNormNone, true, false))
	register(gqaFamily("qwen2moe", true, QKNormNone, false, true))
	register(gqaFamily("qwen3moe", true, QKNormPerHead, true, false))
	register(gqaFamily("olmoe", true, QKNormFull, false, false))
}

// gqaFamily is an architecture whose layers are GQA attention (q/k norms
// where qk says, biases where the file has them) and softmax-top-k
// experts, renormalised when normTopK, with a sigmoid-gated shared expert
// when gatedShared and the file gives it a size. A model without experts
// has dense FFNs.
func gqaFamily(name string, neox bool, qk QKNorm, normTopK, gatedShared bool) *Arch {
	return &Arch{
		Name:     name,
		RopeNeoX: neox,
		shapes: func(h Hyper, s map[string][]int) {
			switch qk {
			case QKNormPerHead:
				s["attn_q_norm"], s["attn_k_norm"] = []int{h.HeadDim}, []int{h.HeadDim}
			case QKNormFull:
				s["attn_q_norm"], s["attn_k_norm"] = []int{h.Heads * h.HeadDim}, []int{h.KVHeads * h.HeadDim}
			}
		},
		layer: func(h Hyper, l int) Layer {
			ly := Layer{Attn: &gqa{qkNorm: qk}}
			if !h.MoELayer(l) {
				ly.FFN = &dense{}
				return ly
			}
			ly.FFN = &moe{
				Router:     &scoreRouter{gating: GatingSoftmax, norm: normTopK},
				gated:      gatedShared,
				sharedNeed: gatedShared && h.SharedFFN > 0,
			}
			return ly
		},
	}
}
