package modeltool

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
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
