// Package modeltool implements the single-process `switchyard model`
// commands over a GGUF file: synth, inspect, logits and run. Each writes
// its result to the given writer (JSON where the command promises JSON).
package modeltool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Synth writes a synthetic model to path, drawing a progress bar on
// progress (nil: none) for files over 64 MiB.
func Synth(ctx context.Context, c synth.Config, path string, progress io.Writer) error {
	w, err := synth.New(c)
	if err != nil {
		return err
	}
	if path == "" {
		return errors.New("synth: an output file (-o) is required")
	}
	var bar io.Writer
	if total := synth.Size(w); progress != nil && total > 64<<20 && !w.HeaderOnly {
		b := &progressBar{w: progress, total: total, label: filepath.Base(path)}
		defer b.finish()
		bar = b
	}
	if _, err := writeFile(ctx, path, w, bar); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// writeFile writes w to path through a temporary file renamed into place,
// so that a failed or cancelled write leaves nothing at path. What is
// written is copied to progress unless it is nil.
func writeFile(ctx context.Context, path string, w io.WriterTo, progress io.Writer) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".switchyard-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	var out io.Writer = tmp
	if progress != nil {
		out = io.MultiWriter(tmp, progress)
	}
	n, err := w.WriteTo(&ctxWriter{ctx, out})
	if err == nil {
		err = tmp.Chmod(0o644) // CreateTemp's 0600 would keep a model from others
	}
	if err != nil {
		tmp.Close()
		return n, err
	}
	if err := tmp.Close(); err != nil {
		return n, err
	}
	return n, os.Rename(tmp.Name(), path)
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

type progressBar struct {
	w           io.Writer
	total, done int64
	label       string
	last        time.Time
}

func (p *progressBar) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		p.draw()
	}
	return len(b), nil
}

