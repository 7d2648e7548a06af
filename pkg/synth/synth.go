// Package synth writes deterministic random-weight GGUF models in the
// layout llama.cpp loads (tensor names, metadata keys, a byte-level BPE
// vocabulary), for tests, benchmarks and demos. The weights mean nothing;
// they are scaled so that logits are not flat.
package synth

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Config says what to synthesise.
type Config struct {
	Arch   string       // mixtral, qwen2moe, qwen3moe, olmoe, deepseek2 or gpt-oss
	Preset string       // tiny, small, medium, or full (deepseek2 only: DeepSeek-V3's shape)
	DType  tensor.DType // F32, F16, Q8_0, Q4_K, Q5_K or MXFP4 for weight matrices
	// Mix "m" gives some matrices more bits, as llama.cpp's _M file types
	// do: Q6_K for attn_v and ffn_down in the layers use_more_bits picks.
	// "" (the zero value) stores every matrix in DType, with the head Q6_K
	// for the K-quants. MXFP4 goes to the routed experts only, the other
	// matrices Q8_0, as in llama.cpp's MXFP4_MOE files.
	Mix  string
	Seed uint64
	// HeaderOnly makes New's writer write the header only: the metadata and
	// every tensor declared, with no data (gguf.Writer.HeaderOnly) — a file
	// of the model's shapes and sizes for planning, a few MB whatever the
	// model's size.
	HeaderOnly bool
}

// Archs and Presets list the accepted values of Config.
var (
	Archs   = []string{"mixtral", "qwen2moe", "qwen3moe", "olmoe", "deepseek2", "gpt-oss"}
	Presets = []string{"tiny", "small", "medium", "full"}
	DTypes  = []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_K, tensor.Q5_K, tensor.MXFP4}
)

// FileTypes are the names ParseFileType takes, as llama.cpp names its
// file types: a DType's name, or a K-quant's with _m.
var FileTypes = []string{"f32", "f16", "q8_0", "q4_k", "q4_k_m", "q5_k", "q5_k_m", "mxfp4"}

// ParseFileType returns the DType and Mix of a file type name (FileTypes).
func ParseFileType(s string) (tensor.DType, string, error) {
	name, mix := strings.ToLower(s), ""
	if base, ok := strings.CutSuffix(name, "_m"); ok && (base == "q4_k" || base == "q5_k") {
		name, mix = base, "m"
	}
	t, err := tensor.ParseDType(name)
	if err != nil || !slices.Contains(DTypes, t) {
		return 0, "", fmt.Errorf("synth: unknown file type %q (want one of %v)", s, FileTypes)
	}
	return t, mix, nil
}

// shape is one Mixtral-style model's hyperparameters.
type shape struct {
	arch                                              string
	vocab, ctx, embd, layers, heads, kvHeads, headDim int
	experts, used, ffn, sharedFFN                     int
	eps, ropeBase                                     float32
}

func (c Config) shape() (shape, error) {
	var s shape
	switch c.Preset {
	case "tiny":
		s = shape{vocab: 512, ctx: 256, embd: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, experts: 8, used: 2, ffn: 128}
	case "small":
		s = shape{vocab: 4096, ctx: 1024, embd: 256, layers: 4, heads: 8, kvHeads: 4, headDim: 32, experts: 8, used: 2, ffn: 512}
	case "medium":
		s = shape{vocab: 32000, ctx: 2048, embd: 1024, layers: 8, heads: 16, kvHeads: 8, headDim: 64, experts: 8, used: 2, ffn: 2816}
	default:
		return s, fmt.Errorf("synth: unknown preset %q (want one of %v)", c.Preset, Presets)
	}
	s.arch, s.eps, s.ropeBase = c.Arch, 1e-5, 1e4
	switch c.Arch {
	case "mixtral":
	case "qwen3moe":
		s.experts, s.used, s.headDim, s.ffn = 2*s.experts, 2*s.used, 2*s.headDim, s.ffn/2
		s.eps, s.ropeBase = 1e-6, 1e6
	case "qwen2moe":
		s.ffn, s.sharedFFN = s.ffn/2, s.ffn
		s.eps, s.ropeBase = 1e-6, 1e6
	case "olmoe":
		s.kvHeads = s.heads
	default:
		return s, fmt.Errorf("synth: unknown architecture %q (want one of %v)", c.Arch, Archs)
	}
	return s, nil
}

// ggufArch is the general.architecture a synthetic arch is written as.
func ggufArch(a string) string {
	if a == "mixtral" {
		return "llama"
	}
	return a
}

