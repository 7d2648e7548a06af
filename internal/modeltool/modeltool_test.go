package modeltool

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Inspect says which layers are dense and which route to experts, in text
// and in JSON. The layer maps come from testdata/README.md.
func TestInspectLayerMap(t *testing.T) {
	cases := []struct {
		file       string
		line       string // the text's layers line
		moe, dense []int
	}{
		{"tiny-deepseek2-lite-f32", "layers        4 (dense 0; MoE 1–3)   n_embd 64", []int{1, 2, 3}, []int{0}},
		{"tiny-mixtral-f32", "layers        2   n_embd 64", []int{0, 1}, []int{}},
	}
	for _, c := range cases {
		path := "../../testdata/models/" + c.file + ".gguf"
		var text, js bytes.Buffer
		if err := Inspect(InspectConfig{Path: path}, &text); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !slices.Contains(strings.Split(text.String(), "\n"), c.line) {
			t.Errorf("%s: no line %q in\n%s", c.file, c.line, text.String())
		}
		if err := Inspect(InspectConfig{Path: path, JSON: true}, &js); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		var r struct {
			MoE   []int `json:"moe_layers"`
			Dense []int `json:"dense_layers"`
		}
		if err := json.Unmarshal(js.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !slices.Equal(r.MoE, c.moe) || !slices.Equal(r.Dense, c.dense) || r.Dense == nil {
			t.Errorf("%s: JSON moe_layers %v, dense_layers %v; want %v and %v", c.file, r.MoE, r.Dense, c.moe, c.dense)
		}
	}
}

func TestSpans(t *testing.T) {
	cases := []struct {
		layers []int
		want   string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{1, 2, 3}, "1–3"},
		{[]int{0, 1, 2, 5, 7, 8}, "0–2, 5, 7–8"},
	}
	for _, c := range cases {
		if got := spans(c.layers); got != c.want {
			t.Errorf("spans(%v) = %q, want %q", c.layers, got, c.want)
		}
	}
}

// Inspect says which layers slide and what gpt-oss's attention and router
// carry beyond the common parts; the expected lines are
// testdata/README.md's description of tiny-gptoss-f32 (window 8 on layers
// 0 and 2, q/k/v/o biases, per-head sinks, YaRN factor 4 over 64
// positions, router and expert biases).
func TestInspectGptoss(t *testing.T) {
	path := "../../testdata/models/tiny-gptoss-f32.gguf"
	var text, js bytes.Buffer
	if err := Inspect(InspectConfig{Path: path}, &text); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(text.String(), "\n")
	for _, want := range []string{
		"attention     4 heads, 2 KV heads, head size 32, RoPE base 150000 (NEOX)",
		"window        8 positions on layers 0, 2; full attention on 1, 3",
		"attn extras   q/k/v/o biases, per-head sinks",
		"RoPE scaling  yarn, factor 4, original context 64",
		"experts       8 per layer, 2 used, ffn 64, router bias, expert biases",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("no line %q in\n%s", want, text.String())
		}
	}
	if err := Inspect(InspectConfig{Path: path, JSON: true}, &js); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Sliding []int `json:"sliding_layers"`
		Hyper   struct {
			Window int `json:"sliding_window"`
		} `json:"hyperparameters"`
	}
	if err := json.Unmarshal(js.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Sliding, []int{0, 2}) || r.Hyper.Window != 8 {
		t.Errorf("JSON sliding_layers %v, sliding_window %d; want [0 2] and 8", r.Sliding, r.Hyper.Window)
	}
}

// A tiny synthetic model has its llama.cpp fixture's shape, so inspect
// describes the two alike, line for line after the file name: the same
// hyperparameters, tensor table (F32, so the same bytes) and census.
func TestSynthTinyInspectsAsFixture(t *testing.T) {
	for _, c := range []struct{ arch, fixture string }{
		{"deepseek2", "tiny-deepseek3-f32"},
		{"gpt-oss", "tiny-gptoss-f32"},
	} {
		path := filepath.Join(t.TempDir(), c.arch+".gguf")
		if err := Synth(t.Context(), synth.Config{Arch: c.arch, Preset: "tiny", DType: tensor.F32, Seed: 1}, path, nil); err != nil {
			t.Fatal(err)
		}
		var got, want bytes.Buffer
		if err := Inspect(InspectConfig{Path: path}, &got); err != nil {
			t.Fatal(err)
		}
		if err := Inspect(InspectConfig{Path: "../../testdata/models/" + c.fixture + ".gguf"}, &want); err != nil {
			t.Fatal(err)
		}
		_, g, _ := strings.Cut(got.String(), "\n")
		_, w, _ := strings.Cut(want.String(), "\n")
		if g != w {
			t.Errorf("%s: synth tiny inspects as\n%s\nwant, as %s,\n%s", c.arch, g, c.fixture, w)
		}
	}
}

func TestStrided(t *testing.T) {
	cases := []struct {
		layers []int
		want   string
	}{
		{[]int{0, 2}, "0, 2"},
		{[]int{0, 2, 4}, "0, 2, 4"},
		{[]int{0, 2, 4, 6, 8, 10}, "0, 2, …, 10 (every other)"},
		{[]int{1, 3, 5, 7}, "1, 3, …, 7 (every other)"},
		{[]int{2, 5, 8, 11}, "2, 5, …, 11 (every 3)"},
		{[]int{0, 1, 2, 4, 5, 6}, "0–2, 4–6"},
		{[]int{0, 2, 4, 7}, "0, 2, 4, 7"},
	}
	for _, c := range cases {
		if got := strided(c.layers); got != c.want {
			t.Errorf("strided(%v) = %q, want %q", c.layers, got, c.want)
		}
	}
}