func (p *progressBar) draw() {
	p.done = min(p.done, p.total)
	frac := float64(p.done) / float64(p.total)
	const width = 40
	bar := make([]byte, width)
	for i := range bar {
		if float64(i) < frac*width {
			bar[i] = '#'
		} else {
			bar[i] = '.'
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %d/%d MiB", p.label, bar, 100*frac, p.done>>20, p.total>>20)
}

func (p *progressBar) finish() { p.draw(); fmt.Fprintln(p.w) }

// Open opens a model file for the tools.
func Open(path string) (*model.File, error) {
	return model.Open(path, gguf.Options{Mmap: true})
}

// InspectConfig selects what inspect prints.
type InspectConfig struct {
	Path   string
	JSON   bool
	Tensor string // with Row: print one row of this tensor
	Row    int
}

type inspectReport struct {
	File          string         `json:"file"`
	Parts         []partReport   `json:"parts"` // the files it is stored in: one unless split
	Version       uint32         `json:"gguf_version"`
	Architecture  string         `json:"architecture"`
	Hyper         model.Hyper    `json:"hyperparameters"`
	MoELayers     []int          `json:"moe_layers"`               // layers with routed experts
	DenseLayers   []int          `json:"dense_layers"`             // layers with a dense FFN
	SlidingLayers []int          `json:"sliding_layers,omitempty"` // layers that see only the last sliding_window positions
	Census        model.Census   `json:"census"`
	Tensors       []tensorReport `json:"tensors"`
	// HeaderOnly: the file declares tensors whose data it does not hold
	// (model synth --header-only).
	HeaderOnly bool `json:"header_only,omitempty"`
}

type partReport struct {
	Name    string `json:"name"`
	Bytes   int64  `json:"bytes"`
	Tensors int    `json:"tensors"`
}

type tensorReport struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Shape []uint64 `json:"shape"`
	Bytes uint64   `json:"bytes"`
}

// Inspect describes a model file: hyperparameters, tensors and the
// parameter census, or one row of one tensor.
func Inspect(c InspectConfig, out io.Writer) error {
	// A header-only file is described too; a row of it cannot be printed.
	f, err := model.Open(c.Path, gguf.Options{Mmap: true, HeaderOnly: true})
	if err != nil {
		return err
	}
	defer f.Close()
	if c.Tensor != "" {
		return printRow(f, c.Tensor, c.Row, out)
	}
	r := inspectReport{File: c.Path, Version: f.Version, Architecture: f.Arch.Name, Hyper: f.Hyper, Census: f.Census(),
		MoELayers: []int{}, DenseLayers: []int{}}
	for l := range f.Layers {
		if f.MoELayer(l) {
			r.MoELayers = append(r.MoELayers, l)
		} else {
			r.DenseLayers = append(r.DenseLayers, l)
		}
		if f.Sliding(l) {
			r.SlidingLayers = append(r.SlidingLayers, l)
		}
	}
	for _, p := range f.Parts {
		r.Parts = append(r.Parts, partReport{Name: p.Name, Bytes: p.Size})
	}
	for _, t := range f.Tensors {
		r.Tensors = append(r.Tensors, tensorReport{t.Name, t.Type.String(), t.Dims, t.Size})
		r.Parts[t.Part].Tensors++
		p := f.Parts[t.Part]
		r.HeaderOnly = r.HeaderOnly || p.DataOffset+int64(t.Offset+t.Size) > p.Size
	}
	if c.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	h := f.Hyper
	fmt.Fprintf(out, "file          %s (GGUF v%d)\n", c.Path, f.Version)
	if r.HeaderOnly {
		fmt.Fprintf(out, "data          absent: the file declares its tensors but holds only its header\n")
	}
	if len(r.Parts) > 1 {
		for i, p := range r.Parts {
			fmt.Fprintf(out, "part %-8d %s, %d tensors, %d bytes\n", i+1, p.Name, p.Tensors, p.Bytes)
		}
	}
	fmt.Fprintf(out, "architecture  %s\n", f.Arch.Name)
	fmt.Fprintf(out, "vocabulary    %d   context %d\n", h.Vocab, h.Context)
	fmt.Fprintf(out, "layers        %d", h.Layers)
	if len(r.MoELayers) > 0 && len(r.DenseLayers) > 0 {
		fmt.Fprintf(out, " (dense %s; MoE %s)", spans(r.DenseLayers), spans(r.MoELayers))
	}
	fmt.Fprintf(out, "   n_embd %d\n", h.Embd)
	fmt.Fprintf(out, "attention     %d heads, %d KV heads, head size %d, RoPE base %g (%s)\n", h.Heads, h.KVHeads, h.HeadDim, h.RopeBase, map[bool]string{true: "NEOX", false: "NORM"}[f.Arch.RopeNeoX])
	if len(r.SlidingLayers) > 0 {
		var full []int
		for l := range h.Layers {
			if !f.Sliding(l) {
				full = append(full, l)
			}
		}
		fmt.Fprintf(out, "window        %d positions on layers %s", h.SlidingWindow, strided(r.SlidingLayers))
		if len(full) > 0 {
			fmt.Fprintf(out, "; full attention on %s", strided(full))
		}
		fmt.Fprintln(out)
	}
	if extras := attnExtras(f); extras != "" {
		fmt.Fprintf(out, "attn extras   %s\n", extras)
	}
	if h.MLA() {
		fmt.Fprintf(out, "latent attn   q_lora %d, kv_lora %d, %d RoPE dims, value size %d\n", h.QLoRA, h.KVLoRA, h.RopeDims, h.ValueDim)
	}
	if h.Rope.Type != "" {
		fmt.Fprintf(out, "RoPE scaling  %s, factor %g, original context %d\n", h.Rope.Type, h.Rope.Factor, h.Rope.OrigContext)
	}
	if h.MoE() {
		fmt.Fprintf(out, "experts       %d per layer, %d used, ffn %d", h.Experts, h.ExpertsUsed, h.ExpertFFN)
		if h.Gating == model.GatingSigmoid {
			fmt.Fprint(out, ", sigmoid scores")
		}
		if h.Groups > 1 {
			fmt.Fprintf(out, ", %d groups (best %d kept)", h.Groups, h.GroupsUsed)
		}
		switch {
		case h.SharedExperts > 0:
			fmt.Fprintf(out, ", shared experts %d (ffn %d in all)", h.SharedExperts, h.SharedFFN)
		case h.SharedFFN > 0:
			fmt.Fprintf(out, ", shared expert ffn %d", h.SharedFFN)
		}
		if len(r.MoELayers) > 0 && hasTensor(f, r.MoELayers[0], "ffn_gate_inp.bias") {
			fmt.Fprint(out, ", router bias")
		}
		if len(r.MoELayers) > 0 && hasTensor(f, r.MoELayers[0], "ffn_gate_exps.bias") {
			fmt.Fprint(out, ", expert biases")
		}
		fmt.Fprintln(out)
		if len(r.DenseLayers) > 0 {
			fmt.Fprintf(out, "dense ffn     %d\n", h.FFN)
		}
	} else {
		fmt.Fprintf(out, "ffn           %d (dense)\n", h.FFN)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tensor\ttype\tshape\tbytes\t")
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t\n", t.Name, t.Type, t.Shape, t.Bytes)
	}
	tw.Flush()
	cs := r.Census
	pct := func(n int64) string { return fmt.Sprintf("%5.1f%%", 100*float64(n)/float64(max(cs.Total, 1))) }
	fmt.Fprintln(out, "\nparameter census")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range []struct {
		name string
		n    int64
	}{
		{"total", cs.Total}, {"  embeddings", cs.Embeddings}, {"  weights", cs.Weights}, {"  biases", cs.Biases}, {"  norm scales", cs.Norms},
		{"routed experts", cs.Routed}, {"shared (everything else)", cs.Shared}, {"active per token", cs.ActivePerToken},
	} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", row.name, row.n, pct(row.n))
	}
	return tw.Flush()
}