// fileType is llama.cpp's general.file_type of a DType and Mix: ALL_F32,
// MOSTLY_F16, Q8_0, Q4_K_M (as plain Q4_K has always been written), Q5_K_S,
// Q5_K_M, MXFP4_MOE.
var fileType = map[string]uint32{"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K": 15, "Q4_Km": 15, "Q5_K": 16, "Q5_Km": 17, "MXFP4": 38}

// New returns a GGUF writer for the model; its tensors generate their
// data when written, so large models are never held in memory. The
// writer's tensor table (names, types, shapes) is complete before any
// data is generated.
func New(c Config) (*gguf.Writer, error) {
	var f family
	switch c.Arch {
	case "deepseek2":
		s, err := deepseek2Shape(c.Preset)
		if err != nil {
			return nil, err
		}
		f = s
	case "gpt-oss":
		s, err := gptossShape(c.Preset)
		if err != nil {
			return nil, err
		}
		f = s
	default:
		s, err := c.shape()
		if err != nil {
			return nil, err
		}
		f = s
	}
	if !slices.Contains(DTypes, c.DType) {
		return nil, fmt.Errorf("synth: unsupported type %s (want one of %v)", c.DType, DTypes)
	}
	if c.Mix != "" && (c.Mix != "m" || c.DType != tensor.Q4_K && c.DType != tensor.Q5_K) {
		return nil, fmt.Errorf("synth: mix %q of %s: only Q4_K and Q5_K take the mix \"m\"", c.Mix, c.DType)
	}
	// A dry run counts the layers, which the mix's choice depends on.
	dry := &gguf.Writer{}
	f.write(dry, "x", gen{mat: c.DType})
	g := gen{seed: c.Seed, mat: c.DType, mix: c.Mix, layers: layerCount(dry)}
	voc, err := NewVocab(f.vocabSize())
	if err != nil {
		return nil, err
	}
	arch := ggufArch(c.Arch)
	w := &gguf.Writer{HeaderOnly: c.HeaderOnly}
	w.Set("general.architecture", gguf.Str(arch))
	w.Set("general.name", gguf.Str(fmt.Sprintf("synth-%s-%s-%s%s", c.Arch, c.Preset, c.DType, map[string]string{"m": "_M"}[c.Mix])))
	desc := fmt.Sprintf("random weights (seed %d) written by switchyard model synth", c.Seed)
	if c.HeaderOnly {
		desc = "the header only: tensors declared, no data (switchyard model synth --header-only)"
	}
	w.Set("general.description", gguf.Str(desc))
	w.Set("general.file_type", gguf.U32(fileType[c.DType.String()+c.Mix]))
	w.Set("general.quantization_version", gguf.U32(2))
	f.write(w, arch, g)
	w.Set("tokenizer.ggml.model", gguf.Str("gpt2"))
	w.Set("tokenizer.ggml.pre", gguf.Str("gpt-2"))
	w.Set("tokenizer.ggml.tokens", gguf.Strs(voc.Tokens))
	w.Set("tokenizer.ggml.token_type", gguf.I32s(voc.Types))
	w.Set("tokenizer.ggml.merges", gguf.Strs(voc.Merges))
	w.Set("tokenizer.ggml.bos_token_id", gguf.U32(uint32(voc.BOS)))
	w.Set("tokenizer.ggml.eos_token_id", gguf.U32(uint32(voc.EOS)))
	w.Set("tokenizer.ggml.add_bos_token", gguf.BoolV(true))
	w.Set("tokenizer.ggml.add_eos_token", gguf.BoolV(false))
	return w, nil
}

// family is one architecture at one preset: it writes its own {arch}.*
// metadata and all tensors; New writes the general.* and tokenizer keys
// around it.
type family interface {
	vocabSize() int
	write(w *gguf.Writer, arch string, g gen)
}

func (s shape) vocabSize() int { return s.vocab }

