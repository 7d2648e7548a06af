package model

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Layer is one block: a normalised attention and a normalised
// feed-forward part, each a component the architecture chose (see Arch).
// Tagged fields bind to tensors blk.N.<tag>.weight (or blk.N.<tag> when
// the tag has a suffix); components bind their own tagged fields the same
// way.
type Layer struct {
	AttnNorm []float32   `gguf:"attn_norm"`
	Attn     attention   `gguf:""`
	FFNNorm  []float32   `gguf:"ffn_norm"`
	FFN      feedForward `gguf:""`
}

// FFN is a SwiGLU feed-forward network, Down·(silu(Gate·x) ⊙ Up·x), with
// optional biases after each product; or, with OAI, gpt-oss's clamped
// SwiGLU. Within a component its tags get the suffix of the enclosing
// field's tag.
type FFN struct {
	Gate     tensor.Matrix `gguf:"ffn_gate"`
	Up       tensor.Matrix `gguf:"ffn_up"`
	Down     tensor.Matrix `gguf:"ffn_down"`
	GateBias []float32     `gguf:"ffn_gate.bias,optional"`
	UpBias   []float32     `gguf:"ffn_up.bias,optional"`
	DownBias []float32     `gguf:"ffn_down.bias,optional"`
	// OAI: x = min(gate, 7), y = clamp(up, -7, 7), x·σ(1.702x)·(y+1).
	OAI bool
}

// Present reports whether the FFN was bound.
func (f *FFN) Present() bool { return f.Gate.Rows > 0 }

// Shared is everything but the routed experts: what a coordinator holds.
type Shared struct {
	Embd       tensor.Matrix `gguf:"token_embd"`
	OutputNorm []float32     `gguf:"output_norm"`
	// Output is the head; when the file has none it is tied to Embd.
	Output tensor.Matrix `gguf:"output,optional"`
	Layers []Layer

	rope rope // the positions' rotation, for every layer
}

// Unit is the unit of placement: one expert of one layer.
type Unit struct{ Layer, Expert int }

func (u Unit) String() string { return fmt.Sprintf("L%d/E%d", u.Layer, u.Expert) }

// Expert is one routed expert's weights.
type Expert struct {
	Unit
	FFN
}

// shapes gives the expected ggml shape (ne0 first) of each tag under h.
func (h Hyper) shapes(a *Arch) map[string][]int {
	E, q, kv, vd := h.Embd, h.Heads*h.HeadDim, h.KVHeads*h.HeadDim, h.KVHeads*h.ValueDim
	s := map[string][]int{
		"token_embd": {E, h.Vocab}, "output_norm": {E}, "output": {E, h.Vocab},
		"attn_norm": {E}, "attn_q": {E, q}, "attn_k": {E, kv}, "attn_v": {E, vd}, "attn_output": {h.Heads * h.ValueDim, E},
		"attn_q.bias": {q}, "attn_k.bias": {kv}, "attn_v.bias": {vd},
		"ffn_norm": {E}, "ffn_gate_inp": {E, h.Experts},
		"ffn_gate": {E, h.FFN}, "ffn_up": {E, h.FFN}, "ffn_down": {h.FFN, E},
		"ffn_gate_inp_shexp": {E},
		"ffn_gate_shexp":     {E, h.SharedFFN}, "ffn_up_shexp": {E, h.SharedFFN}, "ffn_down_shexp": {h.SharedFFN, E},
	}
	if a.shapes != nil {
		a.shapes(h, s)
	}
	return s
}

// loader binds tensors of a file to tagged struct fields, reading exactly
// the bytes of each bound tensor.
type loader struct {
	f      *gguf.File
	shapes map[string][]int
	rename map[string]string // the family's own names for tags
}

func tensorName(prefix, tag string) string {
	if strings.Contains(tag, ".") {
		return prefix + tag
	}
	return prefix + tag + ".weight"
}

