package modeltool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// TestSplit writes a model as three parts and reads it back from the first
// one: only the three parts are left in the directory, what Split prints
// and what inspect shows agree with the files on disk, and the logits are
// the whole file's.
func TestSplit(t *testing.T) {
	const whole = "../../testdata/models/tiny-mixtral-f32.gguf"
	dir := t.TempDir()
	var out bytes.Buffer
	if err := Split(t.Context(), whole, filepath.Join(dir, "t"), 3, &out); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"t-00001-of-00003.gguf", "t-00002-of-00003.gguf", "t-00003-of-00003.gguf"}; !slices.Equal(names, want) {
		t.Fatalf("directory holds %v, want %v", names, want)
	}
	g, err := gguf.Open(whole, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	first := filepath.Join(dir, names[0])
	var text, js bytes.Buffer
	if err := Inspect(InspectConfig{Path: first}, &text); err != nil {
		t.Fatal(err)
	}
	if err := Inspect(InspectConfig{Path: first, JSON: true}, &js); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Parts []struct {
			Name    string
			Bytes   int64
			Tensors int
		}
	}
	if err := json.Unmarshal(js.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Parts) != 3 {
		t.Fatalf("inspect shows %d parts, want 3", len(r.Parts))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	tensors := 0
	for i, p := range r.Parts {
		path := filepath.Join(dir, names[i])
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != path || p.Bytes != st.Size() || p.Tensors == 0 {
			t.Errorf("inspect part %d: %+v, want %s of %d bytes with tensors", i+1, p, path, st.Size())
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want -rw-r--r--", path, st.Mode().Perm())
		}
		if want := fmt.Sprintf("%s\t%d tensors\t%d bytes", path, p.Tensors, st.Size()); i >= len(lines) || lines[i] != want {
			t.Errorf("split printed %q, want %q", lines, want)
		}
		if want := fmt.Sprintf("part %d        %s, %d tensors, %d bytes", i+1, path, p.Tensors, st.Size()); !strings.Contains(text.String(), want) {
			t.Errorf("inspect text lacks %q:\n%s", want, text.String())
		}
		tensors += p.Tensors
	}
	if tensors != len(g.Tensors) {
		t.Errorf("parts hold %d tensors, the whole file %d", tensors, len(g.Tensors))
	}

	var a, b bytes.Buffer
	tokens := []int32{510, 17, 300, 42}
	if err := Logits(t.Context(), whole, tokens, &a); err != nil {
		t.Fatal(err)
	}
	if err := Logits(t.Context(), first, tokens, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the split model's logits differ from the whole file's")
	}
}

func TestSplitFailures(t *testing.T) {
	const whole = "../../testdata/models/tiny-mixtral-f32.gguf"
	cases := []struct {
		name  string
		in    string
		parts int
		squat string // a directory in the way of this part
		msg   string
	}{
		{name: "no parts", in: whole, parts: 0, msg: "into 0 parts"},
		{name: "more parts than tensors", in: whole, parts: 1000, msg: "into 1000 parts"},
		{name: "missing input", in: "/nonexistent.gguf", parts: 2, msg: "no such file"},
		{name: "part in the way", in: whole, parts: 3, squat: "t-00002-of-00003.gguf", msg: "part 2 of 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.squat != "" {
				if err := os.MkdirAll(filepath.Join(dir, c.squat, "x"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			err := Split(t.Context(), c.in, filepath.Join(dir, "t"), c.parts, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("got %v, want an error containing %q", err, c.msg)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != c.squat {
					t.Errorf("%s left behind", e.Name())
				}
			}
		})
	}
}