// write lays out the Mixtral-style families: every layer has attention
// with separate q/k/v and a routed-expert FFN.
func (s shape) write(w *gguf.Writer, arch string, g gen) {
	u := func(k string, v int) { w.Set(arch+"."+k, gguf.U32(uint32(v))) }
	u("vocab_size", s.vocab)
	u("context_length", s.ctx)
	u("embedding_length", s.embd)
	u("block_count", s.layers)
	u("feed_forward_length", s.ffn)
	u("attention.head_count", s.heads)
	u("attention.head_count_kv", s.kvHeads)
	if s.headDim != s.embd/s.heads {
		u("attention.key_length", s.headDim)
		u("attention.value_length", s.headDim)
	}
	w.Set(arch+".attention.layer_norm_rms_epsilon", gguf.F32(s.eps))
	w.Set(arch+".rope.freq_base", gguf.F32(s.ropeBase))
	u("rope.dimension_count", s.headDim)
	u("expert_count", s.experts)
	u("expert_used_count", s.used)
	if s.arch == "qwen2moe" || s.arch == "qwen3moe" {
		u("expert_feed_forward_length", s.ffn)
	}
	if s.sharedFFN > 0 {
		u("expert_shared_feed_forward_length", s.sharedFFN)
	}

	E, q, kv := s.embd, s.heads*s.headDim, s.kvHeads*s.headDim
	dt := g.mat
	// Scales: rows of embeddings have unit RMS; a matrix with n inputs has
	// entries of RMS 1/sqrt(n) (so outputs keep the scale of their inputs),
	// except the head, whose logits get an RMS of about 3.
	w.Add(g.matrix("token_embd.weight", E, s.vocab, 1, dt))
	w.Add(g.norm("output_norm.weight", E))
	w.Add(g.matrix("output.weight", E, s.vocab, 3/math.Sqrt(float64(E)), headType(dt)))
	for l := range s.layers {
		p := fmt.Sprintf("blk.%d.", l)
		w.Add(g.norm(p+"attn_norm.weight", E))
		w.Add(g.matrix(p+"attn_q.weight", E, q, 1/math.Sqrt(float64(E)), dt))
		w.Add(g.matrix(p+"attn_k.weight", E, kv, 1/math.Sqrt(float64(E)), dt))
		w.Add(g.matrix(p+"attn_v.weight", E, kv, 1/math.Sqrt(float64(E)), dt))
		if s.arch == "qwen2moe" {
			w.Add(g.vector(p+"attn_q.bias", q, 0.1))
			w.Add(g.vector(p+"attn_k.bias", kv, 0.1))
			w.Add(g.vector(p+"attn_v.bias", kv, 0.1))
		}
		w.Add(g.matrix(p+"attn_output.weight", q, E, 1/math.Sqrt(float64(q)), dt))
		switch s.arch {
		case "qwen3moe":
			w.Add(g.norm(p+"attn_q_norm.weight", s.headDim))
			w.Add(g.norm(p+"attn_k_norm.weight", s.headDim))
		case "olmoe":
			w.Add(g.norm(p+"attn_q_norm.weight", q))
			w.Add(g.norm(p+"attn_k_norm.weight", kv))
		}
		w.Add(g.norm(p+"ffn_norm.weight", E))
		w.Add(g.matrix(p+"ffn_gate_inp.weight", E, s.experts, 2/math.Sqrt(float64(E)), tensor.F32))
		w.Add(g.experts(p+"ffn_gate_exps.weight", E, s.ffn, s.experts, 1/math.Sqrt(float64(E)), dt))
		w.Add(g.experts(p+"ffn_up_exps.weight", E, s.ffn, s.experts, 1/math.Sqrt(float64(E)), dt))
		w.Add(g.experts(p+"ffn_down_exps.weight", s.ffn, E, s.experts, 1/math.Sqrt(float64(s.ffn)), dt))
		if s.sharedFFN > 0 {
			w.Add(g.vector(p+"ffn_gate_inp_shexp.weight", E, 1/math.Sqrt(float64(E))))
			w.Add(g.matrix(p+"ffn_gate_shexp.weight", E, s.sharedFFN, 1/math.Sqrt(float64(E)), dt))
			w.Add(g.matrix(p+"ffn_up_shexp.weight", E, s.sharedFFN, 1/math.Sqrt(float64(E)), dt))
			w.Add(g.matrix(p+"ffn_down_shexp.weight", s.sharedFFN, E, 1/math.Sqrt(float64(s.sharedFFN)), dt))
		}
	}
}

// headType follows llama.cpp's K-quant file types in giving the output
// head Q6_K.
func headType(t tensor.DType) tensor.DType {
	if t == tensor.Q4_K || t == tensor.Q5_K {
		return tensor.Q6_K
	}
	return t
}

// layerCount is one more than the largest blk.N of the writer's tensors.
func layerCount(w *gguf.Writer) int {
	n := 0
	for _, t := range w.Tensors {
		if l, ok := layerOf(t.Name); ok {
			n = max(n, l+1)
		}
	}
	return n
}

// layerOf is N of a tensor named blk.N.….
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	n, _, _ := strings.Cut(rest, ".")
	l, err := strconv.Atoi(n)
	return l, err == nil
}