// hasTensor reports whether layer l has the tensor blk.l.name.
func hasTensor(f *model.File, l int, name string) bool {
	_, ok := f.Tensor(fmt.Sprintf("blk.%d.%s", l, name))
	return ok
}

// attnExtras names what layer 0's attention has beyond its projections:
// biases ("q/k/v/o biases") and per-head sinks; "" if nothing.
func attnExtras(f *model.File) string {
	var biased, extras []string
	for _, p := range []struct{ short, name string }{{"q", "attn_q"}, {"k", "attn_k"}, {"v", "attn_v"}, {"o", "attn_output"}} {
		if hasTensor(f, 0, p.name+".bias") {
			biased = append(biased, p.short)
		}
	}
	if len(biased) > 0 {
		extras = append(extras, strings.Join(biased, "/")+" biases")
	}
	if hasTensor(f, 0, "attn_sinks.weight") {
		extras = append(extras, "per-head sinks")
	}
	return strings.Join(extras, ", ")
}

// strided writes sorted layer numbers with one step between them as
// "0, 2, …, 10 (every other)" when there are four or more; otherwise as
// spans does.
func strided(ls []int) string {
	if len(ls) >= 4 && ls[1]-ls[0] > 1 {
		d := ls[1] - ls[0]
		regular := true
		for i := 2; i < len(ls); i++ {
			regular = regular && ls[i]-ls[i-1] == d
		}
		if regular {
			every := "every other"
			if d > 2 {
				every = fmt.Sprintf("every %d", d)
			}
			return fmt.Sprintf("%d, %d, …, %d (%s)", ls[0], ls[1], ls[len(ls)-1], every)
		}
	}
	return spans(ls)
}

