package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// npm is where .ci/run installs the reference packages (package-lock.json).
const npm = data + "npm/"

// released are the vocabularies of released models that npm packages ship,
// with the tokenizer.ggml.pre llama.cpp's converter gives each.
var released = []struct{ pkg, pre string }{
	{"deepseek_v3", "deepseek-v3"},
	{"gptoss", "gpt-4o"},
	{"qwen3", "qwen2"},
	{"llama3", "llama-bpe"},
}

// needNPM skips, or under CI=true fails, when node or the packages are
// missing.
func needNPM(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (apt-get install nodejs npm)")
	}
	for _, p := range append([]string{"tokenizers"}, pkgNames()...) {
		if _, err := os.Stat(npm + "node_modules/@lenml/" + p); err != nil {
			missing = append(missing, "@lenml/"+p+" (npm ci in testdata/tokenizers/npm)")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "missing " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; under CI=true this is a failure")
}

func pkgNames() []string {
	var ns []string
	for _, r := range released {
		ns = append(ns, "tokenizer-"+r.pkg)
	}
	return ns
}

// TestReleasedVocabularies tokenizes the corpus with the vocabularies of
// DeepSeek-V3, gpt-oss, Qwen3 and Llama 3, turned into GGUF metadata as
// llama.cpp's converter does, and compares with @lenml/tokenizers
// (transformers.js's port of Hugging Face's rules) on the same
// tokenizer.json: with parse_special, every added token is matched; without
// it, only the user-defined ones.
func TestReleasedVocabularies(t *testing.T) {
	needNPM(t)
	c := readCorpus(t)
	for _, r := range released {
		t.Run(r.pkg, func(t *testing.T) {
			tk, userDefined := fromTokenizerJSON(t, npm+"node_modules/@lenml/tokenizer-"+r.pkg+"/models/tokenizer.json", r.pre)
			ref := reference(t, r.pkg, c.Strings, userDefined)
			bad := 0
			for i, s := range c.Strings {
				for _, m := range []struct {
					parse bool
					want  []int32
				}{{true, ref.Special[i]}, {false, ref.Plain[i]}} {
					got := tk.Encode(s, false, m.parse)
					if !slices.Equal(got, m.want) {
						if bad++; bad <= 5 {
							t.Errorf("Encode(%q, parse_special=%v) = %v %q, want %v %q", s, m.parse, got, pieces(tk, got), m.want, pieces(tk, m.want))
						}
					}
				}
				if back := tk.Decode(tk.Encode(s, false, false)); back != s {
					t.Errorf("Decode(Encode(%q)) = %q", s, back)
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d tokenizations differ", bad, 2*len(c.Strings))
			}
			t.Logf("pre %s, %d tokens: %d strings, parse_special on and off, 0 mismatches", r.pre, tk.VocabSize(), len(c.Strings))
		})
	}
}

func pieces(tk *Tokenizer, ids []int32) []string {
	var out []string
	for _, id := range ids {
		if id < 0 || int(id) >= tk.VocabSize() {
			out = append(out, "?")
			continue
		}
		out = append(out, tk.Token(id))
	}
	return out
}

// refTokens is what reference.mjs writes.
type refTokens struct {
	Special [][]int32 `json:"special"`
	Plain   [][]int32 `json:"plain"`
}

func reference(t *testing.T, pkg string, strs, userDefined []string) refTokens {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	b, err := json.Marshal(map[string][]string{"strings": strs, "user_defined": userDefined})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", "reference.mjs", pkg, in, out)
	cmd.Dir = npm
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		t.Fatalf("node reference.mjs %s: %v: %s", pkg, err, msg[max(0, len(msg)-2000):])
	}
	b, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var ref refTokens
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Special) != len(strs) || len(ref.Plain) != len(strs) {
		t.Fatalf("reference gave %d and %d tokenizations for %d strings", len(ref.Special), len(ref.Plain), len(strs))
	}
	return ref
}

// fromTokenizerJSON turns a Hugging Face tokenizer.json into GGUF tokenizer
// metadata as llama.cpp's convert_hf_to_gguf.py does (get_vocab_base: IDs
// without a token become [PAD<id>] of type unused; an added token is a
// control token when marked special or when it looks special, user-defined
// otherwise; merges as "a b"), writes the file, reads it back and builds
// the tokenizer. It returns the user-defined tokens too.
func fromTokenizerJSON(t *testing.T, path, pre string) (*Tokenizer, []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		AddedTokens []struct {
			ID      int32  `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Type   string           `json:"type"`
			Vocab  map[string]int32 `json:"vocab"`
			Merges json.RawMessage  `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Model.Type != "BPE" {
		t.Fatalf("%s: model type %q", path, j.Model.Type)
	}
	byID := map[int32]string{}
	n := int32(0)
	for s, id := range j.Model.Vocab {
		byID[id] = s
		n = max(n, id+1)
	}
	added := map[int32]bool{}
	for _, a := range j.AddedTokens {
		byID[a.ID] = a.Content
		n = max(n, a.ID+1)
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	var userDefined []string
	for id := range n {
		s, ok := byID[id]
		switch {
		case !ok:
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), TypeUnused
			continue
		default:
			tokens[id], types[id] = s, TypeNormal
		}
	}
	for _, a := range j.AddedTokens {
		added[a.ID] = true
		if a.Special || looksSpecial(a.Content) {
			types[a.ID] = TypeControl
		} else {
			types[a.ID] = TypeUserDefined
			userDefined = append(userDefined, a.Content)
		}
	}
	var merges []string
	if err := json.Unmarshal(j.Model.Merges, &merges); err != nil {
		var pairs [][2]string
		if err := json.Unmarshal(j.Model.Merges, &pairs); err != nil {
			t.Fatalf("%s: merges are neither strings nor pairs: %v", path, err)
		}
		merges = merges[:0]
		for _, p := range pairs {
			merges = append(merges, p[0]+" "+p[1])
		}
	}
	var w gguf.Writer
	w.Set("general.architecture", gguf.Str("none"))
	w.Set("tokenizer.ggml.model", gguf.Str("gpt2"))
	w.Set("tokenizer.ggml.pre", gguf.Str(pre))
	w.Set("tokenizer.ggml.tokens", gguf.Strs(tokens))
	w.Set("tokenizer.ggml.token_type", gguf.I32s(types))
	w.Set("tokenizer.ggml.merges", gguf.Strs(merges))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), gguf.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tk, userDefined
}

// looksSpecial is convert_hf_to_gguf.py's does_token_look_special: some
// models mark added tokens that ought to be control tokens as not special.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>") ||
		strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>") ||
		strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">")
}
