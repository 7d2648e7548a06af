package model

import (
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/httpfile"
)

// TestSplitLogits splits every test model into three parts and checks that
// the split copy, opened from its first part on disk (mapped, part by
// part) and over HTTP (a loopback server, fetched part by part), gives the
// whole file's logits at every prompt position, bit for bit: the same
// weights go through the same arithmetic.
func TestSplitLogits(t *testing.T) {
	files, err := filepath.Glob("../../testdata/models/*.gguf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test models: %v", err)
	}
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".gguf")
		t.Run(name, func(t *testing.T) {
			whole := mustOpen(t, path)
			want := logitsOf(t, whole, prompt)
			ws, err := whole.File.Split(3)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range ws {
				out, err := os.Create(gguf.PartName(filepath.Join(dir, name), i, 3))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.WriteTo(out); err != nil {
					t.Fatal(err)
				}
				if err := out.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				how  string
				name string
				opts gguf.Options
			}{
				{"local", filepath.Join(dir, name), gguf.Options{Mmap: true}},
				{"http", srv.URL + "/" + name, gguf.Options{Source: httpfile.Opener(t.Context(), t.TempDir(), nil)}},
			} {
				f, err := Open(gguf.PartName(c.name, 0, 3), c.opts)
				if err != nil {
					t.Fatalf("%s: %v", c.how, err)
				}
				if len(f.Parts) != 3 {
					t.Errorf("%s: %d parts, want 3", c.how, len(f.Parts))
				}
				got := logitsOf(t, f, prompt)
				if len(got) != len(want) {
					t.Fatalf("%s: %d logits, want %d", c.how, len(got), len(want))
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Errorf("%s: logit %d of position %d is %g, the whole file's %g", c.how, i%whole.Vocab, i/whole.Vocab, got[i], want[i])
						break
					}
				}
				f.Close()
			}
		})
	}
}
