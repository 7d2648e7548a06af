package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// binary builds the switchyard command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchyard")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

const tiny = "../../testdata/models/tiny-mixtral-f32.gguf"

// decodeByteLevel turns token IDs into text the way a GPT-2 byte-level
// vocabulary is defined: each token's string from the file, each of its
// characters mapped back to the byte GPT-2's bytes_to_unicode gave it
// (printable Latin-1 bytes stand for themselves; the other 68 bytes are
// U+0100 onwards, in byte order). Control tokens have no text and fail
// the test: greedy runs here stop before end-of-sequence.
func decodeByteLevel(t *testing.T, path string, ids []int32) string {
	t.Helper()
	f, err := gguf.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if m, _ := f.Get("tokenizer.ggml.model"); m.V != "gpt2" {
		t.Fatalf("tokenizer.ggml.model %v, want gpt2 (byte-level BPE)", m.V)
	}
	v, _ := f.Get("tokenizer.ggml.tokens")
	vocab, ok := v.V.([]string)
	if !ok {
		t.Fatalf("tokenizer.ggml.tokens is %T", v.V)
	}
	byteOf := map[rune]byte{}
	next := rune(256)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			byteOf[rune(b)] = byte(b)
		} else {
			byteOf[next] = byte(b)
			next++
		}
	}
	var sb strings.Builder
	for _, id := range ids {
		for _, r := range vocab[id] {
			b, ok := byteOf[r]
			if !ok {
				t.Fatalf("token %d %q has a character outside the byte-level alphabet", id, vocab[id])
			}
			sb.WriteByte(b)
		}
	}
	return sb.String()
}

func TestModelCommands(t *testing.T) {
	bin := binary(t)

	out, errOut, code := run(t, bin, "model", "run", "--model", tiny, "--tokens", "510,17,300,42,255,7,128", "--max-tokens", "16")
	var res struct{ Tokens []int32 }
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// llama.cpp's greedy continuation of this prompt (testdata/golden).
	want := []int32{268, 278, 345, 126, 218, 385, 336, 340, 76, 321, 175, 152, 175, 300, 265, 278}
	if !slices.Equal(res.Tokens, want) {
		t.Errorf("run: got %v, want %v", res.Tokens, want)
	}

	// The same from a copy split into three parts, given by its first.
	prefix := filepath.Join(t.TempDir(), "tiny")
	if _, e, code := run(t, bin, "model", "split", "--parts", "3", tiny, prefix); code != 0 {
		t.Fatalf("split: exit %d: %s", code, e)
	}
	out, errOut, code = run(t, bin, "model", "run", "--model", prefix+"-00001-of-00003.gguf", "--tokens", "510,17,300,42,255,7,128", "--max-tokens", "16")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !slices.Equal(res.Tokens, want) {
		t.Errorf("run on the split copy: exit %d, stdout %q, stderr %q; want tokens %v", code, out, errOut, want)
	}

	out, _, code = run(t, bin, "model", "tokenize", "--model", tiny, "--text", "Hello world, experts!")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !slices.Equal(res.Tokens, []int32{510, 320, 351, 44, 290, 33}) {
		t.Errorf("tokenize: exit %d, %q", code, out)
	}

	// Greedy text generation equals the greedy token run, decoded. The
	// prompt's tokens are llama.cpp's ("Hello" is 320 after BOS 510 in
	// testdata/golden's tokenizer cases); the decoding is the file's
	// vocabulary read back through GPT-2's byte-to-character table here.
	out, errOut, code = run(t, bin, "model", "tokenize", "--model", tiny, "--text", "Hello")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !slices.Equal(res.Tokens, []int32{510, 320}) {
		t.Fatalf("tokenize Hello: exit %d, %q (stderr %q), want tokens [510 320]", code, out, errOut)
	}
	out, errOut, code = run(t, bin, "model", "run", "--model", tiny, "--tokens", "510,320", "--max-tokens", "8")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Tokens) == 0 {
		t.Fatalf("run --tokens 510,320: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The tokens' bytes need not be UTF-8 (random weights): text output
	// replaces what is not with U+FFFD, as strings.ToValidUTF8 does.
	wantText := strings.ToValidUTF8(decodeByteLevel(t, tiny, res.Tokens), "\uFFFD")
	out, errOut, code = run(t, bin, "model", "run", "--model", tiny, "--prompt", "Hello", "--temperature", "0", "--max-tokens", "8")
	if code != 0 || out != wantText+"\n" {
		t.Errorf("run --prompt Hello --temperature 0: exit %d, text %q, want %q (greedy tokens %v decoded); stderr %s", code, out, wantText+"\n", res.Tokens, errOut)
	}
	a, _, codeA := run(t, bin, "model", "run", "--model", tiny, "--prompt", "Hello", "--seed", "5", "--max-tokens", "12")
	b, _, codeB := run(t, bin, "model", "run", "--model", tiny, "--prompt", "Hello", "--seed", "5", "--max-tokens", "12")
	if codeA != 0 || codeB != 0 || a != b || strings.TrimSpace(a) == "" {
		t.Errorf("same seed: exit %d and %d, text %q and %q; want the same non-empty text", codeA, codeB, a, b)
	}

	out, _, code = run(t, bin, "model", "logits", "--model", tiny, "--tokens", "510,1,2")
	var lg struct {
		Tokens []int32
		Logits [][]float32
	}
	if code != 0 || json.Unmarshal([]byte(out), &lg) != nil || len(lg.Logits) != 3 || len(lg.Logits[0]) != 512 {
		t.Fatalf("logits: exit %d, %d rows", code, len(lg.Logits))
	}

	synthPath := filepath.Join(t.TempDir(), "s.gguf")
	if _, e, code := run(t, bin, "model", "synth", "--arch", "qwen3moe", "--preset", "tiny", "--dtype", "q4_k", "--seed", "3", "-o", synthPath); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, e)
	}
	out, _, code = run(t, bin, "model", "inspect", synthPath, "--json")
	var ins struct {
		Architecture string
		Census       struct {
			Total          int64 `json:"total"`
			ActivePerToken int64 `json:"active_per_token"`
		}
		Tensors []struct{ Name, Type string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &ins) != nil {
		t.Fatalf("inspect: exit %d: %s", code, out)
	}
	if ins.Architecture != "qwen3moe" || ins.Census.ActivePerToken >= ins.Census.Total || len(ins.Tensors) == 0 {
		t.Errorf("inspect: %+v", ins)
	}
	out, _, code = run(t, bin, "model", "inspect", tiny, "--tensor", "output_norm.weight", "--row", "0")
	var row []float32
	if code != 0 || json.Unmarshal([]byte(out), &row) != nil || len(row) != 64 {
		t.Errorf("inspect --tensor: exit %d, %q", code, out)
	}
}

