package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

func testModels(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("../../testdata/models/*.gguf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test models: %v", err)
	}
	return files
}

func TestReadRealFiles(t *testing.T) {
	for _, path := range testModels(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Version != 3 {
				t.Errorf("version %d, want 3", f.Version)
			}
			arch, ok := f.Get("general.architecture")
			if !ok || arch.Type != String {
				t.Fatalf("general.architecture missing or not a string: %v", arch)
			}
			toks, ok := f.Get("tokenizer.ggml.tokens")
			if !ok || toks.Len() != 512 {
				t.Errorf("tokenizer.ggml.tokens has %d entries, want 512", toks.Len())
			}
			// n_embd is 64 in the tiny models, 256 in the small-kquant ones.
			width, _ := f.Get(arch.V.(string) + ".embedding_length")
			n, _ := width.Int()
			emb, ok := f.Tensor("token_embd.weight")
			if !ok || !reflect.DeepEqual(emb.Dims, []uint64{uint64(n), 512}) || n != 64 && n != 256 {
				t.Errorf("token_embd.weight dims %v, want [%d 512], n_embd 64 or 256", emb, n)
			}
			// The last tensor's data must end within the file.
			last := f.Tensors[len(f.Tensors)-1]
			if end := f.DataOffset + int64(last.Offset+last.Size); end > f.Size {
				t.Errorf("last tensor ends at %d past size %d", end, f.Size)
			}
			// Forget drops the vocabulary and keeps the rest findable.
			kvs, digest := len(f.KVs), f.Digest()
			f.Forget("tokenizer.")
			if _, ok := f.Get("tokenizer.ggml.tokens"); ok || len(f.KVs) >= kvs || f.Digest() != digest {
				t.Errorf("after Forget: tokens still there, or %d of %d entries left, or the digest changed", len(f.KVs), kvs)
			}
			for _, kv := range f.KVs {
				if v, ok := f.Get(kv.Key); !ok || !reflect.DeepEqual(v, kv.Value) || strings.HasPrefix(kv.Key, "tokenizer.") {
					t.Errorf("after Forget: %q is %v, %v", kv.Key, v, ok)
				}
			}
		})
	}
}

// TestRoundTrip writes every real file back through the Writer and checks
// that metadata and tensor bytes survive, and that the output is byte-for-
// byte the input (the files were written with the same layout rules).
func TestRoundTrip(t *testing.T) {
	for _, path := range testModels(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Read(bytes.NewReader(orig), int64(len(orig)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			w := Writer{KVs: f.KVs, Alignment: f.Alignment}
			for _, ti := range f.Tensors {
				data, err := f.TensorData(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				w.Add(WriterTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: data})
			}
			var buf bytes.Buffer
			if _, err := w.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			g, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.KVs, g.KVs) {
				t.Error("metadata differs after round trip")
			}
			for _, ti := range f.Tensors {
				a, _ := f.TensorData(ti.Name)
				b, err := g.TensorData(ti.Name)
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("tensor %s differs after round trip (%v)", ti.Name, err)
				}
			}
			if !bytes.Equal(orig, buf.Bytes()) {
				t.Errorf("rewritten file differs from the original (%d vs %d bytes)", buf.Len(), len(orig))
			}
		})
	}
}

