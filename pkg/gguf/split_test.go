package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

func TestPartName(t *testing.T) {
	names := []struct {
		prefix string
		i, n   int
		want   string
	}{
		{"m", 0, 3, "m-00001-of-00003.gguf"},
		{"/x/Qwen3-235B-Q4_K_M", 4, 5, "/x/Qwen3-235B-Q4_K_M-00005-of-00005.gguf"},
		{"http://h:1/d/m", 99, 100, "http://h:1/d/m-00100-of-00100.gguf"},
	}
	for _, c := range names {
		if got := PartName(c.prefix, c.i, c.n); got != c.want {
			t.Errorf("PartName(%q, %d, %d) = %q, want %q", c.prefix, c.i, c.n, got, c.want)
		}
	}
	prefixes := []struct {
		name   string
		i, n   int
		prefix string
		ok     bool
	}{
		{"/x/m-00001-of-00003.gguf", 0, 3, "/x/m", true},
		{"/x/m-00002-of-00003.gguf", 1, 3, "/x/m", true},
		{"/x/m-00002-of-00003.gguf", 0, 3, "", false}, // another part
		{"/x/m-00001-of-00004.gguf", 0, 3, "", false}, // another split
		{"/x/m-1-of-3.gguf", 0, 3, "", false},
		{"-00001-of-00003.gguf", 0, 3, "", false}, // no prefix
		{"/x/m.gguf", 0, 3, "", false},
	}
	for _, c := range prefixes {
		if p, ok := SplitPrefix(c.name, c.i, c.n); p != c.prefix || ok != c.ok {
			t.Errorf("SplitPrefix(%q, %d, %d) = %q, %v; want %q, %v", c.name, c.i, c.n, p, ok, c.prefix, c.ok)
		}
	}
}

func TestCuts(t *testing.T) {
	cases := []struct {
		name  string
		sizes []uint64
		n     int
		want  []int
	}{
		{"one part", []uint64{5, 5}, 1, []int{0}},
		{"even", []uint64{10, 10, 10, 10, 10, 10}, 3, []int{0, 2, 4}},
		// Shares of 40 and 80 bytes: cuts after 40 and after 80.
		{"uneven", []uint64{30, 10, 20, 20, 30, 10}, 3, []int{0, 2, 4}},
		// 104 bytes: shares at 34.7 and 69.3. The first tensor overshoots
		// both, yet each part keeps a tensor.
		{"one giant first", []uint64{100, 1, 1, 1, 1}, 3, []int{0, 1, 2}},
		{"one giant last", []uint64{1, 1, 1, 1, 100}, 3, []int{0, 3, 4}},
		{"as many parts as tensors", []uint64{1, 100, 1}, 3, []int{0, 1, 2}},
		// Share at 50: boundaries at 45 and 55 are as near; the later wins.
		{"tie", []uint64{45, 10, 45}, 2, []int{0, 2}},
	}
	for _, c := range cases {
		if got := cuts(c.sizes, c.n); !slices.Equal(got, c.want) {
			t.Errorf("%s: cuts(%v, %d) = %v, want %v", c.name, c.sizes, c.n, got, c.want)
		}
	}
}

