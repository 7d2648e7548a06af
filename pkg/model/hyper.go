package model

import (
	"fmt"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// Hyper holds a model's hyperparameters, read from {arch}.* metadata.
type Hyper struct {
	Arch        string  `json:"arch"`
	Vocab       int     `json:"vocab"`
	Context     int     `json:"context"`
	Embd        int     `json:"n_embd"` // n_embd
	Layers      int     `json:"layers"`
	Heads       int     `json:"heads"`
	KVHeads     int     `json:"kv_heads"`
	HeadDim     int     `json:"head_dim"`  // key (and query) head size
	ValueDim    int     `json:"value_dim"` // value head size
	FFN         int     `json:"ffn"`       // dense feed-forward size (and expert size when ExpertFFN is absent)
	ExpertFFN   int     `json:"expert_ffn"`
	SharedFFN   int     `json:"shared_ffn"`
	Experts     int     `json:"experts"` // 0 for a dense model
	ExpertsUsed int     `json:"experts_used"`
	RMSEps      float32 `json:"rms_eps"`
	RopeBase    float32 `json:"rope_base"`
	RopeDims    int     `json:"rope_dims"`
}

// MoE reports whether the model has routed experts.
func (h Hyper) MoE() bool { return h.Experts > 0 }

// Limits on hyperparameters, so that a corrupt file cannot make the engine
// allocate absurd buffers.
const (
	maxLayers  = 1 << 10
	maxEmbd    = 1 << 16
	maxHeads   = 1 << 10
	maxExperts = 1 << 10
	maxVocab   = 1 << 22
	maxContext = 1 << 22
)

func readHyper(f *gguf.File) (Hyper, error) {
	var h Hyper
	v, ok := f.Get("general.architecture")
	arch, isStr := v.V.(string)
	if !ok || !isStr {
		return h, fmt.Errorf("%w: general.architecture is missing", ErrHyper)
	}
	h.Arch = arch
	if _, err := LookupArch(arch); err != nil {
		return h, err
	}
	var firstErr error
	get := func(key string, dst *int, def int, lo, hi int) {
		*dst = def
		v, ok := f.Get(arch + "." + key)
		if !ok {
			if def < 0 && firstErr == nil {
				firstErr = fmt.Errorf("%w: %s.%s is missing", ErrHyper, arch, key)
			}
			return
		}
		n, isInt := v.Int()
		if !isInt || n < int64(lo) || n > int64(hi) {
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: %s.%s = %v, want an integer in [%d, %d]", ErrHyper, arch, key, v, lo, hi)
			}
			return
		}
		*dst = int(n)
	}
	get("context_length", &h.Context, -1, 1, maxContext)
	get("embedding_length", &h.Embd, -1, 1, maxEmbd)
	get("block_count", &h.Layers, -1, 1, maxLayers)
	get("attention.head_count", &h.Heads, -1, 1, maxHeads)
	get("attention.head_count_kv", &h.KVHeads, h.Heads, 1, maxHeads)
	def := 0
	if h.Heads > 0 {
		def = h.Embd / h.Heads
	}
	get("attention.key_length", &h.HeadDim, def, 1, maxEmbd)
	get("attention.value_length", &h.ValueDim, h.HeadDim, 1, maxEmbd)
	get("feed_forward_length", &h.FFN, 0, 0, 1<<20)
	get("expert_count", &h.Experts, 0, 0, maxExperts)
	get("expert_used_count", &h.ExpertsUsed, 0, 0, maxExperts)
	get("expert_feed_forward_length", &h.ExpertFFN, h.FFN, 1, 1<<20)
	get("expert_shared_feed_forward_length", &h.SharedFFN, 0, 0, 1<<20)
	get("rope.dimension_count", &h.RopeDims, h.HeadDim, 0, maxEmbd)
	if firstErr != nil {
		return h, firstErr
	}
	h.RMSEps = 1e-5
	if v, ok := f.Get(arch + ".attention.layer_norm_rms_epsilon"); ok {
		x, isF := v.Float()
		if !isF || x <= 0 || x > 1 {
			return h, fmt.Errorf("%w: %s.attention.layer_norm_rms_epsilon = %v", ErrHyper, arch, v)
		}
		h.RMSEps = float32(x)
	}
	h.RopeBase = 10000
	if v, ok := f.Get(arch + ".rope.freq_base"); ok {
		x, isF := v.Float()
		if !isF || x <= 1 {
			return h, fmt.Errorf("%w: %s.rope.freq_base = %v", ErrHyper, arch, v)
		}
		h.RopeBase = float32(x)
	}
	if h.Heads%h.KVHeads != 0 {
		return h, fmt.Errorf("%w: %d heads is not a multiple of %d KV heads", ErrHyper, h.Heads, h.KVHeads)
	}
	if h.RopeDims > h.HeadDim || h.RopeDims%2 != 0 {
		return h, fmt.Errorf("%w: rope.dimension_count %d for head size %d", ErrHyper, h.RopeDims, h.HeadDim)
	}
	if h.Experts > 0 && (h.ExpertsUsed < 1 || h.ExpertsUsed > h.Experts) {
		return h, fmt.Errorf("%w: expert_used_count %d of %d experts", ErrHyper, h.ExpertsUsed, h.Experts)
	}
	if h.Experts == 0 && h.FFN == 0 {
		return h, fmt.Errorf("%w: %s.feed_forward_length is missing", ErrHyper, arch)
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return h, fmt.Errorf("%w: missing tensor %q", ErrTensor, "token_embd.weight")
	}
	if len(emb.Dims) != 2 || emb.Dims[1] > maxVocab {
		return h, fmt.Errorf("%w: token_embd.weight has shape %v", ErrTensor, emb.Dims)
	}
	h.Vocab = int(emb.Dims[1])
	return h, nil
}