// bind fills the tagged fields of the struct pointed to by dst with the
// tensors prefix+tag (+suffix for nested FFNs). It reports whether any
// tensor was found.
func (l *loader) bind(dst any, prefix, suffix string, optional bool) (bool, error) {
	v := reflect.ValueOf(dst).Elem()
	t := v.Type()
	found := false
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("gguf")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		opt := optional || opts == "optional"
		// A component (a struct, or an interface holding a pointer to
		// one) binds its own fields, its tags suffixed by this tag.
		var inner any
		switch fv := v.Field(i); {
		case sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[tensor.Matrix]():
			inner = fv.Addr().Interface()
		case sf.Type.Kind() == reflect.Interface && !fv.IsNil():
			inner = fv.Interface()
		case sf.Type.Kind() == reflect.Interface:
			continue // the architecture has no such block here
		}
		if inner != nil {
			got, err := l.bind(inner, prefix, name+suffix, opt)
			if err != nil {
				return found, err
			}
			found = found || got
			continue
		}
		// The suffix goes before any ".bias": ffn_gate.bias with suffix
		// _shexp is ffn_gate_shexp.bias.
		base, ext, dotted := strings.Cut(name, ".")
		key := base + suffix
		if r, ok := l.rename[key]; ok {
			key = r
		}
		if dotted {
			key += "." + ext
		}
		full := tensorName(prefix, key)
		ti, ok := l.f.Tensor(full)
		if !ok {
			if opt {
				continue
			}
			return found, fmt.Errorf("%w: missing tensor %q", ErrTensor, full)
		}
		found = true
		if want, ok := l.shapes[key]; ok && !shapeIs(ti.Dims, want) {
			return found, fmt.Errorf("%w: tensor %q has shape %v, want %v", ErrTensor, full, ti.Dims, want)
		}
		data, err := l.f.TensorData(full)
		if err != nil {
			return found, fmt.Errorf("model: %w", err)
		}
		switch p := v.Field(i).Addr().Interface().(type) {
		case *[]float32:
			if !ti.Type.Supported() || len(ti.Dims) != 1 {
				return found, fmt.Errorf("%w: tensor %q: want a 1-D vector of a supported type, got %s %v", ErrTensor, full, ti.Type, ti.Dims)
			}
			*p = make([]float32, ti.Dims[0])
			tensor.Dequantize(ti.Type, *p, data, int(ti.Dims[0]))
		case *tensor.Matrix:
			m, err := matrix(l.f, ti, data)
			if err != nil {
				return found, err
			}
			*p = m
		case *[]tensor.Matrix:
			if *p, err = slices3D(l.f, ti, data); err != nil {
				return found, err
			}
		}
	}
	return found, nil
}

func shapeIs(dims []uint64, want []int) bool {
	if len(dims) != len(want) {
		return false
	}
	for i := range dims {
		if dims[i] != uint64(want[i]) {
			return false
		}
	}
	return true
}

// matrix views a 2-D (or 3-D, for one expert's slice) tensor as a matrix
// of ne1 rows of ne0 elements.
func matrix(g *gguf.File, ti *gguf.TensorInfo, data []byte) (tensor.Matrix, error) {
	rows := 1
	for _, d := range ti.Dims[1:min(2, len(ti.Dims))] {
		rows *= int(d)
	}
	m, err := tensor.NewMatrix(ti.Type, rows, int(ti.Dims[0]), data)
	if err != nil {
		return m, fmt.Errorf("%w: tensor %q: %w", ErrTensor, ti.Name, err)
	}
	if ti.Name == "token_embd.weight" {
		return m, nil // only ever read a row at a time
	}
	return packed(g, m, data), nil
}

// packed packs m; when that copied its weights into another layout, pages
// of the file mapped for data are given back, so the weights are held
// once.
func packed(g *gguf.File, m tensor.Matrix, data []byte) tensor.Matrix {
	if m = m.Pack(); m.Packed() {
		g.Release(data)
	}
	return m
}

