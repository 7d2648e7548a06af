package demomodel

import (
	"os"
	"testing"
)

func TestPath(t *testing.T) {
	if err := Verify(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := Path(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() != int64(len(data)) {
		t.Fatalf("written file: %v %v", st, err)
	}
	// A damaged copy is replaced.
	os.WriteFile(p, []byte("junk"), 0o644)
	if p2, err := Path(dir); err != nil || p2 != p {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); len(b) != len(data) {
		t.Error("damaged copy not replaced")
	}
}
