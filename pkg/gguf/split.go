package gguf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// The keys of a split model, as llama.cpp's gguf-split writes them into
// every part.
const (
	KeySplitNo      = "split.no"            // uint16: the part's index, from 0
	KeySplitCount   = "split.count"         // uint16: how many parts
	KeySplitTensors = "split.tensors.count" // int32: tensors in all parts together
)

// MaxParts is the most parts a split model can have: split.count is a
// uint16.
const MaxParts = 1<<16 - 1

// PartName is the name of part i (from 0) of n of a model split under
// prefix, as llama.cpp names it: <prefix>-%05d-of-%05d.gguf, counting
// from 1.
func PartName(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, i+1, n)
}

// SplitPrefix returns the prefix of name if it is the name of part i of n
// (see PartName).
func SplitPrefix(name string, i, n int) (string, bool) {
	prefix, ok := strings.CutSuffix(name, PartName("", i, n))
	if !ok || prefix == "" {
		return "", false
	}
	return prefix, true
}

// splitInfo is what a file's split.* keys say.
type splitInfo struct {
	no, count     int // 0 where absent
	tensors       int
	hasNo, hasTen bool
}

// splitKeys reads the split.* keys, which must have the types llama.cpp
// writes. The caller wraps the error with ErrSplit and the part.
func (f *File) splitKeys() (splitInfo, error) {
	var s splitInfo
	for _, k := range []struct {
		key  string
		typ  ValueType
		dst  *int
		seen *bool
	}{{KeySplitNo, Uint16, &s.no, &s.hasNo}, {KeySplitCount, Uint16, &s.count, nil}, {KeySplitTensors, Int32, &s.tensors, &s.hasTen}} {
		v, ok := f.Get(k.key)
		if !ok {
			continue
		}
		if v.Type != k.typ {
			return s, fmt.Errorf("%s has type %s, want %s", k.key, v.Type, k.typ)
		}
		n, _ := v.Int()
		*k.dst = int(n)
		if k.seen != nil {
			*k.seen = true
		}
	}
	return s, nil
}

// partLabel names part i in errors.
func (f *File) partLabel(i int) string {
	if len(f.Parts) == 1 && f.Parts[0].Name == "" {
		return "the file"
	}
	if len(f.Parts) == 1 {
		return f.Parts[0].Name
	}
	return fmt.Sprintf("part %d (%s)", i+1, f.Parts[i].Name)
}

// openParts opens the other parts of f, the file called name, if it is the
// first part of a split model, checks that each belongs with it, and adds
// their tensors. Parts opened are kept in f, to be closed with it.
func (f *File) openParts(src Source, name string, lim Limits) error {
	s, err := f.splitKeys()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSplit, name, err)
	}
	n := s.count
	if n <= 1 {
		return nil // a whole model (llama.cpp's merge leaves split.count 0)
	}
	if s.no != 0 {
		hint := ""
		if prefix, ok := SplitPrefix(name, s.no, n); ok {
			hint = ", " + PartName(prefix, 0, n)
		}
		return fmt.Errorf("%w: %s is part %d of %d; open the first part%s", ErrSplit, name, s.no+1, n, hint)
	}
	if !s.hasTen || s.tensors < 0 {
		return fmt.Errorf("%w: %s is part 1 of %d but has no valid %s", ErrSplit, name, n, KeySplitTensors)
	}
	prefix, ok := SplitPrefix(name, 0, n)
	if !ok {
		return fmt.Errorf("%w: %s is part 1 of %d, but its name does not end in %s, so the other parts cannot be named", ErrSplit, name, n, PartName("", 0, n))
	}
	lim = lim.withDefaults()
	h := sha256.New()
	io.WriteString(h, f.Parts[0].digest)
	for i := 1; i < n; i++ {
		pname := PartName(prefix, i, n)
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w: part %d of %d (%s): %s", ErrSplit, i+1, n, pname, fmt.Sprintf(format, args...))
		}
		g, err := openPart(src, pname, lim)
		if err != nil {
			return fmt.Errorf("gguf: part %d of %d: %w", i+1, n, err)
		}
		f.Parts = append(f.Parts, g.Parts[0])
		gs, err := g.splitKeys()
		switch {
		case err != nil:
			return fail("%v", err)
		case !gs.hasNo:
			return fail("no %s", KeySplitNo)
		case gs.no != i:
			return fail("%s is %d, want %d: it is part %d", KeySplitNo, gs.no, i, gs.no+1)
		case gs.count != n:
			return fail("%s is %d, but part 1 says %d", KeySplitCount, gs.count, n)
		case !gs.hasTen || gs.tensors != s.tensors:
			return fail("%s is %d, but part 1 says %d", KeySplitTensors, gs.tensors, s.tensors)
		}
		if len(f.Tensors)+len(g.Tensors) > lim.MaxTensors {
			return fmt.Errorf("%w: more than %d tensors in the first %d parts", ErrLimit, lim.MaxTensors, i+1)
		}
		for _, t := range g.Tensors {
			if j, dup := f.tensorIndex[t.Name]; dup {
				return fail("tensor %q is also in part %d", t.Name, f.Tensors[j].Part+1)
			}
			t.Part = i
			f.tensorIndex[t.Name] = len(f.Tensors)
			f.Tensors = append(f.Tensors, t)
		}
		io.WriteString(h, g.Parts[0].digest)
	}
	if len(f.Tensors) != s.tensors {
		return fmt.Errorf("%w: %s says %s %d, but its %d parts hold %d tensors", ErrSplit, name, KeySplitTensors, s.tensors, n, len(f.Tensors))
	}
	f.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return nil
}