func TestMmapMatchesRead(t *testing.T) {
	path := testModels(t)[0]
	a, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path, Options{Mmap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, ti := range a.Tensors {
		x, _ := a.TensorData(ti.Name)
		y, err := b.TensorData(ti.Name)
		if err != nil || !bytes.Equal(x, y) {
			t.Fatalf("tensor %s: mmap and read differ (%v)", ti.Name, err)
		}
		// Released pages are read again from the file when used again;
		// releasing a buffer that is not a mapping's does nothing.
		b.Release(y)
		a.Release(x)
		if !bytes.Equal(x, y) {
			t.Fatalf("tensor %s: a released view reads back different bytes", ti.Name)
		}
	}
}

func TestExpertData(t *testing.T) {
	f, err := Open("../../testdata/models/tiny-mixtral-f32.gguf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := "blk.1.ffn_down_exps.weight"
	all, err := f.TensorData(name)
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := f.Tensor(name)
	per := len(all) / int(ti.Dims[2])
	for e := range int(ti.Dims[2]) {
		got, err := f.ExpertData(name, e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, all[e*per:(e+1)*per]) {
			t.Errorf("expert %d bytes differ from its slice of the merged tensor", e)
		}
	}
	if _, err := f.ExpertData(name, 8); err == nil || !strings.Contains(err.Error(), "no expert 8") {
		t.Errorf("expert 8 of 8: got %v, want an error naming the expert", err)
	}
	// A 2-D tensor's experts are its rows (gpt-oss's expert biases).
	emb, _ := f.Tensor("token_embd.weight")
	row, err := f.ExpertData("token_embd.weight", 3)
	whole, _ := f.TensorData("token_embd.weight")
	if rb := int(emb.Size / emb.Dims[1]); err != nil || !bytes.Equal(row, whole[3*rb:4*rb]) {
		t.Errorf("per-expert read of a 2-D tensor: row 3 wrong (%v)", err)
	}
	if _, err := f.ExpertData("output_norm.weight", 0); err == nil {
		t.Error("per-expert read of a 1-D tensor: got nil error")
	}
}

// build writes a small valid file with one 32×2 F32 tensor and returns it
// along with the offsets of interesting fields.
func build(t testing.TB, kvs ...KV) []byte {
	t.Helper()
	w := Writer{KVs: append([]KV{{"general.architecture", Str("llama")}}, kvs...)}
	w.Add(WriterTensor{Name: "t", Type: tensor.F32, Dims: []uint64{32, 2}, Data: make([]byte, 256)})
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCorruptFiles(t *testing.T) {
	good := build(t)
	// Offsets in good: magic 0, version 4, counts 8/16, first key at 24.
	keyLen := len("general.architecture")
	tinfo := 24 + 8 + keyLen + 4 + 8 + len("llama") // start of the tensor info
	dims := tinfo + 8 + 1 + 4                       // first dimension
	typ := dims + 16
	offs := typ + 4
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	le := binary.LittleEndian
	cases := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrFormat, "magic"},
		{"truncated header", good[:20], ErrTruncated, "metadata count"},
		{"truncated data", good[:len(good)-10], ErrTruncated, `tensor "t"`},
		{"bad magic", mod(func(b []byte) []byte { copy(b, "GGML"); return b }), ErrFormat, "bad magic"},
		{"unknown version", mod(func(b []byte) []byte { le.PutUint32(b[4:], 7); return b }), ErrFormat, "unknown version 7"},
		{"version 1", mod(func(b []byte) []byte { le.PutUint32(b[4:], 1); return b }), ErrFormat, "version 1"},
		{"big endian", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 3); return b }), ErrFormat, "big-endian"},
		{"huge tensor count", mod(func(b []byte) []byte { le.PutUint64(b[8:], 1<<40); return b }), ErrLimit, "tensors"},
		{"huge string", mod(func(b []byte) []byte { le.PutUint64(b[24:], 1<<40); return b }), ErrLimit, "string"},
		{"string past end", mod(func(b []byte) []byte { le.PutUint64(b[24:], 1<<20); return b }), ErrTruncated, "metadata entry 0"},
		{"unknown value type", mod(func(b []byte) []byte { le.PutUint32(b[32+keyLen:], 99); return b }), ErrCorrupt, `"general.architecture"`},
		{"unknown tensor type", mod(func(b []byte) []byte { le.PutUint32(b[typ:], 77); return b }), ErrCorrupt, `tensor "t": gguf: corrupt file: unknown tensor type 77`},
		{"too many dims", mod(func(b []byte) []byte { le.PutUint32(b[tinfo+9:], 5); return b }), ErrCorrupt, "5 dimensions"},
		{"dimension overflow", mod(func(b []byte) []byte { le.PutUint64(b[dims:], 1<<32); le.PutUint64(b[dims+8:], 1<<32); return b }), ErrLimit, "overflow"},
		{"zero dimension", mod(func(b []byte) []byte { le.PutUint64(b[dims+8:], 0); return b }), ErrCorrupt, "zero"},
		{"misaligned data", mod(func(b []byte) []byte { le.PutUint64(b[offs:], 4); return b }), ErrCorrupt, "misaligned"},
		{"tensor past end", mod(func(b []byte) []byte { le.PutUint64(b[offs:], 1<<20); return b }), ErrTruncated, "past the end"},
		{"row not whole blocks", mod(func(b []byte) []byte {
			le.PutUint32(b[typ:], uint32(tensor.Q8_0))
			le.PutUint64(b[dims:], 33)
			return b
		}), ErrCorrupt, "block size"},
		{"bad alignment", build(t, KV{"general.alignment", U32(3)}), ErrCorrupt, "general.alignment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data), int64(len(c.data)), Limits{})
			if err == nil {
				t.Fatalf("got nil error, want %v", c.want)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("got %q, want %v mentioning %q", err, c.want, c.msg)
			}
		})
	}
}

