package model

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

const tinyMixtral = "../../testdata/models/tiny-mixtral-f32.gguf"

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func openCounting(t *testing.T, path string) (*File, *countingReader) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{r: bytes.NewReader(data)}
	g, err := gguf.Read(cr, int64(len(data)), gguf.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(g)
	if err != nil {
		t.Fatal(err)
	}
	cr.n.Store(0)
	return f, cr
}

func TestLoadReadsOnlyItsBytes(t *testing.T) {
	f, cr := openCounting(t, tinyMixtral)
	var shared, routed int64
	for _, ti := range f.Tensors {
		if IsRoutedExpert(ti.Name) {
			routed += int64(ti.Size)
		} else {
			shared += int64(ti.Size)
		}
	}
	if _, err := f.LoadShared(); err != nil {
		t.Fatal(err)
	}
	if got := cr.n.Load(); got != shared {
		t.Errorf("LoadShared read %d bytes, want exactly the %d shared bytes", got, shared)
	}
	cr.n.Store(0)
	u := Unit{Layer: 1, Expert: 5}
	if _, err := f.LoadExpert(u); err != nil {
		t.Fatal(err)
	}
	want, _ := f.UnitBytes(u)
	if got := cr.n.Load(); got != want || want != routed/int64(f.Layers*f.Experts) {
		t.Errorf("LoadExpert(%v) read %d bytes, want %d (1/%d of %d routed bytes)", u, got, want, f.Layers*f.Experts, routed)
	}
}

// rewrite copies a GGUF file through edit, which may change metadata and
// tensors, and returns the result opened as a model file.
func rewrite(t *testing.T, path string, edit func(w *gguf.Writer, f *gguf.File)) *File {
	t.Helper()
	f, err := rewriteErr(t, path, edit)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// rewriteErr writes the file at path, edited, to memory and opens it,
// returning the model's error.
func rewriteErr(t *testing.T, path string, edit func(w *gguf.Writer, f *gguf.File)) (*File, error) {
	t.Helper()
	g, err := gguf.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := &gguf.Writer{KVs: slices.Clone(g.KVs)}
	for _, ti := range g.Tensors {
		data, err := g.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Add(gguf.WriterTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: data})
	}
	edit(w, g)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	out, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), gguf.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return NewFile(out)
}

func setKV(w *gguf.Writer, key string, v gguf.Value) {
	for i := range w.KVs {
		if w.KVs[i].Key == key {
			w.KVs[i].Value = v
			return
		}
	}
	w.Set(key, v)
}

func dropKV(w *gguf.Writer, key string) {
	w.KVs = slices.DeleteFunc(w.KVs, func(kv gguf.KV) bool { return kv.Key == key })
}

func dropTensors(w *gguf.Writer, match func(name string) bool) []gguf.WriterTensor {
	var dropped []gguf.WriterTensor
	w.Tensors = slices.DeleteFunc(w.Tensors, func(t gguf.WriterTensor) bool {
		if match(t.Name) {
			dropped = append(dropped, t)
			return true
		}
		return false
	})
	return dropped
}