// Split lays f out as n parts the way llama.cpp's gguf-split does: each
// part a complete GGUF file holding a run of the tensors, in order; the
// first carries all the metadata; every part carries split.no, split.count
// and split.tensors.count. Parts are cut at the tensor boundaries nearest
// to an even share of the bytes. Part i is to be written as
// PartName(prefix, i, n). The writers read tensor data from f as they
// write, so f must stay open until then. Any split.* keys of f (it may be
// a split model itself) are replaced.
func (f *File) Split(n int) ([]*Writer, error) {
	if n < 1 || n > MaxParts || n > len(f.Tensors) {
		return nil, fmt.Errorf("gguf: split %d tensors into %d parts: want 1 to %d parts, each with a tensor", len(f.Tensors), n, min(len(f.Tensors), MaxParts))
	}
	sizes := make([]uint64, len(f.Tensors))
	for i, t := range f.Tensors {
		sizes[i] = t.Size
	}
	starts := cuts(sizes, n)
	ws := make([]*Writer, n)
	for i := range ws {
		w := &Writer{}
		if i == 0 {
			w.Alignment = f.Alignment
			for _, kv := range f.KVs {
				if kv.Key != KeySplitNo && kv.Key != KeySplitCount && kv.Key != KeySplitTensors {
					w.Set(kv.Key, kv.Value)
				}
			}
		}
		w.Set(KeySplitNo, Value{Type: Uint16, V: uint16(i)})
		w.Set(KeySplitCount, Value{Type: Uint16, V: uint16(n)})
		w.Set(KeySplitTensors, I32(int32(len(f.Tensors))))
		end := len(f.Tensors)
		if i+1 < n {
			end = starts[i+1]
		}
		for _, t := range f.Tensors[starts[i]:end] {
			name := t.Name
			w.Add(WriterTensor{Name: name, Type: t.Type, Dims: t.Dims, Write: func(out io.Writer) error {
				b, err := f.TensorData(name)
				if err != nil {
					return err
				}
				_, err = out.Write(b)
				return err
			}})
		}
		ws[i] = w
	}
	return ws, nil
}

// cuts returns where each of n runs of tensors of the given sizes starts:
// every run non-empty, each cut at the boundary nearest to its even share
// of the bytes. It needs 1 <= n <= len(sizes).
func cuts(sizes []uint64, n int) []int {
	cum := make([]uint64, len(sizes)+1)
	for i, s := range sizes {
		cum[i+1] = cum[i] + s
	}
	total := cum[len(sizes)]
	dist := func(b int, target uint64) uint64 {
		if cum[b] > target {
			return cum[b] - target
		}
		return target - cum[b]
	}
	starts := make([]int, n)
	for k := 1; k < n; k++ {
		target := total/uint64(n)*uint64(k) + total%uint64(n)*uint64(k)/uint64(n)
		// Leave at least one tensor for each run after this one.
		b, last := starts[k-1]+1, len(sizes)-(n-k)
		for b < last && dist(b+1, target) <= dist(b, target) {
			b++
		}
		starts[k] = b
	}
	return starts
}
