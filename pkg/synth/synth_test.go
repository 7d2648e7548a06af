package synth

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

func write(t *testing.T, c Config) []byte {
	t.Helper()
	w, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// referenceFile is llama.cpp's tiny fixture each architecture's tiny
// preset copies the shape of (testdata/README.md).
var referenceFile = map[string]string{
	"mixtral":   "tiny-mixtral-f32.gguf",
	"qwen2moe":  "tiny-qwen2moe-f32.gguf",
	"qwen3moe":  "tiny-qwen3moe-f32.gguf",
	"olmoe":     "tiny-olmoe-f32.gguf",
	"deepseek2": "tiny-deepseek3-f32.gguf",
	"gpt-oss":   "tiny-gptoss-f32.gguf",
}

// blockOf is the number of values in one block of each type, as ggml
// defines them (QK_K = 256, QK8_0 = QK_MXFP4 = 32).
var blockOf = map[tensor.DType]int{tensor.F32: 1, tensor.F16: 1, tensor.Q8_0: 32, tensor.MXFP4: 32,
	tensor.Q4_K: 256, tensor.Q5_K: 256, tensor.Q6_K: 256}

// wantType is the type a tensor of a synth file written in dt must have,
// by the rules Config documents, re-derived here from the tensor's name
// and shape: norms, biases, sinks, the router and other vectors stay F32;
// MXFP4 is for 3-D weights only, as llama-quantize's MXFP4_MOE gives it
// (the routed experts, and deepseek2's per-head attn_k_b and attn_v_b),
// Q8_0 for the other matrices; the
// K-quants give the head Q6_K; and a matrix whose rows do not fill whole
// blocks falls back to Q8_0, then F16, as llama-quantize does.
func wantType(name string, dims []uint64, dt tensor.DType) tensor.DType {
	if len(dims) < 2 || !strings.HasSuffix(name, ".weight") || strings.Contains(name, "ffn_gate_inp") {
		return tensor.F32
	}
	t := dt
	switch {
	case dt == tensor.MXFP4 && len(dims) < 3:
		t = tensor.Q8_0
	case name == "output.weight" && (dt == tensor.Q4_K || dt == tensor.Q5_K):
		t = tensor.Q6_K
	}
	for _, c := range []tensor.DType{t, tensor.Q8_0, tensor.F16} {
		if dims[0]%uint64(blockOf[c]) == 0 {
			return c
		}
	}
	return tensor.F32
}

// referenceCensus counts, from the reference file's tensor table and
// expert counts, what model.Census must report for a file of that shape:
// every element; the routed experts' tensors (llama.cpp's ffn_*_exps,
// weights and, for gpt-oss, their biases); the rest shared; and per token
// the shared part plus used/experts of the routed part.
func referenceCensus(t *testing.T, f *gguf.File) model.Census {
	t.Helper()
	arch, _ := f.Get("general.architecture")
	n, ok1 := f.Get(arch.V.(string) + ".expert_count")
	k, ok2 := f.Get(arch.V.(string) + ".expert_used_count")
	if !ok1 || !ok2 {
		t.Fatalf("reference file has no expert counts")
	}
	experts, _ := n.Int()
	used, _ := k.Int()
	var c model.Census
	for _, ti := range f.Tensors {
		e := int64(1)
		for _, d := range ti.Dims {
			e *= int64(d)
		}
		c.Total += e
		if ti.Name == "token_embd.weight" {
			c.Embeddings += e
		}
		if strings.Contains(ti.Name, "ffn_gate_exps.") || strings.Contains(ti.Name, "ffn_up_exps.") || strings.Contains(ti.Name, "ffn_down_exps.") {
			c.Routed += e
		} else {
			c.Shared += e
		}
	}
	c.ActivePerToken = c.Shared + c.Routed*used/experts
	return c
}

// TestTinyMatchesReferenceTable writes every architecture in every type
// and checks the file against llama.cpp's fixture of the same shape: the
// same tensors in the same order with the same dimensions, each in the
// type the documented rules give it (wantType), and a parameter census
// equal to one counted from the fixture's table (referenceCensus). The
// tensor data read back must be what was written.
func TestTinyMatchesReferenceTable(t *testing.T) {
	for _, arch := range Archs {
		ref, err := gguf.Open("../../testdata/models/"+referenceFile[arch], gguf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		wantCensus := referenceCensus(t, ref)
		for _, dt := range DTypes {
			c := Config{Arch: arch, Preset: "tiny", DType: dt, Seed: 7}
			t.Run(fmt.Sprintf("%s-%s", arch, dt), func(t *testing.T) {
				data := write(t, c)
				limit := 2 << 20
				switch arch {
				case "deepseek2":
					limit = 5 << 20 / 2 // the shape of llama.cpp's tiny-deepseek3 fixture: 2.2 MB in F32
				case "gpt-oss":
					limit = 5 << 20 / 2 // the shape of llama.cpp's tiny-gptoss fixture: 2.3 MB in F32
				}
				if len(data) > limit {
					t.Errorf("tiny file is %d bytes, want under %d", len(data), limit)
				}
				f, err := gguf.Read(bytes.NewReader(data), int64(len(data)), gguf.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if len(f.Tensors) != len(ref.Tensors) {
					t.Errorf("%d tensors, llama.cpp's %s has %d", len(f.Tensors), referenceFile[arch], len(ref.Tensors))
				}
				for i := range min(len(f.Tensors), len(ref.Tensors)) {
					got, want := f.Tensors[i], ref.Tensors[i]
					wt := wantType(want.Name, want.Dims, dt)
					if got.Name != want.Name || !slices.Equal(got.Dims, want.Dims) || got.Type != wt {
						t.Errorf("tensor %d: %s %v %s, want %s %v %s", i, got.Name, got.Dims, got.Type, want.Name, want.Dims, wt)
					}
				}
				mf, err := model.NewFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if got := mf.Census(); got.Total != wantCensus.Total || got.Embeddings != wantCensus.Embeddings ||
					got.Routed != wantCensus.Routed || got.Shared != wantCensus.Shared || got.ActivePerToken != wantCensus.ActivePerToken {
					t.Errorf("census %+v, want (from the reference table) total %d, embeddings %d, routed %d, shared %d, active %d", got,
						wantCensus.Total, wantCensus.Embeddings, wantCensus.Routed, wantCensus.Shared, wantCensus.ActivePerToken)
				}
				// The write path: the bytes read back are the bytes a
				// second writer generates (the determinism of the values
				// is TestDeterministic's).
				w, _ := New(c)
				for _, wt := range w.Tensors {
					var want bytes.Buffer
					if wt.Write != nil {
						if err := wt.Write(&want); err != nil {
							t.Fatal(err)
						}
					} else {
						want.Write(wt.Data)
					}
					got, err := f.TensorData(wt.Name)
					if err != nil || !bytes.Equal(got, want.Bytes()) {
						t.Errorf("%s: data read back differs from the data written (%v)", wt.Name, err)
					}
				}
			})
		}
	}
}

// TestTinyRuns loads every architecture in every type twice, from two
// files written apart, and runs the same prompt through each, then one
// decode step: every logit is finite, the two runs agree bit for bit,
// and the logits are not flat (the weights' scales are meant to give
// them a spread; a span under 1 means a scale went wrong).
func TestTinyRuns(t *testing.T) {
	for _, arch := range Archs {
		for _, dt := range DTypes {
			c := Config{Arch: arch, Preset: "tiny", DType: dt, Seed: 7}
			t.Run(fmt.Sprintf("%s-%s", arch, dt), func(t *testing.T) {
				run := func() [][]float32 {
					data := write(t, c)
					f, err := gguf.Read(bytes.NewReader(data), int64(len(data)), gguf.Limits{})
					if err != nil {
						t.Fatal(err)
					}
					mf, err := model.NewFile(f)
					if err != nil {
						t.Fatal(err)
					}
					m, err := model.LoadLocal(mf, nil)
					if err != nil {
						t.Fatal(err)
					}
					seq := m.NewSequence()
					var rows [][]float32
					for _, toks := range [][]int32{{510, 1, 2, 3}, {4}} {
						out, err := m.Forward(t.Context(), []model.Chunk{{Seq: seq, Tokens: toks}})
						if err != nil {
							t.Fatal(err)
						}
						rows = append(rows, slices.Clone(out[0]))
					}
					return rows
				}
				a, b := run(), run()
				for step, row := range a {
					lo, hi := math.Inf(1), math.Inf(-1)
					for i, v := range row {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							t.Fatalf("step %d: logit %d is %g", step, i, v)
						}
						lo, hi = min(lo, float64(v)), max(hi, float64(v))
					}
					if hi-lo < 1 {
						t.Errorf("step %d: logits span only %g: flat", step, hi-lo)
					}
					if !slices.Equal(row, b[step]) {
						t.Errorf("step %d: two loads of the same file give different logits", step)
					}
				}
			})
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, arch := range []string{"mixtral", "deepseek2", "gpt-oss"} {
		a := write(t, Config{Arch: arch, Preset: "tiny", DType: tensor.Q8_0, Seed: 1})
		b := write(t, Config{Arch: arch, Preset: "tiny", DType: tensor.Q8_0, Seed: 1})
		c := write(t, Config{Arch: arch, Preset: "tiny", DType: tensor.Q8_0, Seed: 2})
		if !bytes.Equal(a, b) {
			t.Errorf("%s: same seed gave different files", arch)
		}
		if bytes.Equal(a, c) {
			t.Errorf("%s: different seeds gave the same file", arch)
		}
	}
}

func TestVocab(t *testing.T) {
	v, err := NewVocab(512)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 512 || v.BOS != 510 || v.EOS != 511 || v.Tokens[510] != "<|bos|>" {
		t.Fatalf("layout: %d tokens, BOS %d %q, EOS %d", len(v.Tokens), v.BOS, v.Tokens[v.BOS], v.EOS)
	}
	if len(v.Merges) != 254 {
		t.Errorf("%d merges, want 254", len(v.Merges))
	}
	if v.Tokens[32] != "Ġ" {
		t.Errorf("token 32 is %q, want Ġ", v.Tokens[32])
	}
	for i, m := range v.Merges {
		a, b, _ := bytes.Cut([]byte(m), []byte(" "))
		if v.Tokens[256+i] != string(a)+string(b) {
			t.Errorf("merge %d %q does not make token %q", i, m, v.Tokens[256+i])
		}
	}
	if _, err := NewVocab(100); err == nil {
		t.Error("vocabulary of 100: got nil error")
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Arch: "gpt9", Preset: "tiny", DType: tensor.F32},
		{Arch: "mixtral", Preset: "huge", DType: tensor.F32},
		{Arch: "mixtral", Preset: "tiny", DType: tensor.Q4_0},
		{Arch: "deepseek2", Preset: "huge", DType: tensor.F32},
		{Arch: "deepseek2", Preset: "tiny", DType: tensor.Q4_0},
		{Arch: "gpt-oss", Preset: "huge", DType: tensor.F32},
		{Arch: "gpt-oss", Preset: "tiny", DType: tensor.Q4_0},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v: got nil error", c)
		}
	}
}