func logitsOf(t *testing.T, f *File, tokens []int32) []float32 {
	t.Helper()
	m, err := LoadLocal(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(t.Context(), []Chunk{{Seq: m.NewSequence(), Tokens: tokens, AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

var prompt = []int32{510, 17, 300, 42, 255, 7, 128}

// TestPerExpertLayout splits the merged ffn_*_exps tensors into the older
// per-expert ffn_*.E tensors and checks the logits are bit-identical.
func TestPerExpertLayout(t *testing.T) {
	merged, err := Open(tinyMixtral, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Close()
	split := rewrite(t, tinyMixtral, func(w *gguf.Writer, g *gguf.File) {
		for _, mt := range dropTensors(w, func(n string) bool { return strings.Contains(n, "_exps.") }) {
			per := len(mt.Data) / int(mt.Dims[2])
			layer, kind := 0, ""
			fmt.Sscanf(mt.Name, "blk.%d.ffn_", &layer)
			kind = strings.TrimSuffix(strings.SplitN(mt.Name, "ffn_", 2)[1], "_exps.weight")
			for e := range int(mt.Dims[2]) {
				w.Add(gguf.WriterTensor{Name: fmt.Sprintf("blk.%d.ffn_%s.%d.weight", layer, kind, e), Type: mt.Type,
					Dims: mt.Dims[:2], Data: mt.Data[e*per : (e+1)*per]})
			}
		}
	})
	a, b := logitsOf(t, merged, prompt), logitsOf(t, split, prompt)
	if !slices.Equal(a, b) {
		t.Errorf("per-expert layout gives different logits: max |Δ| %g", maxDiff(a, b))
	}
	if n, _ := split.UnitBytes(Unit{0, 3}); n == 0 {
		t.Error("UnitBytes of a per-expert unit is 0")
	}
}

// TestDense checks a dense llama file (no experts) against the same FFN
// served as a MoE layer with one expert, which the goldens vouch for.
func TestDense(t *testing.T) {
	oneExpert := func(w *gguf.Writer, g *gguf.File) {
		setKV(w, "llama.expert_count", gguf.U32(1))
		setKV(w, "llama.expert_used_count", gguf.U32(1))
		for i := range w.Tensors {
			wt := &w.Tensors[i]
			if strings.Contains(wt.Name, "_exps.") {
				wt.Data = wt.Data[:len(wt.Data)/int(wt.Dims[2])]
				wt.Dims = []uint64{wt.Dims[0], wt.Dims[1], 1}
			}
			if strings.HasSuffix(wt.Name, "ffn_gate_inp.weight") {
				wt.Data = wt.Data[:4*wt.Dims[0]]
				wt.Dims = []uint64{wt.Dims[0], 1}
			}
		}
	}
	moe := rewrite(t, tinyMixtral, oneExpert)
	dense := rewrite(t, tinyMixtral, func(w *gguf.Writer, g *gguf.File) {
		oneExpert(w, g)
		dropKV(w, "llama.expert_count")
		dropKV(w, "llama.expert_used_count")
		dropTensors(w, func(n string) bool { return strings.HasSuffix(n, "ffn_gate_inp.weight") })
		for i := range w.Tensors {
			wt := &w.Tensors[i]
			if strings.Contains(wt.Name, "_exps.") {
				wt.Name = strings.Replace(wt.Name, "_exps", "", 1)
				wt.Dims = wt.Dims[:2]
			}
		}
	})
	if dense.MoE() {
		t.Fatal("dense file still reports experts")
	}
	a, b := logitsOf(t, moe, prompt), logitsOf(t, dense, prompt)
	if !slices.Equal(a, b) {
		t.Errorf("dense logits differ from one-expert MoE: max |Δ| %g", maxDiff(a, b))
	}
}

func TestTiedOutput(t *testing.T) {
	f := rewrite(t, tinyMixtral, func(w *gguf.Writer, g *gguf.File) {
		dropTensors(w, func(n string) bool { return n == "output.weight" })
	})
	s, err := f.LoadShared()
	if err != nil {
		t.Fatal(err)
	}
	if &s.Output.Data[0] != &s.Embd.Data[0] {
		t.Error("without output.weight the head is not tied to token_embd")
	}
}

func TestBadModels(t *testing.T) {
	cases := []struct {
		name string
		edit func(w *gguf.Writer, g *gguf.File)
		want error
		msg  string
	}{
		{"unknown architecture", func(w *gguf.Writer, g *gguf.File) { setKV(w, "general.architecture", gguf.Str("gpt9")) },
			ErrArch, `"gpt9" (supported: deepseek2, gpt-oss, llama, olmoe, qwen2moe, qwen3moe)`},
		{"missing tensor", func(w *gguf.Writer, g *gguf.File) {
			dropTensors(w, func(n string) bool { return n == "blk.1.attn_k.weight" })
		}, ErrTensor, `missing tensor "blk.1.attn_k.weight"`},
		{"wrong shape", func(w *gguf.Writer, g *gguf.File) {
			for i := range w.Tensors {
				if w.Tensors[i].Name == "blk.0.attn_q.weight" {
					w.Tensors[i].Dims = []uint64{32, 128}
				}
			}
		}, ErrTensor, `"blk.0.attn_q.weight" has shape [32 128], want [64 64]`},
		{"missing hyperparameter", func(w *gguf.Writer, g *gguf.File) { dropKV(w, "llama.block_count") },
			ErrHyper, "llama.block_count is missing"},
		{"too many experts used", func(w *gguf.Writer, g *gguf.File) { setKV(w, "llama.expert_used_count", gguf.U32(9)) },
			ErrHyper, "expert_used_count 9 of 8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := rewriteErr(t, tinyMixtral, c.edit)
			if err == nil {
				_, err = LoadLocal(f, nil)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("got %v, want %v mentioning %s", err, c.want, c.msg)
			}
		})
	}
}

func TestBadTokens(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	cases := []struct {
		name   string
		tokens []int32
		want   error
	}{
		{"empty", nil, ErrToken},
		{"outside vocabulary", []int32{1, 512}, ErrToken},
		{"negative", []int32{-1}, ErrToken},
		{"longer than context", make([]int32, 257), ErrContext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seq := m.NewSequence()
			_, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: c.tokens}})
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
			if seq.Len() != 0 {
				t.Errorf("failed forward left %d positions in the cache", seq.Len())
			}
		})
	}
}

// TestBatchEqualsAlone runs two sequences in one batch and checks each
// equals the sequence run alone.
func TestBatchEqualsAlone(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	a, b := []int32{510, 1, 2, 3}, []int32{510, 300, 301}
	alone := func(toks []int32) []float32 {
		out, err := m.Forward(t.Context(), []Chunk{{Seq: m.NewSequence(), Tokens: toks, AllLogits: true}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	out, err := m.Forward(t.Context(), []Chunk{{Seq: m.NewSequence(), Tokens: a, AllLogits: true}, {Seq: m.NewSequence(), Tokens: b, AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(out[0], alone(a)); d != 0 {
		t.Errorf("sequence a differs in a batch by %g", d)
	}
	if d := maxDiff(out[1], alone(b)); d != 0 {
		t.Errorf("sequence b differs in a batch by %g", d)
	}
}

// TestReserveKeepsTheCaches decodes token by token into a reserved sequence:
// the caches are never reallocated, and the logits equal a whole pass's.
func TestReserveKeepsTheCaches(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	want := logitsOf(t, mustOpen(t, tinyMixtral), prompt)
	seq := m.NewSequence()
	if err := seq.Reserve(len(prompt)); err != nil {
		t.Fatal(err)
	}
	held := m.KV.Stats().Used
	k0 := seq.t[0][0]
	for i, tok := range prompt {
		out, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: []int32{tok}}})
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(out[0], want[i*m.Vocab:(i+1)*m.Vocab]); d > 1e-4 {
			t.Errorf("position %d differs from the whole pass by %g", i, d)
		}
	}
	if used := m.KV.Stats().Used; seq.t[0][0] != k0 || used != held {
		t.Errorf("a reserved cache grew: %d blocks, reserved %d", used, held)
	}
	if err := seq.Reserve(1); err != nil || seq.t[0][0] != k0 || seq.Len() != len(prompt) { // smaller than held: nothing changes
		t.Errorf("Reserve below the length changed the cache (%v)", err)
	}
}

// failingExperts fails on a chosen layer, as an unreachable node would.
type failingExperts struct {
	Experts
	layer int
}

func (f failingExperts) Forward(ctx context.Context, layer int, x []float32, n int, e []int32, out []float32) error {
	if layer == f.layer {
		return errors.New("node unreachable")
	}
	return f.Experts.Forward(ctx, layer, x, n, e, out)
}

// TestFailedForwardLeavesCache checks that a forward pass whose experts fail
// leaves the sequence as it was, so a retry gives the same logits.
func TestFailedForwardLeavesCache(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	want := logitsOf(t, mustOpen(t, tinyMixtral), prompt)
	seq := m.NewSequence()
	if _, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: prompt[:3], AllLogits: true}}); err != nil {
		t.Fatal(err)
	}
	good := m.Experts
	m.Experts = failingExperts{good, 1}
	if _, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: prompt[3:]}}); err == nil || !strings.Contains(err.Error(), "node unreachable") {
		t.Fatalf("got %v, want the experts' error", err)
	}
	m.Experts = good
	out, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: prompt[3:], AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(out[0], want[3*m.Vocab:]); d != 0 {
		t.Errorf("retry after a failed step differs by %g", d)
	}
}

