package modeltool

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

const tokData = "../../testdata/tokenizers/"

// gpt2VocabFile writes OpenAI's GPT-2 vocabulary (testdata/tokenizers) as
// a GGUF file with tokenizer metadata and nothing else, <|endoftext|> a
// control token that BOS names, and returns its path and the vocabulary.
func gpt2VocabFile(t *testing.T, pre string) (string, map[string]int32) {
	t.Helper()
	b, err := os.ReadFile(tokData + "gpt2-encoder.json")
	if err != nil {
		t.Fatal(err)
	}
	var enc map[string]int32
	if err := json.Unmarshal(b, &enc); err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, len(enc))
	types := make([]int32, len(enc))
	for s, id := range enc {
		tokens[id], types[id] = s, tokenizer.TypeNormal
	}
	eot := enc["<|endoftext|>"]
	types[eot] = tokenizer.TypeControl
	bpe, err := os.ReadFile(tokData + "gpt2-vocab.bpe")
	if err != nil {
		t.Fatal(err)
	}
	merges := strings.Split(strings.TrimSpace(string(bpe)), "\n")[1:]
	var w gguf.Writer
	w.Set("tokenizer.ggml.model", gguf.Str("gpt2"))
	w.Set("tokenizer.ggml.pre", gguf.Str(pre))
	w.Set("tokenizer.ggml.tokens", gguf.Strs(tokens))
	w.Set("tokenizer.ggml.token_type", gguf.I32s(types))
	w.Set("tokenizer.ggml.merges", gguf.Strs(merges))
	w.Set("tokenizer.ggml.bos_token_id", gguf.U32(uint32(eot)))
	w.Set("tokenizer.ggml.add_bos_token", gguf.BoolV(true))
	path := filepath.Join(t.TempDir(), "gpt2-vocab.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path, enc
}

func tokenize(t *testing.T, c TokenizeConfig) []int32 {
	t.Helper()
	var out bytes.Buffer
	if err := Tokenize(c, &out); err != nil {
		t.Fatalf("Tokenize(%+v): %v", c, err)
	}
	var r struct{ Tokens []int32 }
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	return r.Tokens
}

// A vocabulary-only file tokenizes as gpt-3-encoder does (the published
// cases of testdata/tokenizers); --no-bos drops the BOS the file asks for;
// control-token text is text unless --special.
func TestTokenizeVocabularyOnly(t *testing.T) {
	path, enc := gpt2VocabFile(t, "gpt-2")
	b, err := os.ReadFile(tokData + "gpt2-cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Text   string  `json:"text"`
		Tokens []int32 `json:"tokens"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	eot := enc["<|endoftext|>"]
	for _, c := range cases {
		if got := tokenize(t, TokenizeConfig{Path: path, Text: c.Text, NoBOS: true}); !slices.Equal(got, c.Tokens) {
			t.Errorf("--no-bos %q: got %v, want %v", c.Text, got, c.Tokens)
		}
		want := append([]int32{eot}, c.Tokens...)
		if got := tokenize(t, TokenizeConfig{Path: path, Text: c.Text}); !slices.Equal(got, want) {
			t.Errorf("%q: got %v, want %v (BOS first)", c.Text, got, want)
		}
	}
	text := "<|endoftext|>"
	var plain []int32
	for _, p := range []string{"<", "|", "end", "of", "text", "|", ">"} {
		plain = append(plain, enc[p])
	}
	if got := tokenize(t, TokenizeConfig{Path: path, Text: text, NoBOS: true}); !slices.Equal(got, plain) {
		t.Errorf("%q without --special: got %v, want its text's tokens %v", text, got, plain)
	}
	if got := tokenize(t, TokenizeConfig{Path: path, Text: text, NoBOS: true, ParseSpecial: true}); !slices.Equal(got, []int32{eot}) {
		t.Errorf("%q with --special: got %v, want [%d]", text, got, eot)
	}
}

// An unknown pre-tokenizer is refused by name, not tokenized with another.
func TestTokenizeUnknownPre(t *testing.T) {
	path, _ := gpt2VocabFile(t, "gpt-5-imaginary")
	err := Tokenize(TokenizeConfig{Path: path, Text: "hi"}, &bytes.Buffer{})
	if !errors.Is(err, tokenizer.ErrUnknownPre) || !strings.Contains(err.Error(), `"gpt-5-imaginary"`) {
		t.Fatalf("got %v, want an error naming the pre-tokenizer", err)
	}
}
