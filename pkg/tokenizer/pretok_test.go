package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// corpus is testdata/tokenizers/corpus.json (written by pretok.py).
type corpus struct {
	Strings      []string `json:"strings"`
	SplitterOnly []string `json:"splitter_only"`
}

func readCorpus(t testing.TB) corpus {
	t.Helper()
	b, err := os.ReadFile(data + "corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	var c corpus
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Strings) < 1000 {
		t.Fatalf("corpus has %d strings", len(c.Strings))
	}
	return c
}

// TestPreTokenizersMatchTheirExpressions compares every supported
// tokenizer.ggml.pre value's splitter with its original regular expressions
// run by Python's regex module over the corpus (testdata/tokenizers/
// splits.json.gz, written by pretok.py, which maps the values to
// expressions on its own).
func TestPreTokenizersMatchTheirExpressions(t *testing.T) {
	c := readCorpus(t)
	texts := append(slices.Clone(c.Strings), c.SplitterOnly...)
	f, err := os.Open(data + "splits.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Pre      map[string]string `json:"pre"`
		Patterns map[string]struct {
			Regex  []string `json:"regex"`
			Splits [][]int  `json:"splits"`
		} `json:"patterns"`
	}
	if err := json.NewDecoder(zr).Decode(&g); err != nil {
		t.Fatal(err)
	}
	for name := range g.Pre {
		if _, ok := preSpecs[name]; !ok {
			t.Errorf("the golden file has tokenizer.ggml.pre %q, which the package does not support", name)
		}
	}
	for _, name := range preNames {
		t.Run(name, func(t *testing.T) {
			id, ok := g.Pre[name]
			if !ok {
				t.Fatalf("no golden splits for %q: add it to pretok.py", name)
			}
			want := g.Patterns[id].Splits
			if len(want) != len(texts) {
				t.Fatalf("golden %s has %d splits for %d strings", id, len(want), len(texts))
			}
			split := preSpecs[name].split
			bad := 0
			for i, text := range texts {
				got := split.split(text)
				lens := make([]int, len(got))
				for k, w := range got {
					lens[k] = utf8.RuneCountInString(w)
				}
				if !slices.Equal(lens, want[i]) {
					if bad++; bad <= 5 {
						t.Errorf("split %q = %q, want %q", text, got, cut(text, want[i]))
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d strings split differently from %s's expressions", bad, len(texts), id)
			}
			t.Logf("%s: %d strings split as the expressions of %s do", name, len(texts), id)
		})
	}
}

// cut splits text into pieces of the given rune lengths.
func cut(text string, lens []int) []string {
	r := []rune(text)
	var out []string
	for _, n := range lens {
		out = append(out, string(r[:n]))
		r = r[n:]
	}
	return out
}

func TestUnknownPreIsAnError(t *testing.T) {
	_, err := New("gpt2", "gpt-5-imaginary", []string{"a", "b", "ab"}, nil, nil, []string{"a b"})
	if !errors.Is(err, ErrUnknownPre) || !errors.Is(err, ErrTokenizer) {
		t.Fatalf("got %v, want an error wrapping ErrUnknownPre", err)
	}
	for _, want := range []string{`"gpt-5-imaginary"`, "deepseek-v3", "kimi-k2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	t.Logf("error: %v", err)
}

// llama.cpp's llama_vocab::impl::load: Llama 3-style and Tekken
// vocabularies add BOS unless the file says otherwise; others do not; a
// byte-level vocabulary needs merges, except Kimi-K2's.
func TestPreDefaults(t *testing.T) {
	toks, merges := []string{"a", "b", "ab"}, []string{"a b"}
	for _, c := range []struct {
		pre    string
		addBOS bool
	}{
		{"llama-bpe", true}, {"llama3", true}, {"falcon3", true}, {"tekken", true},
		{"gpt-2", false}, {"qwen2", false}, {"deepseek-v3", false}, {"gpt-4o", false}, {"glm4", false}, {"kimi-k2", false},
	} {
		tk, err := New("gpt2", c.pre, toks, nil, nil, merges)
		if err != nil {
			t.Fatalf("%s: %v", c.pre, err)
		}
		if tk.AddBOS != c.addBOS {
			t.Errorf("%s: AddBOS = %v, want %v", c.pre, tk.AddBOS, c.addBOS)
		}
	}
	if _, err := New("gpt2", "gpt-2", toks, nil, nil, nil); err == nil {
		t.Error("gpt-2 without merges: got nil error")
	}
	if _, err := New("gpt2", "kimi-k2", toks, nil, nil, nil); err != nil {
		t.Errorf("kimi-k2 without merges: %v", err)
	}

	file := func(kvs ...gguf.KV) *gguf.File {
		var w gguf.Writer
		w.Set("tokenizer.ggml.model", gguf.Str("gpt2"))
		w.Set("tokenizer.ggml.tokens", gguf.Strs(toks))
		w.Set("tokenizer.ggml.merges", gguf.Strs(merges))
		w.KVs = append(w.KVs, kvs...)
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), gguf.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tk, err := FromGGUF(file(gguf.KV{Key: "tokenizer.ggml.pre", Value: gguf.Str("llama-bpe")}, gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: gguf.BoolV(false)}))
	if err != nil || tk.AddBOS {
		t.Errorf("llama-bpe with add_bos_token false: AddBOS %v, err %v; want false, nil", tk != nil && tk.AddBOS, err)
	}
	if _, err := FromGGUF(file()); !errors.Is(err, ErrUnknownPre) {
		t.Errorf("no tokenizer.ggml.pre: got %v, want ErrUnknownPre", err)
	}
}

// Every splitter cuts any text into non-empty pieces that put it back.
func FuzzPreTokenizers(f *testing.F) {
	for _, s := range readCorpus(f).Strings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, name := range preNames {
			words := preSpecs[name].split.split(s)
			if strings.Join(words, "") != s || slices.Contains(words, "") {
				t.Fatalf("%s: split(%q) = %q", name, s, words)
			}
		}
	})
}
