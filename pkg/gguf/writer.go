package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// WriterTensor is one tensor to write. Its data comes either from Data or,
// for tensors too large to hold, from Write, which must write exactly the
// tensor's size in bytes.
type WriterTensor struct {
	Name  string
	Type  tensor.DType
	Dims  []uint64
	Data  []byte
	Write func(w io.Writer) error
}

func (t *WriterTensor) size() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n / uint64(t.Type.BlockSize()) * uint64(t.Type.BlockBytes())
}

// Writer assembles a GGUF v3 file: metadata in the order added, then tensor
// infos, then the aligned data section.
type Writer struct {
	KVs       []KV
	Tensors   []WriterTensor
	Alignment uint64 // 0 means DefaultAlignment
	// HeaderOnly writes the metadata and the tensor infos (with the offsets
	// their data would have) and stops: a file that declares a model's
	// tensors but holds none of their data, for planning by sizes. Readers
	// open it with Options.HeaderOnly. Tensors need neither Data nor Write.
	HeaderOnly bool
}

// Set appends a metadata entry.
func (w *Writer) Set(key string, v Value) { w.KVs = append(w.KVs, KV{key, v}) }

// Add appends a tensor.
func (w *Writer) Add(t WriterTensor) { w.Tensors = append(w.Tensors, t) }

// WriteTo writes the file to out.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align := w.Alignment
	if align == 0 {
		align = DefaultAlignment
	}
	cw := &countingWriter{w: bufio.NewWriterSize(out, 1<<20)}
	e := &encoder{w: cw}
	e.raw([]byte(Magic))
	e.u32(3)
	e.u64(uint64(len(w.Tensors)))
	e.u64(uint64(len(w.KVs)))
	for _, kv := range w.KVs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type))
		if err := e.value(kv.Value); err != nil {
			return cw.n, fmt.Errorf("gguf: write key %q: %w", kv.Key, err)
		}
	}
	var off uint64
	for i := range w.Tensors {
		t := &w.Tensors[i]
		if !t.Type.Known() || t.Dims[0]%uint64(t.Type.BlockSize()) != 0 {
			return cw.n, fmt.Errorf("gguf: write tensor %q: bad type %s for dims %v", t.Name, t.Type, t.Dims)
		}
		if t.Write == nil && uint64(len(t.Data)) != t.size() && !w.HeaderOnly {
			return cw.n, fmt.Errorf("gguf: write tensor %q: %d bytes of data, want %d", t.Name, len(t.Data), t.size())
		}
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off = (off + t.size() + align - 1) / align * align
	}
	e.pad(align)
	for i := range w.Tensors {
		if w.HeaderOnly {
			break
		}
		t := &w.Tensors[i]
		start := cw.n
		if e.err == nil {
			if t.Write != nil {
				e.err = t.Write(cw)
			} else {
				e.raw(t.Data)
			}
		}
		if e.err == nil && uint64(cw.n-start) != t.size() {
			e.err = fmt.Errorf("wrote %d bytes, want %d", cw.n-start, t.size())
		}
		if e.err != nil {
			return cw.n, fmt.Errorf("gguf: write tensor %q: %w", t.Name, e.err)
		}
		e.pad(align)
	}
	if e.err == nil {
		e.err = cw.w.(*bufio.Writer).Flush()
	}
	return cw.n, e.err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type encoder struct {
	w   *countingWriter
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}
func (e *encoder) u32(v uint32) { binary.LittleEndian.PutUint32(e.buf[:], v); e.raw(e.buf[:4]) }
func (e *encoder) u64(v uint64) { binary.LittleEndian.PutUint64(e.buf[:], v); e.raw(e.buf[:8]) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }

func (e *encoder) pad(align uint64) {
	if r := uint64(e.w.n) % align; r != 0 {
		e.raw(make([]byte, align-r))
	}
}

func (e *encoder) value(v Value) error {
	if v.Type == Array {
		e.u32(uint32(v.Elem))
		e.u64(uint64(v.Len()))
		switch s := v.V.(type) {
		case []string:
			for _, x := range s {
				e.str(x)
			}
		case []Value:
			for _, x := range s {
				if x.Type != Array {
					return fmt.Errorf("nested value of type %s in an array of arrays", x.Type)
				}
				if err := e.value(x); err != nil {
					return err
				}
			}
		default:
			return e.scalars(v)
		}
		return nil
	}
	return e.scalar(v.Type, v.V)
}

func (e *encoder) scalars(v Value) error {
	switch s := v.V.(type) {
	case []uint8:
		e.raw(s)
	case []int8:
		for _, x := range s {
			e.scalar(Int8, x)
		}
	case []bool:
		for _, x := range s {
			e.scalar(Bool, x)
		}
	case []uint16:
		for _, x := range s {
			e.scalar(Uint16, x)
		}
	case []int16:
		for _, x := range s {
			e.scalar(Int16, x)
		}
	case []uint32:
		for _, x := range s {
			e.u32(x)
		}
	case []int32:
		for _, x := range s {
			e.u32(uint32(x))
		}
	case []float32:
		for _, x := range s {
			e.u32(math.Float32bits(x))
		}
	case []uint64:
		for _, x := range s {
			e.u64(x)
		}
	case []int64:
		for _, x := range s {
			e.u64(uint64(x))
		}
	case []float64:
		for _, x := range s {
			e.u64(math.Float64bits(x))
		}
	default:
		return fmt.Errorf("array of %T", v.V)
	}
	return nil
}

func (e *encoder) scalar(t ValueType, v any) error {
	switch x := v.(type) {
	case uint8:
		e.raw([]byte{x})
	case int8:
		e.raw([]byte{byte(x)})
	case bool:
		if x {
			e.raw([]byte{1})
		} else {
			e.raw([]byte{0})
		}
	case uint16:
		binary.LittleEndian.PutUint16(e.buf[:], x)
		e.raw(e.buf[:2])
	case int16:
		binary.LittleEndian.PutUint16(e.buf[:], uint16(x))
		e.raw(e.buf[:2])
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case string:
		e.str(x)
	default:
		return fmt.Errorf("value of Go type %T for %s", v, t)
	}
	return nil
}
