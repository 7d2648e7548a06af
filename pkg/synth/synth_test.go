package synth

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

func write(t *testing.T, c Config) []byte {
	t.Helper()
	w, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTinyLoadsBack writes every architecture in every type, reads it back
// through the reader, checks each tensor against a second generation, and
// runs the model.
func TestTinyLoadsBack(t *testing.T) {
	for _, arch := range Archs {
		for _, dt := range DTypes {
			c := Config{Arch: arch, Preset: "tiny", DType: dt, Seed: 7}
			t.Run(fmt.Sprintf("%s-%s", arch, dt), func(t *testing.T) {
				data := write(t, c)
				limit := 2 << 20
				switch arch {
				case "deepseek2":
					limit = 5 << 20 / 2 // the shape of llama.cpp's tiny-deepseek3 fixture: 2.2 MB in F32
				case "gpt-oss":
					limit = 5 << 20 / 2 // the shape of llama.cpp's tiny-gptoss fixture: 2.3 MB in F32
				}
				if len(data) > limit {
					t.Errorf("tiny file is %d bytes, want under %d", len(data), limit)
				}
				f, err := gguf.Read(bytes.NewReader(data), int64(len(data)), gguf.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				w, _ := New(c)
				for _, wt := range w.Tensors {
					ti, ok := f.Tensor(wt.Name)
					if !ok {
						t.Fatalf("tensor %s missing", wt.Name)
					}
					if ti.Type != wt.Type || !reflect.DeepEqual(ti.Dims, wt.Dims) {
						t.Errorf("%s: got %s %v, want %s %v", wt.Name, ti.Type, ti.Dims, wt.Type, wt.Dims)
					}
					var want bytes.Buffer
					if wt.Write != nil {
						if err := wt.Write(&want); err != nil {
							t.Fatal(err)
						}
					} else {
						want.Write(wt.Data)
					}
					got, err := f.TensorData(wt.Name)
					if err != nil || !bytes.Equal(got, want.Bytes()) {
						t.Errorf("%s: data differs from a second generation (%v)", wt.Name, err)
					}
				}
				mf, err := model.NewFile(f)
				if err != nil {
					t.Fatal(err)
				}
				m, err := model.LoadLocal(mf, nil)
				if err != nil {
					t.Fatal(err)
				}
				out, err := m.Forward(t.Context(), []model.Chunk{{Seq: m.NewSequence(), Tokens: []int32{510, 1, 2, 3}}})
				if err != nil {
					t.Fatal(err)
				}
				var lo, hi float32
				for _, v := range out[0] {
					lo, hi = min(lo, v), max(hi, v)
				}
				if hi-lo < 1 {
					t.Errorf("logits span only %g: flat", hi-lo)
				}
			})
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, arch := range []string{"mixtral", "deepseek2", "gpt-oss"} {
		a := write(t, Config{Arch: arch, Preset: "tiny", DType: tensor.Q8_0, Seed: 1})
		b := write(t, Config{Arch: arch, Preset: "tiny", DType: tensor.Q8_0, Seed: 1})
		c := write(t, Config{Arch: arch, Preset: "tiny", DType: tensor.Q8_0, Seed: 2})
		if !bytes.Equal(a, b) {
			t.Errorf("%s: same seed gave different files", arch)
		}
		if bytes.Equal(a, c) {
			t.Errorf("%s: different seeds gave the same file", arch)
		}
	}
}

func TestVocab(t *testing.T) {
	v, err := NewVocab(512)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 512 || v.BOS != 510 || v.EOS != 511 || v.Tokens[510] != "<|bos|>" {
		t.Fatalf("layout: %d tokens, BOS %d %q, EOS %d", len(v.Tokens), v.BOS, v.Tokens[v.BOS], v.EOS)
	}
	if len(v.Merges) != 254 {
		t.Errorf("%d merges, want 254", len(v.Merges))
	}
	if v.Tokens[32] != "Ġ" {
		t.Errorf("token 32 is %q, want Ġ", v.Tokens[32])
	}
	for i, m := range v.Merges {
		a, b, _ := bytes.Cut([]byte(m), []byte(" "))
		if v.Tokens[256+i] != string(a)+string(b) {
			t.Errorf("merge %d %q does not make token %q", i, m, v.Tokens[256+i])
		}
	}
	if _, err := NewVocab(100); err == nil {
		t.Error("vocabulary of 100: got nil error")
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Arch: "gpt9", Preset: "tiny", DType: tensor.F32},
		{Arch: "mixtral", Preset: "huge", DType: tensor.F32},
		{Arch: "mixtral", Preset: "tiny", DType: tensor.Q4_0},
		{Arch: "deepseek2", Preset: "huge", DType: tensor.F32},
		{Arch: "deepseek2", Preset: "tiny", DType: tensor.Q4_0},
		{Arch: "gpt-oss", Preset: "huge", DType: tensor.F32},
		{Arch: "gpt-oss", Preset: "tiny", DType: tensor.Q4_0},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v: got nil error", c)
		}
	}
}