func mustOpen(t *testing.T, path string) *File {
	t.Helper()
	f, err := Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type countingObserver struct {
	counts  map[int]int
	weights map[int][]float32 // per layer, every row's k weights in order
}

func (c *countingObserver) Observe(layer int, choices []int32, weights []float32) {
	c.counts[layer] += len(choices)
	c.weights[layer] = append(c.weights[layer], weights...)
}

// recordingExperts keeps what each layer's experts call was given.
type recordingExperts struct {
	*Local
	x       map[int][]float32 // per layer, the FFN input rows
	experts map[int][]int32
}

func (r *recordingExperts) Forward(ctx context.Context, layer int, x []float32, n int, e []int32, out []float32) error {
	r.x[layer] = append(r.x[layer], x...)
	r.experts[layer] = append(r.experts[layer], e...)
	return r.Local.Forward(ctx, layer, x, n, e, out)
}

// TestRouting checks every routing decision against a float64
// re-derivation of Mixtral's rule from the FFN input rows the experts
// were given: softmax of the gate's logits over all experts, the top k,
// weights renormalised to sum to 1. Chunk.Routing and the observer must
// both show it.
func TestRouting(t *testing.T) {
	f := mustOpen(t, tinyMixtral)
	m := loadModel(t, tinyMixtral)
	obs := &countingObserver{counts: map[int]int{}, weights: map[int][]float32{}}
	rec := &recordingExperts{Local: m.Experts.(*Local), x: map[int][]float32{}, experts: map[int][]int32{}}
	m.Observer, m.Experts = obs, rec
	chunks := []Chunk{{Seq: m.NewSequence(), Tokens: prompt, WantRouting: true}, {Seq: m.NewSequence(), Tokens: prompt[:2]}}
	if _, err := m.Forward(t.Context(), chunks); err != nil {
		t.Fatal(err)
	}
	k, E, ne, rows := m.ExpertsUsed, m.Embd, m.Hyper.Experts, len(prompt)+2
	if len(chunks[0].Routing) != len(prompt)*m.Layers*k || chunks[1].Routing != nil {
		t.Fatalf("routing sizes %d and %d", len(chunks[0].Routing), len(chunks[1].Routing))
	}
	for l := range m.Layers {
		if obs.counts[l] != rows*k || len(rec.x[l]) != rows*E {
			t.Fatalf("layer %d: observer saw %d choices, experts %d rows; want %d and %d", l, obs.counts[l], len(rec.x[l])/E, rows*k, rows)
		}
		W := f32s(mustTensor(t, f, fmt.Sprintf("blk.%d.ffn_gate_inp.weight", l)))
		for i := range rows {
			p := make([]float64, ne)
			var mx, sum float64 = math.Inf(-1), 0
			for e := range ne {
				for c := range E {
					p[e] += float64(W[e*E+c]) * float64(rec.x[l][i*E+c])
				}
				mx = max(mx, p[e])
			}
			for e := range p {
				p[e] = math.Exp(p[e] - mx)
				sum += p[e]
			}
			idx := make([]int, ne)
			for e := range idx {
				idx[e] = e
			}
			slices.SortStableFunc(idx, func(a, b int) int { return cmpF(p[b], p[a]) })
			var top float64
			for _, e := range idx[:k] {
				top += p[e]
			}
			for j, e := range idx[:k] {
				if got := rec.experts[l][i*k+j]; got != int32(e) {
					t.Fatalf("layer %d row %d slot %d: expert %d, want %d", l, i, j, got, e)
				}
				if i < len(prompt) && chunks[0].Routing[(i*m.Layers+l)*k+j] != int32(e) {
					t.Errorf("layer %d position %d slot %d: Chunk.Routing %d, want %d", l, i, j, chunks[0].Routing[(i*m.Layers+l)*k+j], e)
				}
				if w := p[e] / top; math.Abs(float64(obs.weights[l][i*k+j])-w) > 1e-6 {
					t.Errorf("layer %d row %d slot %d: weight %g, want %g", l, i, j, obs.weights[l][i*k+j], w)
				}
			}
		}
	}
}

// asyncExperts runs the local experts on another goroutine, as remote ones
// answer later, which makes Forward cut large steps into micro-batches.
type asyncExperts struct {
	*Local
	started *int
	fail    int // layer whose call fails, or -1
}

type pendingCall chan error

func (p pendingCall) Wait() error { return <-p }

func (a asyncExperts) Start(ctx context.Context, layer int, x []float32, n int, e []int32, out []float32) Pending {
	*a.started++
	p := make(pendingCall, 1)
	go func() {
		if layer == a.fail {
			p <- errors.New("node unreachable")
			return
		}
		p <- a.Local.Forward(ctx, layer, x, n, e, out)
	}()
	return p
}

// TestMicroBatches checks that a step cut into two micro-batches (with one
// sequence's prompt split between them) gives the logits and routing of
// the uncut step bit for bit, and that a failure in either leaves the
// caches as they were.
func TestMicroBatches(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	long := make([]int32, microBatchRows) // with the first chunk, the step is cut inside this one
	for i := range long {
		long[i] = int32(300 + i)
	}
	chunks := func() []Chunk {
		return []Chunk{
			{Seq: m.NewSequence(), Tokens: []int32{510, 1, 2}, AllLogits: true, WantRouting: true},
			{Seq: m.NewSequence(), Tokens: long, AllLogits: true, WantRouting: true},
		}
	}
	want := chunks()
	if _, err := m.Forward(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	local, started := m.Experts.(*Local), 0
	m.Experts = asyncExperts{local, &started, -1}
	got := chunks()
	// A reserved cache holds a chunk cut in two without growing: each
	// micro-batch makes room for its own rows only.
	if err := got[1].Seq.Reserve(len(long)); err != nil {
		t.Fatal(err)
	}
	k0 := got[1].Seq.t[0][0]
	if _, err := m.Forward(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	if got[1].Seq.t[0][0] != k0 || len(got[1].Seq.t[0]) != (len(long)+BlockTokens-1)/BlockTokens {
		t.Error("the cut chunk's reserved cache was reallocated or grew")
	}
	if started != 2*m.Layers {
		t.Errorf("%d expert calls started, want %d (two micro-batches per layer)", started, 2*m.Layers)
	}
	for c := range want {
		if d := maxDiff(got[c].Logits, want[c].Logits); d != 0 || len(got[c].Logits) != len(want[c].Logits) {
			t.Errorf("chunk %d: micro-batched logits differ by %g", c, d)
		}
		if !slices.Equal(got[c].Routing, want[c].Routing) {
			t.Errorf("chunk %d: micro-batched routing differs", c)
		}
	}
	for _, layer := range []int{0, m.Layers - 1} {
		m.Experts = asyncExperts{local, &started, layer}
		ch := chunks()
		if _, err := m.Forward(t.Context(), ch); err == nil || !strings.Contains(err.Error(), "node unreachable") {
			t.Fatalf("failing layer %d: got %v, want the experts' error", layer, err)
		}
		for c := range ch {
			if ch[c].Seq.Len() != 0 {
				t.Errorf("failing layer %d: chunk %d left %d positions", layer, c, ch[c].Seq.Len())
			}
		}
	}
}