// writeSplit splits the model at path into n parts under dir/m and
// returns the parts' bytes.
func writeSplit(t testing.TB, path, dir string, n int) [][]byte {
	t.Helper()
	src, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ws, err := src.Split(n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i, w := range ws {
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		out[i] = buf.Bytes()
		if dir != "" {
			if err := os.WriteFile(PartName(filepath.Join(dir, "m"), i, n), out[i], 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// kvBytes encodes one metadata entry as the GGUF specification lays it
// out: key length (u64), key, value type (u32), value.
func kvBytes(key string, typ uint32, val []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(key)))
	b = append(b, key...)
	b = binary.LittleEndian.AppendUint32(b, typ)
	return append(b, val...)
}

// TestSplitLayout splits a real model into three parts and checks each
// file field by field against the layout llama.cpp's gguf-split writes:
// complete GGUF files, the metadata in the first, split.no (uint16, from
// 0), split.count (uint16) and split.tensors.count (int32, the total) in
// every part, names counting from 1; then that the parts read back as the
// whole model, tensor for tensor, with the bytes shared out evenly.
func TestSplitLayout(t *testing.T) {
	path := "../../testdata/models/tiny-mixtral-q8_0.gguf"
	whole, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	dir := t.TempDir()
	parts := writeSplit(t, path, dir, 3)
	f, err := Open(filepath.Join(dir, "m-00001-of-00003.gguf"), Options{Mmap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, name := range []string{"m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		le := binary.LittleEndian
		if string(b[:4]) != "GGUF" || le.Uint32(b[4:]) != 3 {
			t.Errorf("%s: magic %q version %d, want GGUF 3", name, b[:4], le.Uint32(b[4:]))
		}
		wantKVs := uint64(3)
		if i == 0 {
			wantKVs += uint64(len(whole.KVs))
		}
		if got := le.Uint64(b[16:]); got != wantKVs {
			t.Errorf("%s: %d metadata entries, want %d", name, got, wantKVs)
		}
		for _, kv := range [][]byte{
			kvBytes("split.no", 2, le.AppendUint16(nil, uint16(i))),
			kvBytes("split.count", 2, le.AppendUint16(nil, 3)),
			kvBytes("split.tensors.count", 5, le.AppendUint32(nil, uint32(len(whole.Tensors)))),
		} {
			if !bytes.Contains(b, kv) {
				t.Errorf("%s: no entry %q", name, kv)
			}
		}
		if i > 0 && bytes.Contains(b, []byte("general.architecture")) {
			t.Errorf("%s carries the model's metadata; only the first part should", name)
		}
		held := 0
		for _, ti := range f.Tensors {
			if ti.Part == i {
				held++
			}
		}
		if got := le.Uint64(b[8:]); got != uint64(held) || held == 0 {
			t.Errorf("%s: header counts %d tensors; the reader put %d in it; want the same, not 0", name, got, held)
		}
	}
	for _, kv := range whole.KVs {
		if got, ok := f.Get(kv.Key); !ok || !reflect.DeepEqual(got, kv.Value) {
			t.Errorf("key %s: got %v, want %v", kv.Key, got, kv.Value)
		}
	}
	if len(f.Parts) != 3 || len(f.Tensors) != len(whole.Tensors) {
		t.Fatalf("%d parts holding %d tensors, want 3 holding %d", len(f.Parts), len(f.Tensors), len(whole.Tensors))
	}
	var bytesIn [3]uint64
	var largest uint64
	prev := 0
	for i, ti := range f.Tensors {
		if ti.Name != whole.Tensors[i].Name {
			t.Fatalf("tensor %d is %s, want %s: parts must keep the order", i, ti.Name, whole.Tensors[i].Name)
		}
		if ti.Part < prev || ti.Part > prev+1 {
			t.Errorf("tensor %s in part %d after one in part %d: runs must be contiguous", ti.Name, ti.Part+1, prev+1)
		}
		prev = ti.Part
		a, _ := whole.TensorData(ti.Name)
		b, err := f.TensorData(ti.Name)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("tensor %s differs from the whole file's (%v)", ti.Name, err)
		}
		bytesIn[ti.Part] += ti.Size
		largest = max(largest, ti.Size)
	}
	total := bytesIn[0] + bytesIn[1] + bytesIn[2]
	for i, n := range bytesIn {
		if d := math.Abs(float64(n) - float64(total)/3); d > float64(largest) {
			t.Errorf("part %d holds %d of %d tensor bytes, more than the largest tensor (%d) from a third", i+1, n, total, largest)
		}
	}
	for i, p := range f.Parts {
		if want := filepath.Join(dir, PartName("m", i, 3)); p.Name != want || p.Size != int64(len(parts[i])) {
			t.Errorf("part %d: %s of %d bytes, want %s of %d", i+1, p.Name, p.Size, want, len(parts[i]))
		}
	}

	// Splitting the split model again replaces its split keys.
	again := writeSplit(t, filepath.Join(dir, "m-00001-of-00003.gguf"), t.TempDir(), 2)
	g, err := Open("x-00001-of-00002.gguf", Options{Source: memParts(map[string][]byte{"x-00001-of-00002.gguf": again[0], "x-00002-of-00002.gguf": again[1]})})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := g.Get(KeySplitCount); len(g.KVs) != len(whole.KVs)+3 || v.V != uint16(2) {
		t.Errorf("re-split: %d keys with split.count %v, want %d with 2", len(g.KVs), v, len(whole.KVs)+3)
	}
}

// memParts serves files from memory.
func memParts(files map[string][]byte) Source {
	return func(name string) (io.ReaderAt, int64, error) {
		b, ok := files[name]
		if !ok {
			return nil, 0, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return bytes.NewReader(b), int64(len(b)), nil
	}
}

// handPart is one part of a split model, built by hand.
type handPart struct {
	kvs     []KV
	tensors []WriterTensor
}

func u16(v uint16) Value { return Value{Type: Uint16, V: v} }

func f32Tensor(name string, dims []uint64, first float32) WriterTensor {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	b := make([]byte, 0, 4*n)
	for i := range n {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(first+float32(i)))
	}
	return WriterTensor{Name: name, Type: tensor.F32, Dims: dims, Data: b}
}

// handParts lays out three parts the way gguf-split --no-tensor-first-split
// does: the first holds the metadata and no tensors, the second tensors a
// and b, the third tensor c. The split keys come first here, as nothing
// fixes their place.
func handParts() []handPart {
	split := func(i int) []KV {
		return []KV{{KeySplitNo, u16(uint16(i))}, {KeySplitCount, u16(3)}, {KeySplitTensors, I32(3)}}
	}
	return []handPart{
		{kvs: append(split(0), KV{"general.architecture", Str("llama")}, KV{"general.name", Str("hand")})},
		{kvs: split(1), tensors: []WriterTensor{f32Tensor("a", []uint64{32}, 1), f32Tensor("b", []uint64{32, 2}, 100)}},
		{kvs: split(2), tensors: []WriterTensor{f32Tensor("c", []uint64{64}, -5)}},
	}
}

func (p handPart) bytes(t testing.TB) []byte {
	t.Helper()
	w := Writer{KVs: p.kvs, Tensors: p.tensors}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeHandParts(t *testing.T, dir string, parts []handPart) {
	t.Helper()
	for i, p := range parts {
		if err := os.WriteFile(PartName(filepath.Join(dir, "m"), i, len(parts)), p.bytes(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenHandBuiltParts(t *testing.T) {
	dir := t.TempDir()
	parts := handParts()
	writeHandParts(t, dir, parts)
	for _, mmap := range []bool{false, true} {
		f, err := Open(filepath.Join(dir, "m-00001-of-00003.gguf"), Options{Mmap: mmap})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := f.Get("general.name"); !ok || v.V != "hand" {
			t.Errorf("general.name %v, want hand", v)
		}
		want := []struct {
			part int
			t    WriterTensor
		}{{1, parts[1].tensors[0]}, {1, parts[1].tensors[1]}, {2, parts[2].tensors[0]}}
		if len(f.Tensors) != len(want) {
			t.Fatalf("%d tensors, want %d", len(f.Tensors), len(want))
		}
		for _, w := range want {
			ti, ok := f.Tensor(w.t.Name)
			if !ok || ti.Part != w.part || !slices.Equal(ti.Dims, w.t.Dims) {
				t.Errorf("tensor %s: got %+v, want part %d dims %v", w.t.Name, ti, w.part, w.t.Dims)
				continue
			}
			got, err := f.TensorData(w.t.Name)
			if err != nil || !bytes.Equal(got, w.t.Data) {
				t.Errorf("tensor %s (mmap %v): data differs (%v)", w.t.Name, mmap, err)
			}
		}
		// Row 1 of b, read on its own from part 2.
		if got, err := f.TensorRange("b", 128, 128); err != nil || !bytes.Equal(got, parts[1].tensors[1].Data[128:]) {
			t.Errorf("row 1 of b: got %v, %v", got, err)
		}
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestReadRefusesPart: a bare reader cannot find the other parts, so Read
// says so rather than return a model missing most of its tensors.
func TestReadRefusesPart(t *testing.T) {
	for i, p := range handParts() {
		b := p.bytes(t)
		_, err := Read(bytes.NewReader(b), int64(len(b)), Limits{})
		if want := fmt.Sprintf("part %d of 3", i+1); !errors.Is(err, ErrSplit) || !strings.Contains(err.Error(), want) {
			t.Errorf("part %d: got %v, want ErrSplit naming %q", i+1, err, want)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	set := func(kvs []KV, key string, v Value) []KV {
		kvs = slices.Clone(kvs)
		for i := range kvs {
			if kvs[i].Key == key {
				kvs[i].Value = v
			}
		}
		return kvs
	}
	drop := func(kvs []KV, key string) []KV {
		return slices.DeleteFunc(slices.Clone(kvs), func(kv KV) bool { return kv.Key == key })
	}
	cases := []struct {
		name string
		edit func(p []handPart) []handPart
		open string // the name opened; "" is part 1
		post func(dir string) error
		want error
		msg  string
	}{
		{name: "missing part", post: func(dir string) error { return os.Remove(filepath.Join(dir, "m-00003-of-00003.gguf")) },
			want: fs.ErrNotExist, msg: "gguf: part 3 of 3: gguf: open %s/m-00003-of-00003.gguf: no such file"},
		{name: "later part given", open: "m-00002-of-00003.gguf",
			want: ErrSplit, msg: "m-00002-of-00003.gguf is part 2 of 3; open the first part, %s/m-00001-of-00003.gguf"},
		{name: "first part renamed", open: "model.gguf",
			post: func(dir string) error {
				return os.Rename(filepath.Join(dir, "m-00001-of-00003.gguf"), filepath.Join(dir, "model.gguf"))
			},
			want: ErrSplit, msg: "model.gguf is part 1 of 3, but its name does not end in -00001-of-00003.gguf"},
		{name: "part out of place", edit: func(p []handPart) []handPart { p[1].kvs = set(p[1].kvs, KeySplitNo, u16(2)); return p },
			want: ErrSplit, msg: "part 2 of 3 (%s/m-00002-of-00003.gguf): split.no is 2, want 1"},
		{name: "part without split.no", edit: func(p []handPart) []handPart { p[2].kvs = drop(p[2].kvs, KeySplitNo); return p },
			want: ErrSplit, msg: "part 3 of 3 (%s/m-00003-of-00003.gguf): no split.no"},
		{name: "part of a longer split", edit: func(p []handPart) []handPart { p[2].kvs = set(p[2].kvs, KeySplitCount, u16(4)); return p },
			want: ErrSplit, msg: "part 3 of 3 (%s/m-00003-of-00003.gguf): split.count is 4, but part 1 says 3"},
		{name: "part of another model", edit: func(p []handPart) []handPart { p[1].kvs = set(p[1].kvs, KeySplitTensors, I32(7)); return p },
			want: ErrSplit, msg: "part 2 of 3 (%s/m-00002-of-00003.gguf): split.tensors.count is 7, but part 1 says 3"},
		{name: "extra tensor", edit: func(p []handPart) []handPart {
			p[2].tensors = append(p[2].tensors, f32Tensor("d", []uint64{32}, 0))
			return p
		}, want: ErrSplit, msg: "m-00001-of-00003.gguf says split.tensors.count 3, but its 3 parts hold 4 tensors"},
		{name: "missing tensor", edit: func(p []handPart) []handPart { p[2].tensors = nil; return p },
			want: ErrSplit, msg: "but its 3 parts hold 2 tensors"},
		{name: "duplicate tensor", edit: func(p []handPart) []handPart { p[2].tensors = p[1].tensors[1:]; return p },
			want: ErrSplit, msg: `part 3 of 3 (%s/m-00003-of-00003.gguf): tensor "b" is also in part 2`},
		{name: "split.no of the wrong type", edit: func(p []handPart) []handPart { p[1].kvs = set(p[1].kvs, KeySplitNo, U32(1)); return p },
			want: ErrSplit, msg: "gguf: split model: part 2 of 3 (%s/m-00002-of-00003.gguf): split.no has type uint32, want uint16"},
		{name: "split.count of the wrong type", edit: func(p []handPart) []handPart { p[0].kvs = set(p[0].kvs, KeySplitCount, I32(3)); return p },
			want: ErrSplit, msg: "gguf: split model: %s/m-00001-of-00003.gguf: split.count has type int32, want uint16"},
		{name: "no tensor count in part 1", edit: func(p []handPart) []handPart { p[0].kvs = drop(p[0].kvs, KeySplitTensors); return p },
			want: ErrSplit, msg: "m-00001-of-00003.gguf is part 1 of 3 but has no valid split.tensors.count"},
		{name: "truncated part", post: func(dir string) error { return os.Truncate(filepath.Join(dir, "m-00002-of-00003.gguf"), 100) },
			want: ErrTruncated, msg: "part 2 of 3: %s/m-00002-of-00003.gguf: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			parts := handParts()
			if c.edit != nil {
				parts = c.edit(parts)
			}
			writeHandParts(t, dir, parts)
			if c.post != nil {
				if err := c.post(dir); err != nil {
					t.Fatal(err)
				}
			}
			open := c.open
			if open == "" {
				open = "m-00001-of-00003.gguf"
			}
			f, err := Open(filepath.Join(dir, open), Options{})
			if err == nil {
				f.Close()
				t.Fatalf("got nil error, want %v", c.want)
			}
			msg := c.msg
			if strings.Contains(msg, "%s") {
				msg = fmt.Sprintf(msg, dir)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), msg) {
				t.Errorf("got %q,\nwant %v containing %q", err, c.want, msg)
			}
		})
	}
}

func TestSplitCounts(t *testing.T) {
	f, err := Open("../../testdata/models/tiny-mixtral-q8_0.gguf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []int{0, -1, len(f.Tensors) + 1} {
		if _, err := f.Split(n); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("into %d parts", n)) {
			t.Errorf("split into %d parts: got %v, want an error", n, err)
		}
	}
	ws, err := f.Split(len(f.Tensors))
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range ws {
		if len(w.Tensors) != 1 {
			t.Errorf("part %d of one per tensor holds %d tensors", i+1, len(w.Tensors))
		}
	}
}

// TestSplitDigest: a split model's identity covers every part: the same
// parts give the same digest, a change to any part's header changes it,
// and it is not the digest of the first part alone.
func TestSplitDigest(t *testing.T) {
	build := func(edit func(p []handPart)) (string, string) {
		parts := handParts()
		if edit != nil {
			edit(parts)
		}
		files := map[string][]byte{}
		for i, p := range parts {
			files[PartName("m", i, 3)] = p.bytes(t)
		}
		f, err := Open("m-00001-of-00003.gguf", Options{Source: memParts(files)})
		if err != nil {
			t.Fatal(err)
		}
		return f.Digest(), f.Parts[0].digest
	}
	a, first := build(nil)
	if again, _ := build(nil); again != a {
		t.Errorf("same parts, digests %s and %s", a, again)
	}
	if a == first {
		t.Error("the split model's digest is its first part's")
	}
	other, _ := build(func(p []handPart) { p[2].tensors[0].Dims = []uint64{32, 2} })
	if other == a {
		t.Error("a different third part, same digest")
	}
	if !strings.HasPrefix(a, "sha256:") {
		t.Errorf("digest %q lacks its algorithm", a)
	}
}

// FuzzOpenSplit feeds three parts to Open, seeded from a real model split
// by Split (its metadata and its 1-D tensors: whole tensor data makes the
// fuzzer crawl) and from the hand-built parts. Open must return an error
// or a model whose every tensor reads back at its size.
func FuzzOpenSplit(f *testing.F) {
	whole, err := Open("../../testdata/models/tiny-mixtral-q8_0.gguf", Options{})
	if err != nil {
		f.Fatal(err)
	}
	w := Writer{KVs: whole.KVs, Alignment: whole.Alignment}
	for _, ti := range whole.Tensors {
		if len(ti.Dims) == 1 {
			data, err := whole.TensorData(ti.Name)
			if err != nil {
				f.Fatal(err)
			}
			w.Add(WriterTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: data})
		}
	}
	whole.Close()
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	small := filepath.Join(f.TempDir(), "small.gguf")
	if err := os.WriteFile(small, buf.Bytes(), 0o644); err != nil {
		f.Fatal(err)
	}
	real := writeSplit(f, small, "", 3)
	f.Add(real[0], real[1], real[2])
	var hand [3][]byte
	for i, p := range handParts() {
		hand[i] = p.bytes(f)
	}
	f.Add(hand[0], hand[1], hand[2])
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		src := memParts(map[string][]byte{"m-00001-of-00003.gguf": a, "m-00002-of-00003.gguf": b, "m-00003-of-00003.gguf": c})
		g, err := Open("m-00001-of-00003.gguf", Options{Source: src, Limits: Limits{MaxArrayLen: 1 << 16, MaxStringLen: 1 << 16}})
		if err != nil {
			return
		}
		if len(g.Parts) != 1 && len(g.Parts) != 3 {
			t.Fatalf("opened %d parts", len(g.Parts))
		}
		if v, ok := g.Get(KeySplitTensors); len(g.Parts) == 3 && (!ok || v.V != int32(len(g.Tensors))) {
			t.Fatalf("accepted %d tensors with split.tensors.count %v", len(g.Tensors), v)
		}
		for _, ti := range g.Tensors {
			if data, err := g.TensorData(ti.Name); err != nil || uint64(len(data)) != ti.Size {
				t.Fatalf("accepted model but tensor %q unreadable: %d bytes, %v", ti.Name, len(data), err)
			}
		}
	})
}