// slices3D views a 3-D tensor [ne0, ne1, ne2] as ne2 matrices of ne1 rows
// of ne0 elements: one per head for attn_k_b and attn_v_b.
func slices3D(g *gguf.File, ti *gguf.TensorInfo, data []byte) ([]tensor.Matrix, error) {
	if len(ti.Dims) != 3 {
		return nil, fmt.Errorf("%w: tensor %q has shape %v, want 3 dimensions", ErrTensor, ti.Name, ti.Dims)
	}
	n := int(ti.Dims[2])
	per := len(data) / n
	ms := make([]tensor.Matrix, n)
	for i := range ms {
		m, err := tensor.NewMatrix(ti.Type, int(ti.Dims[1]), int(ti.Dims[0]), data[i*per:(i+1)*per])
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q slice %d: %w", ErrTensor, ti.Name, i, err)
		}
		ms[i] = packed(g, m, data[i*per:(i+1)*per])
	}
	return ms, nil
}

// File is a model file opened for loading: its metadata, hyperparameters
// and architecture rules. Weights are read only when asked for.
type File struct {
	*gguf.File
	Hyper
	Arch *Arch
}

// Open opens a model file and checks its architecture and hyperparameters.
func Open(path string, opts gguf.Options) (*File, error) {
	g, err := gguf.Open(path, opts)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(g)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// NewFile interprets an already parsed GGUF file as a model.
func NewFile(g *gguf.File) (*File, error) {
	if err := checkTypes(g); err != nil {
		return nil, err
	}
	h, err := readHyper(g)
	if err != nil {
		return nil, err
	}
	a, _ := LookupArch(h.Arch)
	return &File{File: g, Hyper: h, Arch: a}, nil
}

func (f *File) loader() *loader {
	return &loader{f: f.File, shapes: f.shapes(f.Arch), rename: f.Arch.rename}
}

// LoadShared reads the shared part: every tensor except routed experts.
func (f *File) LoadShared() (*Shared, error) {
	l := f.loader()
	s := &Shared{}
	if _, err := l.bind(s, "", "", false); err != nil {
		return nil, err
	}
	if s.Output.Rows == 0 {
		s.Output = s.Embd.Pack() // the embeddings themselves stay unpacked
	}
	s.Layers = make([]Layer, f.Layers)
	for i := range s.Layers {
		ly := &s.Layers[i]
		*ly = f.Arch.layer(f.Hyper, i)
		prefix := fmt.Sprintf("blk.%d.", i)
		if _, err := l.bind(ly, prefix, "", false); err != nil {
			return nil, err
		}
		for _, c := range []any{ly.Attn, ly.FFN} {
			if c, ok := c.(checker); ok {
				if err := c.check(l, f.Hyper, prefix); err != nil {
					return nil, err
				}
			}
		}
	}
	s.rope = newRope(f.Hyper, f.Arch)
	debug.FreeOSMemory() // the unpacked copies of packed weights are garbage now
	return s, nil
}

// checker is a component with work once its tagged weights are bound:
// checks that depend on which optional tensors the file has, or weights
// derived from others.
type checker interface {
	check(l *loader, h Hyper, prefix string) error
}

// missingTensor is the error for a tensor an architecture needs.
func missingTensor(prefix, tag, why string) error {
	return fmt.Errorf("%w: missing tensor %q (%s)", ErrTensor, tensorName(prefix, tag), why)
}

// expertTensors names the three tensors of a unit and says whether they
// are slices of merged 3-D tensors.
func (f *File) expertTensors(u Unit) (names [3]string, merged bool, err error) {
	if !f.MoE() {
		return names, false, fmt.Errorf("%w: %s is a dense model without experts", ErrTensor, f.Arch.Name)
	}
	if u.Layer < 0 || u.Layer >= f.Layers || u.Expert < 0 || u.Expert >= f.Experts {
		return names, false, fmt.Errorf("%w: no unit %v in a model of %d layers × %d experts", ErrTensor, u, f.Layers, f.Experts)
	}
	if !f.MoELayer(u.Layer) {
		return names, false, fmt.Errorf("%w: no unit %v: layer %d has a dense FFN, not routed experts", ErrTensor, u, u.Layer)
	}
	for i, p := range []string{"gate", "up", "down"} {
		names[i] = fmt.Sprintf("blk.%d.ffn_%s_exps.weight", u.Layer, p)
	}
	if _, ok := f.Tensor(names[0]); ok {
		return names, true, nil
	}
	for i, p := range []string{"gate", "up", "down"} {
		names[i] = fmt.Sprintf("blk.%d.ffn_%s.%d.weight", u.Layer, p, u.Expert)
	}
	return names, false, nil
}

// LoadExpert reads one unit's weights, and only those bytes.
func (f *File) LoadExpert(u Unit) (*Expert, error) {
	names, merged, err := f.expertTensors(u)
	if err != nil {
		return nil, err
	}
	ff := f.ExpertFFN
	want := [3][]int{{f.Embd, ff}, {f.Embd, ff}, {ff, f.Embd}}
	e := &Expert{Unit: u}
	e.OAI = f.Arch.oaiExperts
	dst := [3]*tensor.Matrix{&e.Gate, &e.Up, &e.Down}
	for i, name := range names {
		ti, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("%w: missing tensor %q", ErrTensor, name)
		}
		var data []byte
		dims := ti.Dims
		if merged {
			if !shapeIs(dims, append(slices.Clone(want[i]), f.Experts)) {
				return nil, fmt.Errorf("%w: tensor %q has shape %v, want %v", ErrTensor, name, dims, append(want[i], f.Experts))
			}
			data, err = f.ExpertData(name, u.Expert)
		} else {
			if !shapeIs(dims, want[i]) {
				return nil, fmt.Errorf("%w: tensor %q has shape %v, want %v", ErrTensor, name, dims, want[i])
			}
			data, err = f.TensorData(name)
		}
		if err != nil {
			return nil, fmt.Errorf("model: unit %v: %w", u, err)
		}
		m, err := matrix(f.File, ti, data)
		if err != nil {
			return nil, err
		}
		*dst[i] = m.Expert()
	}
	if !merged {
		return e, nil
	}
	// Biases (gpt-oss) travel with their unit: the expert's column of
	// ffn_{gate,up,down}_exps.bias.
	for i, b := range [3]*[]float32{&e.GateBias, &e.UpBias, &e.DownBias} {
		name := strings.TrimSuffix(names[i], ".weight") + ".bias"
		ti, ok := f.Tensor(name)
		if !ok {
			continue
		}
		if rows := want[i][1]; !shapeIs(ti.Dims, []int{rows, f.Experts}) || !ti.Type.Supported() {
			return nil, fmt.Errorf("%w: tensor %q is %s %v, want a supported type of shape %v", ErrTensor, name, ti.Type, ti.Dims, []int{rows, f.Experts})
		}
		data, err := f.ExpertData(name, u.Expert)
		if err != nil {
			return nil, fmt.Errorf("model: unit %v: %w", u, err)
		}
		*b = make([]float32, ti.Dims[0])
		tensor.Dequantize(ti.Type, *b, data, len(*b))
	}
	return e, nil
}

// UnitBytes is the number of bytes LoadExpert reads for a unit.
func (f *File) UnitBytes(u Unit) (int64, error) {
	names, merged, err := f.expertTensors(u)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, name := range names {
		ti, ok := f.Tensor(name)
		if !ok {
			return 0, fmt.Errorf("%w: missing tensor %q", ErrTensor, name)
		}
		if merged {
			n += int64(ti.Size / ti.Dims[len(ti.Dims)-1])
			if b, ok := f.Tensor(strings.TrimSuffix(name, ".weight") + ".bias"); ok {
				n += int64(b.Size / b.Dims[len(b.Dims)-1])
			}
		} else {
			n += int64(ti.Size)
		}
	}
	return n, nil
}
