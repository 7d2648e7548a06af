package coordinator

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// BenchmarkSchedulerStep is one decode step of four sequences through the
// coordinator's scheduler on a small synthesised model with its experts
// in this process: batching, the forward pass, sampling, detokenising and
// the event each token sends towards its client. allocs/op counts all of
// it.
func BenchmarkSchedulerStep(b *testing.B) {
	w, err := synth.New(synth.Config{Arch: "mixtral", Preset: "small", DType: tensor.Q8_0, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "m.gguf")
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.WriteTo(fh); err != nil {
		b.Fatal(err)
	}
	fh.Close()
	f, err := model.Open(path, gguf.Options{Mmap: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		b.Fatal(err)
	}
	tok.EOS = -1 // keep every sequence decoding
	s := &scheduler{m: m, tok: tok, maxTokens: 256, maxSeqs: 16, log: slog.New(slog.DiscardHandler)}
	const seqs = 4
	var active []*seqState
	for i := range seqs {
		sp, err := sampling.New(sampling.Params{TopP: 1, RepeatPenalty: 1}, m.Hyper.Vocab) // greedy
		if err != nil {
			b.Fatal(err)
		}
		prompt := []int32{1, int32(10 + i), 20, 30, 40, 50, 60, 70}
		r := &genRequest{ctx: b.Context(), prompt: prompt, promptLen: len(prompt), sampler: sp, maxTokens: 1 << 30, events: newEventQueue()}
		s.enqueue(r)
		st := s.waiting[len(s.waiting)-1]
		if err := s.place(st); err != nil {
			b.Fatal(err)
		}
		active = append(active, st)
	}
	active, _ = s.step(b.Context(), active) // the prompts
	b.ReportAllocs()
	for b.Loop() {
		for _, st := range active {
			if st.seq.Len() >= 256 {
				if err := st.seq.Truncate(64); err != nil {
					b.Fatal(err)
				}
			}
			for st.req.events.len() > 0 {
				st.req.events.tryPop()
			}
		}
		active, _ = s.step(b.Context(), active)
		if len(active) != seqs {
			b.Fatalf("%d sequences decoding, want %d", len(active), seqs)
		}
	}
}