func TestModelCommandErrors(t *testing.T) {
	bin := binary(t)
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("GGUF\x07\x00\x00\x00"), 0o644)
	prefix := filepath.Join(t.TempDir(), "tiny")
	if _, e, code := run(t, bin, "model", "split", "--parts", "2", tiny, prefix); code != 0 {
		t.Fatalf("split: exit %d: %s", code, e)
	}
	splitPart := prefix + "-00002-of-00002.gguf"
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"token outside vocabulary", []string{"model", "run", "--model", tiny, "--tokens", "1,600"}, "token 600 at position 1 is outside the vocabulary of 512"},
		{"empty prompt", []string{"model", "logits", "--model", tiny, "--tokens", ""}, "--tokens is empty"},
		{"not a number", []string{"model", "run", "--model", tiny, "--tokens", "1,x"}, `"x" is not a token ID`},
		{"missing file", []string{"model", "inspect", "/nonexistent.gguf"}, "no such file"},
		{"corrupt file", []string{"model", "inspect", bad}, "unknown version 7"},
		{"unknown arch", []string{"model", "synth", "--arch", "gpt9", "-o", bad}, `unknown architecture "gpt9"`},
		{"split without a prefix", []string{"model", "split", "--parts", "2", tiny}, "usage: switchyard model split"},
		{"split into no parts", []string{"model", "split", "--parts", "0", tiny, filepath.Join(t.TempDir(), "p")}, "into 0 parts"},
		{"split part given", []string{"model", "inspect", splitPart}, "is part 2 of 2; open the first part"},
		{"no such tensor", []string{"model", "inspect", tiny, "--tensor", "nope.weight"}, `no tensor "nope.weight"`},
		{"chat without template", []string{"model", "run", "--model", tiny, "--prompt", "hi", "--chat"}, "no chat template"},
		{"bad top-p", []string{"model", "run", "--model", tiny, "--prompt", "hi", "--top-p", "0"}, "top_p"},
		{"prompt and tokens", []string{"model", "run", "--model", tiny, "--prompt", "hi", "--tokens", "1"}, "not both"},
		{"row out of range", []string{"model", "inspect", tiny, "--tensor", "output_norm.weight", "--row", "1"}, "no row 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := run(t, bin, c.args...)
			if code == 0 || !strings.Contains(errOut, c.msg) {
				t.Errorf("exit %d, stderr %q; want non-zero and %q", code, errOut, c.msg)
			}
		})
	}
}

// TestBench runs both modes alternately on the tiny model, through a
// cluster it starts, and reads the JSON report.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	bin := binary(t)
	out, errOut, code := run(t, bin, "bench", "--model", tiny, "--mode", "single,cluster", "--rounds", "2", "--concurrency", "1,2",
		"--prompt-tokens", "8", "--gen-tokens", "6", "--json")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, errOut)
	}
	var rep struct {
		Runs []struct {
			Mode        string
			Concurrency int
			DecodeTokS  float64 `json:"decode_tok_s"`
		}
		Ratios []struct {
			Concurrency int
			Decode      float64 `json:"decode_ratio"`
		} `json:"cluster_vs_single"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := []string{"single 1", "cluster 1", "single 2", "cluster 2"}
	if len(rep.Runs) != len(want) {
		t.Fatalf("runs %+v, want %v", rep.Runs, want)
	}
	for i, r := range rep.Runs {
		if got := r.Mode + " " + strconv.Itoa(r.Concurrency); got != want[i] || r.DecodeTokS <= 0 {
			t.Errorf("run %d: %s at %.1f tok/s, want %s decoding", i, got, r.DecodeTokS, want[i])
		}
	}
	if len(rep.Ratios) != 2 || rep.Ratios[0].Concurrency != 1 || rep.Ratios[1].Concurrency != 2 || rep.Ratios[0].Decode <= 0 {
		t.Errorf("ratios %+v, want one per concurrency", rep.Ratios)
	}

	_, errOut, code = run(t, bin, "bench", "--model", tiny, "--mode", "single,fast")
	if code == 0 || !strings.Contains(errOut, `--mode "single,fast"`) {
		t.Errorf("--mode single,fast: exit %d, %s", code, errOut)
	}
}
