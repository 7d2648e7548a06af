package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

const (
	tinyDeepseekLite = "../../testdata/models/tiny-deepseek2-lite-f32.gguf"
	tinyDeepseek3    = "../../testdata/models/tiny-deepseek3-f32.gguf"
)

// f32s decodes little-endian F32 tensor bytes.
func f32s(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// TestDeepseekKVB: a file in the older layout, one attn_kv_b per layer and
// no *_mla keys (as converters wrote DeepSeek files before the split), is
// split at load into the same weights and gives the same logits, bit for
// bit, as the split file.
func TestDeepseekKVB(t *testing.T) {
	const H, lora, nope, v, rope = 4, 32, 32, 32, 16
	old := rewrite(t, tinyDeepseekLite, func(w *gguf.Writer, g *gguf.File) {
		setKV(w, "deepseek2.attention.key_length", gguf.U32(nope+rope))
		setKV(w, "deepseek2.attention.value_length", gguf.U32(v))
		dropKV(w, "deepseek2.attention.key_length_mla")
		dropKV(w, "deepseek2.attention.value_length_mla")
		for l := range 4 {
			kb := dropTensors(w, func(n string) bool { return n == fmt.Sprintf("blk.%d.attn_k_b.weight", l) })
			vb := dropTensors(w, func(n string) bool { return n == fmt.Sprintf("blk.%d.attn_v_b.weight", l) })
			k, vv := f32s(kb[0].Data), f32s(vb[0].Data) // [nope, lora, H], [lora, v, H]
			// attn_kv_b [lora, H·(nope+v)]: head h's nope key rows, then its
			// v value rows, each of lora values.
			kvb := make([]float32, 0, lora*H*(nope+v))
			for h := range H {
				for j := range nope {
					for c := range lora {
						kvb = append(kvb, k[h*lora*nope+c*nope+j])
					}
				}
				kvb = append(kvb, vv[h*v*lora:(h+1)*v*lora]...)
			}
			w.Add(gguf.WriterTensor{Name: fmt.Sprintf("blk.%d.attn_kv_b.weight", l), Type: tensor.F32,
				Dims: []uint64{lora, H * (nope + v)}, Data: tensor.F32Bytes(kvb)})
		}
	})
	split := mustOpen(t, tinyDeepseekLite)
	if old.HeadDim != split.HeadDim || old.ValueDim != split.ValueDim {
		t.Fatalf("old layout reads head %d/value %d, split %d/%d", old.HeadDim, old.ValueDim, split.HeadDim, split.ValueDim)
	}
	a, b := logitsOf(t, split, prompt), logitsOf(t, old, prompt)
	if !slices.Equal(a, b) {
		t.Errorf("attn_kv_b file's logits differ from the split file's: max |Δ| %g", maxDiff(a, b))
	}
}

// TestDeepseekLayers: layer 0 is dense, so it has no units and its routing
// slots are -1; MLA's cache holds kv_lora + rope values per token and layer.
func TestDeepseekLayers(t *testing.T) {
	f := mustOpen(t, tinyDeepseek3)
	if got := f.MoELayers(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("MoE layers %v, want [1 2 3]", got)
	}
	if _, err := f.LoadExpert(Unit{0, 0}); !errors.Is(err, ErrTensor) || !strings.Contains(err.Error(), "dense") {
		t.Errorf("loading a unit of the dense layer: %v, want an error naming it dense", err)
	}
	m, err := LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Experts.(*Local).Units(); len(got) != 3*16 {
		t.Errorf("%d units loaded, want 48", len(got))
	}
	if got, want := m.KVBytesPerToken(), 4*4*(32+16); got != want {
		t.Errorf("KV cache %d bytes a token, want %d", got, want)
	}
	if got, want := m.PlainKVBytesPerToken(), 4*4*4*(48+32); got != want {
		t.Errorf("plain KV cache %d bytes a token, want %d", got, want)
	}
	ch := []Chunk{{Seq: m.NewSequence(), Tokens: prompt, WantRouting: true}}
	if _, err := m.Forward(t.Context(), ch); err != nil {
		t.Fatal(err)
	}
	if got, want := m.KV.BlockBytes(), 4*BlockTokens*(32+16); got != want {
		t.Errorf("a cache block is %d bytes, want %d", got, want)
	}
	k := 4
	for pos := range prompt {
		for l := range 4 {
			got := ch[0].Routing[(pos*4+l)*k : (pos*4+l+1)*k]
			if l == 0 && !slices.Equal(got, []int32{-1, -1, -1, -1}) {
				t.Errorf("position %d dense layer routing %v, want -1s", pos, got)
			}
			if l > 0 && slices.Contains(got, -1) {
				t.Errorf("position %d layer %d routing %v", pos, l, got)
			}
		}
	}
}

// TestScoreRouterGroups checks the grouped sigmoid router against a float64
// re-derivation of DeepSeek-V3's rule, on the tiny V3 file's layer 1 gate.
func TestScoreRouterGroups(t *testing.T) {
	f := mustOpen(t, tinyDeepseek3)
	m, err := LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Shared.Layers[1].FFN.(*moe).Router.(*scoreRouter)
	W := f32s(mustTensor(t, f, "blk.1.ffn_gate_inp.weight"))
	bias := f32s(mustTensor(t, f, "blk.1.exp_probs_b.bias"))
	const E, ne, k, groups, used = 64, 16, 4, 4, 2
	x := make([]float32, 8*E)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37)) * 2
	}
	ws := m.ws.get()
	defer m.ws.put(ws)
	choices, weights := r.route(m, ws, x, 8)
	for row := range 8 {
		// Reference: sigmoid scores, biased copy for selection, group score
		// = sum of the group's two best, keep the 2 best groups, top-4 of
		// what is left, weights = unbiased scores renormalised × 2.5.
		p, s := make([]float64, ne), make([]float64, ne)
		for e := range ne {
			var dot float64
			for c := range E {
				dot += float64(W[e*E+c]) * float64(x[row*E+c])
			}
			p[e] = 1 / (1 + math.Exp(-dot))
			s[e] = p[e] + float64(bias[e])
		}
		gs := make([]float64, groups)
		for g := range groups {
			v := slices.Clone(s[g*4 : g*4+4])
			slices.Sort(v)
			gs[g] = v[3] + v[2]
		}
		order := []int{0, 1, 2, 3}
		slices.SortFunc(order, func(a, b int) int { return -cmpF(gs[a], gs[b]) })
		var cand []int
		for _, g := range order[:used] {
			for e := g * 4; e < g*4+4; e++ {
				cand = append(cand, e)
			}
		}
		slices.SortFunc(cand, func(a, b int) int { return -cmpF(s[a], s[b]) })
		var sum float64
		for _, e := range cand[:k] {
			sum += p[e]
		}
		for j, e := range cand[:k] {
			if got := choices[row*k+j]; got != int32(e) {
				t.Fatalf("row %d slot %d: expert %d, want %d", row, j, got, e)
			}
			if want := p[e] / sum * 2.5; math.Abs(float64(weights[row*k+j])-want) > 1e-6 {
				t.Errorf("row %d slot %d: weight %g, want %g", row, j, weights[row*k+j], want)
			}
		}
	}
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func mustTensor(t *testing.T, f *File, name string) []byte {
	t.Helper()
	b, err := f.TensorData(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadDeepseek(t *testing.T) {
	cases := []struct {
		name string
		edit func(w *gguf.Writer, g *gguf.File)
		want error
		msg  string
	}{
		{"no kv_lora_rank", func(w *gguf.Writer, g *gguf.File) { dropKV(w, "deepseek2.attention.kv_lora_rank") },
			ErrHyper, "deepseek2.attention.kv_lora_rank is missing"},
		{"groups do not divide experts", func(w *gguf.Writer, g *gguf.File) { setKV(w, "deepseek2.expert_group_count", gguf.U32(3)) },
			ErrHyper, "16 experts in 3 groups"},
		{"q_lora without its norm", func(w *gguf.Writer, g *gguf.File) {
			dropTensors(w, func(n string) bool { return n == "blk.2.attn_q_a_norm.weight" })
		}, ErrTensor, `"blk.2.attn_q_a.weight"`},
		{"no k_b, no kv_b", func(w *gguf.Writer, g *gguf.File) {
			dropTensors(w, func(n string) bool {
				return strings.HasSuffix(n, "attn_k_b.weight") || strings.HasSuffix(n, "attn_v_b.weight")
			})
		}, ErrTensor, `missing tensor "blk.0.attn_k_b.weight"`},
		{"wrong latent width", func(w *gguf.Writer, g *gguf.File) { setKV(w, "deepseek2.attention.kv_lora_rank", gguf.U32(24)) },
			ErrTensor, `"blk.0.attn_kv_a_mqa.weight" has shape [64 48], want [64 40]`},
		{"unknown rope scaling", func(w *gguf.Writer, g *gguf.File) { setKV(w, "deepseek2.rope.scaling.type", gguf.Str("longrope")) },
			ErrHyper, `rope.scaling.type "longrope"`},
		{"missing shared expert", func(w *gguf.Writer, g *gguf.File) {
			dropTensors(w, func(n string) bool { return strings.Contains(n, "_shexp") })
		}, ErrTensor, `missing tensor "blk.1.ffn_gate_shexp.weight"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := rewriteErr(t, tinyDeepseek3, c.edit)
			if err == nil {
				_, err = LoadLocal(f, nil)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("got %v, want %v mentioning %s", err, c.want, c.msg)
			}
		})
	}
}