// spans writes sorted layer numbers as runs: "0", "1–3", "0–2, 5".
func spans(ls []int) string {
	var b strings.Builder
	for i := 0; i < len(ls); {
		j := i
		for j+1 < len(ls) && ls[j+1] == ls[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if j == i {
			fmt.Fprintf(&b, "%d", ls[i])
		} else {
			fmt.Fprintf(&b, "%d–%d", ls[i], ls[j])
		}
		i = j + 1
	}
	return b.String()
}

func printRow(f *model.File, name string, row int, out io.Writer) error {
	ti, ok := f.Tensor(name)
	if !ok {
		return fmt.Errorf("inspect: no tensor %q", name)
	}
	if !ti.Type.Supported() {
		return fmt.Errorf("inspect: tensor %q has type %s, which cannot be decoded", name, ti.Type)
	}
	cols := int(ti.Dims[0])
	rows := int(ti.Elements()) / cols
	if row < 0 || row >= rows {
		return fmt.Errorf("inspect: tensor %q has %d rows, no row %d", name, rows, row)
	}
	rb := uint64(ti.Type.RowBytes(cols))
	data, err := f.TensorRange(name, uint64(row)*rb, rb)
	if err != nil {
		return err
	}
	vals := make([]float32, cols)
	tensor.Dequantize(ti.Type, vals, data, cols)
	return json.NewEncoder(out).Encode(vals)
}

// loadModel opens and fully loads a model.
func loadModel(path string) (*model.File, *model.Model, error) {
	f, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := model.LoadLocal(f, nil)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, m, nil
}

// Logits prints the logits at every position of the prompt as JSON
// {"tokens":[...],"logits":[[...],...]}.
func Logits(ctx context.Context, path string, tokens []int32, out io.Writer) error {
	f, m, err := loadModel(path)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := m.Forward(ctx, []model.Chunk{{Seq: m.NewSequence(), Tokens: tokens, AllLogits: true}})
	if err != nil {
		return err
	}
	rows := make([][]float32, len(tokens))
	for i := range rows {
		rows[i] = res[0][i*m.Vocab : (i+1)*m.Vocab]
	}
	return json.NewEncoder(out).Encode(struct {
		Tokens []int32     `json:"tokens"`
		Logits [][]float32 `json:"logits"`
	}{tokens, rows})
}

// Greedy returns up to maxTokens greedy continuation tokens of prompt,
// stopping after the end-of-sequence token eos (if eos >= 0).
func Greedy(ctx context.Context, m *model.Model, prompt []int32, maxTokens int, eos int32) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("%w: empty prompt", model.ErrToken)
	}
	seq := m.NewSequence()
	next := prompt
	var gen []int32
	for len(gen) < maxTokens {
		res, err := m.Forward(ctx, []model.Chunk{{Seq: seq, Tokens: next}})
		if err != nil {
			return gen, err
		}
		t := sampling.Argmax(res[0])
		gen = append(gen, t)
		if t == eos {
			break
		}
		next = []int32{t}
	}
	return gen, nil
}

// EOS returns the file's end-of-sequence token, or -1.
func EOS(f *model.File) int32 {
	if v, ok := f.Get("tokenizer.ggml.eos_token_id"); ok {
		if n, ok := v.Int(); ok {
			return int32(n)
		}
	}
	return -1
}

// Run prints the greedy continuation of prompt as JSON {"tokens":[...]}.
func Run(ctx context.Context, path string, tokens []int32, maxTokens int, out io.Writer) error {
	if maxTokens < 0 {
		return fmt.Errorf("run: --max-tokens %d is negative", maxTokens)
	}
	f, m, err := loadModel(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gen, err := Greedy(ctx, m, tokens, maxTokens, EOS(f))
	if err != nil {
		return err
	}
	if gen == nil {
		gen = []int32{}
	}
	return json.NewEncoder(out).Encode(struct {
		Tokens []int32 `json:"tokens"`
	}{gen})
}
