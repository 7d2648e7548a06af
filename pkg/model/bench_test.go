package model

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// benchModel synthesises a Q8_0 Mixtral of the preset named by
// SWITCHYARD_BENCH_PRESET (default small) and loads it, memory-mapped.
func benchModel(b *testing.B) *Model {
	preset := os.Getenv("SWITCHYARD_BENCH_PRESET")
	if preset == "" {
		preset = "small"
	}
	w, err := synth.New(synth.Config{Arch: "mixtral", Preset: preset, DType: tensor.Q8_0, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "bench.gguf")
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.WriteTo(fh); err != nil {
		b.Fatal(err)
	}
	fh.Close()
	f, err := Open(path, gguf.Options{Mmap: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	m, err := LoadLocal(f, nil)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkDecode measures single-sequence decode, one token per op, at
// positions 128 to 255 (after a 128-token prompt, as switchyard bench).
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	seq := m.NewSequence()
	prompt := make([]int32, 128)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	if _, err := m.Forward(b.Context(), []Chunk{{Seq: seq, Tokens: prompt}}); err != nil {
		b.Fatal(err)
	}
	// One chunk kept across steps, as the scheduler keeps a sequence's:
	// its logits buffer is reused.
	chunks := []Chunk{{Seq: seq, Tokens: []int32{1}}}
	for b.Loop() {
		if seq.Len() >= 256 {
			if err := seq.Truncate(128); err != nil {
				b.Fatal(err)
			}
		}
		if err := m.Step(b.Context(), chunks); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkPrefill measures a 128-token prompt per op.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b)
	prompt := make([]int32, 128)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	for b.Loop() {
		if _, err := m.Forward(b.Context(), []Chunk{{Seq: m.NewSequence(), Tokens: prompt}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(prompt))/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkExpertApply measures what a node's Forward computes for one
// decode step of 4 sequences: 8 (row, expert) pairs of one layer.
func BenchmarkExpertApply(b *testing.B) {
	m := benchModel(b)
	l := m.Experts.(*Local)
	x := make([]float32, 4*m.Embd)
	for i := range x {
		x[i] = float32(i%7) * 0.01
	}
	rows := []int32{0, 0, 1, 1, 2, 2, 3, 3}
	experts := []int32{0, 3, 1, 3, 5, 0, 7, 2}
	out := make([]float32, len(experts)*m.Embd)
	for b.Loop() {
		if err := l.Apply(b.Context(), 0, x, rows, experts, out); err != nil {
			b.Fatal(err)
		}
	}
}