func TestNestedArrays(t *testing.T) {
	inner := []Value{{Type: Array, Elem: Int32, V: []int32{1, 2}}, {Type: Array, Elem: String, V: []string{"a", "bc"}}}
	kvs := []KV{
		{"nested", Value{Type: Array, Elem: Array, V: inner}},
		{"u8", Value{Type: Uint8, V: uint8(7)}}, {"i8", Value{Type: Int8, V: int8(-7)}},
		{"u16", Value{Type: Uint16, V: uint16(7)}}, {"i16", Value{Type: Int16, V: int16(-7)}},
		{"u64", U64(1 << 40)}, {"i64", Value{Type: Int64, V: int64(-1 << 40)}},
		{"f64", Value{Type: Float64, V: 0.25}}, {"b", BoolV(true)},
		{"bools", Value{Type: Array, Elem: Bool, V: []bool{true, false}}},
		{"f64s", Value{Type: Array, Elem: Float64, V: []float64{1.5}}},
	}
	data := build(t, kvs...)
	f, err := Read(bytes.NewReader(data), int64(len(data)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		got, ok := f.Get(kv.Key)
		if !ok || !reflect.DeepEqual(got, kv.Value) {
			t.Errorf("%s: got %#v, want %#v", kv.Key, got, kv.Value)
		}
	}
	if _, err := Read(bytes.NewReader(data), int64(len(data)), Limits{MaxDepth: 1}); !errors.Is(err, ErrLimit) {
		t.Errorf("depth limit 1: got %v, want ErrLimit", err)
	}
}

func FuzzRead(f *testing.F) {
	for _, path := range testModels(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		// The start of the header is enough to reach every parser path; larger
		// seeds make the fuzzer minimise slowly.
		f.Add(data[:min(len(data), 4<<10)])
	}
	f.Add(build(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Read(bytes.NewReader(data), int64(len(data)), Limits{MaxArrayLen: 1 << 16, MaxStringLen: 1 << 16})
		if err != nil {
			return
		}
		for _, ti := range g.Tensors {
			if _, err := g.TensorData(ti.Name); err != nil {
				t.Fatalf("accepted file but tensor %q unreadable: %v", ti.Name, err)
			}
		}
	})
}

func TestDigest(t *testing.T) {
	a := build(t)
	b := build(t, KV{"general.name", Str("other")})
	read := func(data []byte) string {
		f, err := Read(bytes.NewReader(data), int64(len(data)), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return f.Digest()
	}
	if read(a) != read(bytes.Clone(a)) {
		t.Error("same bytes, different digests")
	}
	if read(a) == read(b) {
		t.Error("different metadata, same digest")
	}
	if !strings.HasPrefix(read(a), "sha256:") {
		t.Errorf("digest %q lacks its algorithm", read(a))
	}
}