// useMoreBits is llama.cpp's use_more_bits: the first and last eighth of
// the layers, and every third between.
func useMoreBits(l, n int) bool { return l < n/8 || l >= 7*n/8 || (l-n/8)%3 == 2 }

// pick is the type of a weight matrix the family asked to store in t
// (experts: a routed experts' tensor), after the mix: the _M mix's Q6_K
// for attn_v and ffn_down where useMoreBits picks them; MXFP4 for routed
// experts only, Q8_0 for the other matrices.
func (g gen) pick(name string, t tensor.DType, experts bool) tensor.DType {
	if t != g.mat {
		return t // the head, the router: the family's own choice
	}
	switch {
	case t == tensor.MXFP4 && !experts:
		return tensor.Q8_0
	case g.mix == "m" && (strings.Contains(name, ".attn_v.") || strings.Contains(name, ".ffn_down")):
		if l, ok := layerOf(name); ok && useMoreBits(l, g.layers) {
			return tensor.Q6_K
		}
	}
	return t
}

// storeType is t when rows of n elements fit its blocks; otherwise the
// nearest type that fits (llama.cpp's quantiser falls back the same way).
func storeType(t tensor.DType, n int) tensor.DType {
	for _, c := range []tensor.DType{t, tensor.Q8_0, tensor.F16} {
		if n%c.BlockSize() == 0 {
			return c
		}
	}
	return tensor.F32
}

type gen struct {
	seed   uint64
	mat    tensor.DType
	mix    string // Config.Mix
	layers int    // the model's, for the mix
}

// rng is splitmix64, seeded per tensor so that every tensor's values are
// independent of the others and of the order they are written in.
type rng struct{ s uint64 }

func (g gen) rng(name string) *rng {
	h := fnv.New64a()
	h.Write([]byte(name))
	return &rng{s: g.seed*0x9E3779B97F4A7C15 ^ h.Sum64()}
}

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// uniform returns a value with mean 0 and standard deviation 1.
func (r *rng) uniform() float32 {
	return float32((float64(r.next()>>11)/(1<<53))*2-1) * 1.7320508 // √3: uniform on [-√3, √3] has unit variance
}

// fill writes rows × cols values of RMS scale in type t, a row at a time.
func (g gen) fill(name string, rows, cols int, scale float64, t tensor.DType, w io.Writer) error {
	r := g.rng(name)
	row := make([]float32, cols)
	buf := make([]byte, 0, t.RowBytes(cols))
	for range rows {
		for i := range row {
			row[i] = r.uniform() * float32(scale)
		}
		buf = tensor.Quantize(t, buf[:0], row)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func (g gen) matrix(name string, cols, rows int, scale float64, t tensor.DType) gguf.WriterTensor {
	t = storeType(g.pick(name, t, false), cols)
	return gguf.WriterTensor{Name: name, Type: t, Dims: []uint64{uint64(cols), uint64(rows)},
		Write: func(w io.Writer) error { return g.fill(name, rows, cols, scale, t, w) }}
}

func (g gen) experts(name string, cols, rows, n int, scale float64, t tensor.DType) gguf.WriterTensor {
	t = storeType(g.pick(name, t, true), cols)
	return gguf.WriterTensor{Name: name, Type: t, Dims: []uint64{uint64(cols), uint64(rows), uint64(n)},
		Write: func(w io.Writer) error { return g.fill(name, rows*n, cols, scale, t, w) }}
}

// vector is an F32 vector of RMS scale (biases, the shared-expert gate).
func (g gen) vector(name string, n int, scale float64) gguf.WriterTensor {
	return gguf.WriterTensor{Name: name, Type: tensor.F32, Dims: []uint64{uint64(n)},
		Write: func(w io.Writer) error { return g.fill(name, 1, n, scale, tensor.F32, w) }}
}

// norm is an F32 norm scale near 1.
func (g gen) norm(name string, n int) gguf.WriterTensor {
	r := g.rng(name)
	data := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(1+0.1*r.uniform()))
	}
	return gguf.WriterTensor{Name: name, Type: tensor.F32, Dims: []uint64{uint64(n)}, Data: data}
}

// Size is the number of bytes the writer's tensor data takes.
func Size(w *gguf.Writer) int64 {
	var n int64
	for _, t := range w.Tensors {
		e := uint64(1)
		for _, d := range t.Dims {
			e *= d
		}
		n += int64(e / uint64(t.Type.BlockSize()) * uint64(t.Type.BlockBytes()))
	}
	return n
}
