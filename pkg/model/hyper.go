package model

import (
	"fmt"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// Hyper holds a model's hyperparameters, read from {arch}.* metadata.
type Hyper struct {
	Arch        string      `json:"arch"`
	Vocab       int         `json:"vocab"`
	Context     int         `json:"context"`
	Embd        int         `json:"n_embd"` // n_embd
	Layers      int         `json:"layers"`
	Heads       int         `json:"heads"`
	KVHeads     int         `json:"kv_heads"`
	HeadDim     int         `json:"head_dim"`  // key (and query) head size
	ValueDim    int         `json:"value_dim"` // value head size
	FFN         int         `json:"ffn"`       // dense feed-forward size (and expert size when ExpertFFN is absent)
	ExpertFFN   int         `json:"expert_ffn"`
	SharedFFN   int         `json:"shared_ffn"`
	Experts     int         `json:"experts"` // 0 for a dense model
	ExpertsUsed int         `json:"experts_used"`
	RMSEps      float32     `json:"rms_eps"`
	RopeBase    float32     `json:"rope_base"`
	RopeDims    int         `json:"rope_dims"`
	Rope        RopeScaling `json:"rope_scaling"`

	// DenseLeading is the number of leading layers whose FFN is dense
	// rather than routed experts (deepseek2's leading_dense_block_count).
	DenseLeading int `json:"dense_leading,omitempty"`
	// SharedExperts is the number of always-on experts per MoE layer
	// (deepseek2's expert_shared_count); 0 where the file does not say.
	SharedExperts int `json:"shared_experts,omitempty"`
	// Router settings beyond softmax then top-k (deepseek2).
	Gating       Gating  `json:"gating,omitempty"`
	Groups       int     `json:"expert_groups,omitempty"`      // experts fall in this many groups (0 or 1: none)
	GroupsUsed   int     `json:"expert_groups_used,omitempty"` // top-k picks only from this many best groups
	WeightsNorm  bool    `json:"expert_weights_norm,omitempty"`
	WeightsScale float32 `json:"expert_weights_scale,omitempty"` // 0: no scaling

	// Multi-head latent attention (deepseek2). With MLA, HeadDim is the
	// per-head query/key size (nope + rope dims) and ValueDim the per-head
	// value size.
	QLoRA  int `json:"q_lora_rank,omitempty"`  // 0: plain attn_q
	KVLoRA int `json:"kv_lora_rank,omitempty"` // > 0: MLA

	// SlidingWindow is how many positions a sliding-window layer attends
	// to; 0 without such layers. With SlidingPattern n, layer l slides
	// when l mod n < n-1 (llama.cpp's swa pattern; gpt-oss: n = 2, the
	// even layers).
	SlidingWindow  int `json:"sliding_window,omitempty"`
	SlidingPattern int `json:"sliding_pattern,omitempty"`
}

// Sliding reports whether layer l attends to a sliding window only.
func (h Hyper) Sliding(l int) bool {
	return h.SlidingWindow > 0 && h.SlidingPattern > 0 && l%h.SlidingPattern < h.SlidingPattern-1
}

// Gating is how router logits become expert scores.
type Gating int

// The gating functions, numbered as llama.cpp's expert_gating_func.
const (
	GatingSoftmax Gating = 1
	GatingSigmoid Gating = 2
)

// RopeScaling is a context-extension scheme on top of RoPE.
type RopeScaling struct {
	Type        string  `json:"type,omitempty"` // "" (none) or "yarn"
	Factor      float32 `json:"factor,omitempty"`
	OrigContext int     `json:"original_context,omitempty"`
	BetaFast    float32 `json:"beta_fast,omitempty"`
	BetaSlow    float32 `json:"beta_slow,omitempty"`
	// LogMul is yarn_log_multiplier (deepseek2); 0 when absent.
	LogMul float32 `json:"yarn_log_multiplier,omitempty"`
}

// MoE reports whether the model has routed experts.
func (h Hyper) MoE() bool { return h.Experts > 0 }

// MoELayer reports whether layer l has routed experts.
func (h Hyper) MoELayer(l int) bool { return h.Experts > 0 && l >= h.DenseLeading && l < h.Layers }

// MoELayers lists, in order, the layers with routed experts: the only
// layers whose experts are units of placement.
func (h Hyper) MoELayers() []int {
	var ls []int
	for l := range h.Layers {
		if h.MoELayer(l) {
			ls = append(ls, l)
		}
	}
	return ls
}

// MLA reports whether attention is multi-head latent attention.
func (h Hyper) MLA() bool { return h.KVLoRA > 0 }

// KVBytesPerToken is what the KV cache holds per token over every layer
// that attends to all positions (float32 values): per KV head a key and a
// value, or with MLA one latent vector and one rotated key shared by all
// heads. Sliding-window layers hold a bounded amount: see KVBytes.
func (h Hyper) KVBytesPerToken() int {
	full := 0
	for l := range h.Layers {
		if !h.Sliding(l) {
			full++
		}
	}
	return full * h.kvLayerBytes()
}

// kvLayerBytes is one layer's cache per token.
func (h Hyper) kvLayerBytes() int {
	if h.MLA() {
		return 4 * (h.KVLoRA + h.RopeDims)
	}
	return 4 * h.KVHeads * (h.HeadDim + h.ValueDim)
}

// KVBytes is what a sequence of n positions holds in its KV cache at
// most, between steps, in whole blocks of BlockTokens positions: a
// sliding-window layer keeps only the blocks its window reaches.
func (h Hyper) KVBytes(n int) int {
	total := 0
	for l := range h.Layers {
		blocks := (n + BlockTokens - 1) / BlockTokens
		if h.Sliding(l) {
			blocks = min(blocks, (h.SlidingWindow-1+BlockTokens-1)/BlockTokens+1)
		}
		total += blocks * BlockTokens * h.kvLayerBytes()
	}
	return total
}

// PlainKVBytesPerToken is what a cache of per-head keys and values would
// hold per token at this shape: for MLA, what its latent cache saves.
func (h Hyper) PlainKVBytesPerToken() int {
	kv := h.KVHeads
	if h.MLA() {
		kv = h.Heads
	}
	return 4 * h.Layers * kv * (h.HeadDim + h.ValueDim)
}

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

// keys reads {arch}.* metadata, keeping the first error.
type keys struct {
	f    *gguf.File
	arch string
	err  error
}

func (k *keys) fail(err error) {
	if k.err == nil {
		k.err = err
	}
}

// int reads an integer key into dst, def when absent (a negative def
// makes the key required).
func (k *keys) int(key string, dst *int, def, lo, hi int) {
	*dst = def
	v, ok := k.f.Get(k.arch + "." + key)
	if !ok {
		if def < 0 {
			k.fail(fmt.Errorf("%w: %s.%s is missing", ErrHyper, k.arch, key))
		}
		return
	}
	n, isInt := v.Int()
	if !isInt || n < int64(lo) || n > int64(hi) {
		k.fail(fmt.Errorf("%w: %s.%s = %v, want an integer in [%d, %d]", ErrHyper, k.arch, key, v, lo, hi))
		return
	}
	*dst = int(n)
}

// float reads a float key into dst, def when absent.
func (k *keys) float(key string, dst *float32, def, lo, hi float64) {
	*dst = float32(def)
	v, ok := k.f.Get(k.arch + "." + key)
	if !ok {
		return
	}
	x, isF := v.Float()
	if !isF || !(x >= lo && x <= hi) {
		k.fail(fmt.Errorf("%w: %s.%s = %v, want a number in [%g, %g]", ErrHyper, k.arch, key, v, lo, hi))
		return
	}
	*dst = float32(x)
}

// bool reads a boolean key, false when absent.
func (k *keys) bool(key string, dst *bool) {
	*dst = false
	v, ok := k.f.Get(k.arch + "." + key)
	if !ok {
		return
	}
	b, isB := v.V.(bool)
	if !isB {
		k.fail(fmt.Errorf("%w: %s.%s = %v, want a boolean", ErrHyper, k.arch, key, v))
		return
	}
	*dst = b
}

// has reports whether a key is present.
func (k *keys) has(key string) bool { _, ok := k.f.Get(k.arch + "." + key); return ok }

// ropeScaling reads rope.scaling.*: none, or YaRN.
func (k *keys) ropeScaling(h *Hyper) {
	v, ok := k.f.Get(k.arch + ".rope.scaling.type")
	if !ok {
		return
	}
	typ, _ := v.V.(string)
	switch typ {
	case "", "none":
		return
	case "yarn":
	default:
		k.fail(fmt.Errorf("%w: %s.rope.scaling.type %q is not supported (want yarn or none)", ErrHyper, k.arch, typ))
		return
	}
	r := &h.Rope
	r.Type = typ
	k.float("rope.scaling.factor", &r.Factor, 1, 1, 1<<20)
	k.int("rope.scaling.original_context_length", &r.OrigContext, h.Context, 1, maxContext)
	k.float("rope.scaling.yarn_beta_fast", &r.BetaFast, 32, 0, 1<<20)
	k.float("rope.scaling.yarn_beta_slow", &r.BetaSlow, 1, 0, 1<<20)
	k.float("rope.scaling.yarn_log_multiplier", &r.LogMul, 0, 0, 100)
}

func readHyper(f *gguf.File) (Hyper, error) {
	var h Hyper
	v, ok := f.Get("general.architecture")
	arch, isStr := v.V.(string)
	if !ok || !isStr {
		return h, fmt.Errorf("%w: general.architecture is missing", ErrHyper)
	}
	h.Arch = arch
	a, err := LookupArch(arch)
	if err != nil {
		return h, err
	}
	k := &keys{f: f, arch: arch}
	k.int("context_length", &h.Context, -1, 1, maxContext)
	k.int("embedding_length", &h.Embd, -1, 1, maxEmbd)
	k.int("block_count", &h.Layers, -1, 1, maxLayers)
	k.int("attention.head_count", &h.Heads, -1, 1, maxHeads)
	k.int("attention.head_count_kv", &h.KVHeads, h.Heads, 1, maxHeads)
	def := 0
	if h.Heads > 0 {
		def = h.Embd / h.Heads
	}
	k.int("attention.key_length", &h.HeadDim, def, 1, maxEmbd)
	k.int("attention.value_length", &h.ValueDim, h.HeadDim, 1, maxEmbd)
	k.int("feed_forward_length", &h.FFN, 0, 0, 1<<20)
	k.int("expert_count", &h.Experts, 0, 0, maxExperts)
	k.int("expert_used_count", &h.ExpertsUsed, 0, 0, maxExperts)
	k.int("expert_feed_forward_length", &h.ExpertFFN, h.FFN, 1, 1<<20)
	k.int("expert_shared_feed_forward_length", &h.SharedFFN, 0, 0, 1<<20)
	k.int("rope.dimension_count", &h.RopeDims, h.HeadDim, 0, maxEmbd)
	k.float("attention.layer_norm_rms_epsilon", &h.RMSEps, 1e-5, 1e-30, 1)
	k.float("rope.freq_base", &h.RopeBase, 10000, 1.0000001, 1e12)
	k.ropeScaling(&h)
	if a.hyper != nil && k.err == nil {
		a.hyper(k, &h)
	}
	if k.err != nil {
		return h, k.err
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
	if (h.Experts == 0 || h.DenseLeading > 0) && h.FFN == 0 {
		return h, fmt.Errorf("%w: %s.feed_forward_length is missing", ErrHyper, arch)
	}
	if h.Groups > 1 && (h.Experts%h.Groups != 0 || h.GroupsUsed < 1 || h.GroupsUsed > h.Groups || h.ExpertsUsed > h.GroupsUsed*(h.Experts/h.Groups)) {
		return h, fmt.Errorf("%w: %d experts in %d groups, %d groups used, %d experts used", ErrHyper, h.Experts, h.Groups, h.GroupsUsed, h.ExpertsUsed)
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
