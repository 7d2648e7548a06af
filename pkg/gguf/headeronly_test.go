package gguf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A header-only file is the real file's first bytes: the same metadata and
// tensor table, up to where the data section begins, and nothing after.
// Opened with HeaderOnly it describes the same tensors; opened without it
// it is refused as truncated; reading a tensor's bytes from it is an
// error, mapped or not, never a panic.
func TestHeaderOnly(t *testing.T) {
	path := testModels(t)[0]
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(full), int64(len(full)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := Writer{KVs: f.KVs, Alignment: f.Alignment, HeaderOnly: true}
	for _, ti := range f.Tensors {
		w.Add(WriterTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims}) // no data at all
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != f.DataOffset || !bytes.Equal(buf.Bytes(), full[:f.DataOffset]) {
		t.Fatalf("header-only file is %d bytes, want the original's first %d (its data offset), byte for byte", buf.Len(), f.DataOffset)
	}
	hp := filepath.Join(t.TempDir(), "header.gguf")
	if err := os.WriteFile(hp, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(hp, Options{}); !errors.Is(err, ErrTruncated) {
		t.Errorf("opened without HeaderOnly: got %v, want ErrTruncated", err)
	}
	for _, mmap := range []bool{false, true} {
		h, err := Open(hp, Options{HeaderOnly: true, Mmap: mmap})
		if err != nil {
			t.Fatalf("mmap %v: %v", mmap, err)
		}
		if !reflect.DeepEqual(h.KVs, f.KVs) || len(h.Tensors) != len(f.Tensors) {
			t.Errorf("mmap %v: header-only file reads back %d keys and %d tensors, want the original's %d and %d", mmap, len(h.KVs), len(h.Tensors), len(f.KVs), len(f.Tensors))
		}
		for i, ti := range h.Tensors {
			o := f.Tensors[i]
			if ti.Name != o.Name || ti.Size != o.Size || ti.Offset != o.Offset || !reflect.DeepEqual(ti.Dims, o.Dims) {
				t.Errorf("tensor %d: %+v, want %+v", i, ti, o)
			}
		}
		if _, err := h.TensorData(f.Tensors[len(f.Tensors)-1].Name); !errors.Is(err, ErrTruncated) {
			t.Errorf("mmap %v: reading data from a header-only file: got %v, want ErrTruncated", mmap, err)
		}
		h.Close()
	}
}
