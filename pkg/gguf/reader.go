package gguf

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// Errors returned (wrapped, with the key or tensor at fault) by the reader.
var (
	ErrFormat    = errors.New("gguf: not a supported GGUF file")
	ErrTruncated = errors.New("gguf: file is truncated")
	ErrLimit     = errors.New("gguf: limit exceeded")
	ErrCorrupt   = errors.New("gguf: corrupt file")
	ErrNotFound  = errors.New("gguf: not found")
	ErrSplit     = errors.New("gguf: split model")
)

// Limits bounds everything the reader takes from an untrusted file before
// it allocates for it.
type Limits struct {
	MaxStringLen int    // bytes in one string; 0 means 16 MiB
	MaxArrayLen  int    // elements in one array; 0 means 16 Mi
	MaxKVs       int    // metadata entries; 0 means 65536
	MaxTensors   int    // tensor infos; 0 means 65536
	MaxNameLen   int    // bytes in a tensor name; 0 means 256
	MaxDepth     int    // nesting of arrays of arrays; 0 means 8
	MaxElements  uint64 // elements in one tensor; 0 means 2^40

	headerOnly bool // Options.HeaderOnly
}

// MaxDims is the largest number of dimensions of a tensor (ggml's GGML_MAX_DIMS).
const MaxDims = 4

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxStringLen, 16<<20)
	def(&l.MaxArrayLen, 16<<20)
	def(&l.MaxKVs, 1<<16)
	def(&l.MaxTensors, 1<<16)
	def(&l.MaxNameLen, 256)
	def(&l.MaxDepth, 8)
	if l.MaxElements == 0 {
		l.MaxElements = 1 << 40
	}
	return l
}

// TensorInfo describes one tensor. Dims are in ggml order: Dims[0] is the
// number of elements in a row (ne0).
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   tensor.DType
	Part   int    // index in File.Parts of the file that holds the data
	Offset uint64 // from the start of that part's data section
	Size   uint64 // bytes
}

// Elements is the number of elements of the tensor.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// ExpertRange returns the byte range, relative to the tensor's start, of
// expert e of a merged expert tensor: 3-D weights or 2-D biases, experts
// being the outermost dimension, stored one after another.
func (t *TensorInfo) ExpertRange(e int) (off, size uint64, err error) {
	if len(t.Dims) != 2 && len(t.Dims) != 3 {
		return 0, 0, fmt.Errorf("gguf: tensor %q has %d dimensions, want 2 or 3 for per-expert access", t.Name, len(t.Dims))
	}
	n := t.Dims[len(t.Dims)-1] // experts are the last dimension
	if e < 0 || uint64(e) >= n {
		return 0, 0, fmt.Errorf("gguf: tensor %q has %d experts, no expert %d", t.Name, n, e)
	}
	per := t.Size / n
	return uint64(e) * per, per, nil
}

// File is an open GGUF model: one file, or a model split into parts (see
// Open), read as one.
type File struct {
	Version    uint32
	KVs        []KV         // the model's metadata: the first part's
	Tensors    []TensorInfo // of every part, in part order
	Alignment  uint64       // of the first part
	DataOffset int64        // absolute offset of the first part's data section
	Size       int64        // size of the first part; Parts gives every part's
	Parts      []Part       // the files the model is stored in: one unless split

	digest      string
	kvIndex     map[string]int
	tensorIndex map[string]int
}

// Part is one file of a model: the whole model, or one part of a split one.
type Part struct {
	Name       string // the path or URL it was opened by; "" for Read
	Size       int64
	DataOffset int64 // absolute offset of its data section

	digest string // of its header and size
	r      io.ReaderAt
	closer io.Closer // nil for Read: the caller owns r
	mapped []byte    // the whole file, when mapped
}

// Options controls Open.
type Options struct {
	Limits Limits
	// Mmap maps each file read-only; tensor data is then returned as views
	// into the mapping instead of being read into fresh buffers. Applies
	// only when Source is nil.
	Mmap bool
	// Source opens the files Open names; nil means local paths.
	Source Source
	// HeaderOnly accepts tensors whose data lies past the end of their
	// file: a file that declares its tensors but holds no data (written
	// with Writer.HeaderOnly), or a download stopped after the header, for
	// tools that plan by sizes. Reading such a tensor's bytes fails with
	// ErrTruncated.
	HeaderOnly bool
}

// A Source opens the file called name: the name Open was given, or one
// derived from it for another part of a split model (a path, a URL:
// whatever names mean to the source). The reader must stay valid until the
// File is closed; one that is an io.Closer is closed with the File.
type Source func(name string) (r io.ReaderAt, size int64, err error)

// Open opens and parses the model whose file, or first part, is name. A
// model split as llama.cpp's gguf-split writes it (split.count > 1, parts
// named <prefix>-00001-of-0000N.gguf, …) is opened part by part through
// the same source and read as one File; every part must agree with the
// first (see ErrSplit). Parts are never joined on disk.
func Open(name string, opts Options) (*File, error) {
	src := opts.Source
	if src == nil {
		src = localFiles(opts.Mmap)
	}
	lim := opts.Limits
	lim.headerOnly = opts.HeaderOnly
	f, err := openPart(src, name, lim)
	if err != nil {
		return nil, err
	}
	if err := f.openParts(src, name, lim); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openPart opens and parses one file, which may be a part of a split model.
func openPart(src Source, name string, lim Limits) (*File, error) {
	r, size, err := src(name)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := read(r, size, lim)
	if err != nil {
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &f.Parts[0]
	p.Name = name
	p.closer, _ = r.(io.Closer)
	if m, ok := r.(*mapping); ok {
		p.mapped = m.data
		// The header is parsed into Go values and not read again: its
		// pages (the vocabulary, the merges) need not stay resident.
		f.Release(m.data[:p.DataOffset])
	}
	return f, nil
}

// localFiles is the Source of local paths, optionally memory-mapped.
func localFiles(mmap bool) Source {
	return func(path string) (io.ReaderAt, int64, error) {
		fh, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, 0, err
		}
		if !mmap || st.Size() == 0 {
			return fh, st.Size(), nil
		}
		m, err := syscall.Mmap(int(fh.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		fh.Close() // the mapping outlives the descriptor
		if err != nil {
			return nil, 0, fmt.Errorf("mmap %s: %w", path, err)
		}
		return &mapping{data: m}, st.Size(), nil
	}
}

// mapping is a file mapped read-only.
type mapping struct{ data []byte }

func (m *mapping) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *mapping) Close() error {
	if m.data == nil {
		return nil
	}
	err := syscall.Munmap(m.data)
	m.data = nil
	return err
}

// Release tells the kernel that the pages wholly inside b, a view of a
// memory-mapped part, are no longer needed: they leave the process's
// resident memory (and are read again from the file if b is used again).
// It does nothing for bytes that are not a mapping's.
func (f *File) Release(b []byte) {
	if len(b) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for i := range f.Parts {
		m := f.Parts[i].mapped
		if len(m) == 0 {
			continue
		}
		base := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
		if start < base || start+uintptr(len(b)) > base+uintptr(len(m)) {
			continue
		}
		page := uintptr(os.Getpagesize())
		lo := (start - base + page - 1) / page * page
		hi := (start - base + uintptr(len(b))) / page * page
		if lo < hi {
			syscall.Madvise(m[lo:hi], syscall.MADV_DONTNEED) // advice: an error changes nothing
		}
		return
	}
}

// Close releases every part's file and mapping; data views obtained from
// a mapping must not be used afterwards.
func (f *File) Close() error {
	var err error
	for i := range f.Parts {
		p := &f.Parts[i]
		p.mapped = nil
		if p.closer != nil {
			if cerr := p.closer.Close(); err == nil {
				err = cerr
			}
			p.closer = nil
		}
	}
	return err
}

// Read parses a GGUF file of the given size from r. Tensor data is read
// from r on demand, so r must stay valid while the File is used. A part
// of a split model is refused with ErrSplit: its other parts can only be
// found by name, through Open.
func Read(r io.ReaderAt, size int64, lim Limits) (*File, error) {
	f, err := read(r, size, lim)
	if err != nil {
		return nil, err
	}
	s, err := f.splitKeys()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSplit, err)
	}
	if s.count > 1 {
		return nil, fmt.Errorf("%w: this is part %d of %d; open the first part by name so that the others are found", ErrSplit, s.no+1, s.count)
	}
	return f, nil
}

// read parses one file, whole model or part.
func read(r io.ReaderAt, size int64, lim Limits) (*File, error) {
	lim = lim.withDefaults()
	d := &decoder{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size, lim: lim, h: sha256.New()}
	f := &File{Size: size, kvIndex: map[string]int{}, tensorIndex: map[string]int{}}

	var magic [4]byte
	if err := d.full(magic[:]); err != nil {
		return nil, fmt.Errorf("%w: reading magic: %w", ErrFormat, err)
	}
	if string(magic[:]) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q, want %q", ErrFormat, magic[:], Magic)
	}
	ver, err := d.u32()
	if err != nil {
		return nil, fmt.Errorf("gguf: version: %w", err)
	}
	switch {
	case ver == 2 || ver == 3:
	case ver == 1:
		return nil, fmt.Errorf("%w: version 1 is obsolete; convert the file again", ErrFormat)
	case ver == 2<<24 || ver == 3<<24:
		return nil, fmt.Errorf("%w: big-endian files are not supported", ErrFormat)
	default:
		return nil, fmt.Errorf("%w: unknown version %d (supported: 2, 3)", ErrFormat, ver)
	}
	f.Version = ver
	nt, err := d.u64()
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor count: %w", err)
	}
	nkv, err := d.u64()
	if err != nil {
		return nil, fmt.Errorf("gguf: metadata count: %w", err)
	}
	if nt > uint64(lim.MaxTensors) {
		return nil, fmt.Errorf("%w: %d tensors (limit %d)", ErrLimit, nt, lim.MaxTensors)
	}
	if nkv > uint64(lim.MaxKVs) {
		return nil, fmt.Errorf("%w: %d metadata entries (limit %d)", ErrLimit, nkv, lim.MaxKVs)
	}

	f.KVs = make([]KV, 0, nkv)
	for i := range nkv {
		key, err := d.str()
		if err != nil {
			return nil, fmt.Errorf("gguf: key of metadata entry %d: %w", i, err)
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, fmt.Errorf("%w: duplicate metadata key %q", ErrCorrupt, key)
		}
		t, err := d.u32()
		if err != nil {
			return nil, fmt.Errorf("gguf: type of key %q: %w", key, err)
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("gguf: value of key %q: %w", key, err)
		}
		f.kvIndex[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{key, v})
	}

	f.Alignment = DefaultAlignment
	if v, ok := f.Get("general.alignment"); ok {
		a, isInt := v.Int()
		if !isInt || a <= 0 || a&(a-1) != 0 || a > 1<<20 {
			return nil, fmt.Errorf("%w: general.alignment %v is not a power of two", ErrCorrupt, v)
		}
		f.Alignment = uint64(a)
	}

	f.Tensors = make([]TensorInfo, 0, nt)
	for i := range nt {
		ti, err := d.tensorInfo()
		if err != nil {
			if ti.Name != "" {
				return nil, fmt.Errorf("gguf: tensor %q: %w", ti.Name, err)
			}
			return nil, fmt.Errorf("gguf: tensor info %d: %w", i, err)
		}
		if _, dup := f.tensorIndex[ti.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate tensor %q", ErrCorrupt, ti.Name)
		}
		if ti.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("%w: tensor %q: misaligned data offset %d (alignment %d)", ErrCorrupt, ti.Name, ti.Offset, f.Alignment)
		}
		f.tensorIndex[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}

	fmt.Fprintf(d.h, "size=%d", size)
	f.digest = "sha256:" + hex.EncodeToString(d.h.Sum(nil))
	data := (uint64(d.pos) + f.Alignment - 1) / f.Alignment * f.Alignment
	f.DataOffset = int64(data)
	f.Parts = []Part{{Size: size, DataOffset: f.DataOffset, digest: f.digest, r: r}}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		end := data + t.Offset + t.Size
		if end < data || (end > uint64(size) && !lim.headerOnly) {
			return nil, fmt.Errorf("%w: tensor %q: data [%d, %d) runs past the end of the file (%d bytes)", ErrTruncated, t.Name, data+t.Offset, end, size)
		}
	}
	return f, nil
}

// Get returns the metadata value for key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// Forget drops the metadata entries whose keys start with prefix, so that
// their values can be freed: an expert node never reads the vocabulary
// ("tokenizer."), a megabyte or more of strings. The digest is unchanged.
func (f *File) Forget(prefix string) {
	f.KVs = slices.DeleteFunc(f.KVs, func(kv KV) bool { return strings.HasPrefix(kv.Key, prefix) })
	clear(f.kvIndex)
	for i, kv := range f.KVs {
		f.kvIndex[kv.Key] = i
	}
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorRange returns size bytes at offset off of the named tensor's data,
// from the part that holds it: a view into the mapping when the part is
// mapped, else a fresh buffer filled by exactly one ranged read.
func (f *File) TensorRange(name string, off, size uint64) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q", ErrNotFound, name)
	}
	b, err := f.readTensor(t, off, size)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return b, nil
}

// TensorData returns the bytes of the named tensor.
func (f *File) TensorData(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q", ErrNotFound, name)
	}
	b, err := f.readTensor(t, 0, t.Size)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return b, nil
}

// ExpertData returns the bytes of expert e of the merged 3-D tensor name,
// reading nothing of the other experts.
func (f *File) ExpertData(name string, e int) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q", ErrNotFound, name)
	}
	off, size, err := t.ExpertRange(e)
	if err != nil {
		return nil, err
	}
	b, err := f.readTensor(t, off, size)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q expert %d: %w", name, e, err)
	}
	return b, nil
}

// readTensor reads [off, off+size) of t's data from its part.
func (f *File) readTensor(t *TensorInfo, off, size uint64) ([]byte, error) {
	if off > t.Size || size > t.Size-off {
		return nil, fmt.Errorf("%w: range [%d, %d) outside the tensor's %d bytes", ErrCorrupt, off, off+size, t.Size)
	}
	p := &f.Parts[t.Part]
	start := uint64(p.DataOffset) + t.Offset + off
	if start+size > uint64(p.Size) { // a header-only file (Options.HeaderOnly)
		return nil, fmt.Errorf("%w: tensor %q: data [%d, %d) is not in %s (%d bytes): the file holds its header only", ErrTruncated, t.Name, start, start+size, f.partLabel(t.Part), p.Size)
	}
	if p.mapped != nil {
		return p.mapped[start : start+size : start+size], nil
	}
	buf := make([]byte, size)
	if _, err := p.r.ReadAt(buf, int64(start)); err != nil {
		return nil, fmt.Errorf("read [%d, %d) of %s: %w", start, start+size, f.partLabel(t.Part), err)
	}
	return buf, nil
}

// decoder reads the header sequentially, checking every length against the
// limits and against the bytes left in the file before allocating.
type decoder struct {
	h    hash.Hash // of every byte parsed
	r    *bufio.Reader
	pos  int64
	size int64
	lim  Limits
	buf  [8]byte
}

func (d *decoder) left() int64 { return d.size - d.pos }

func (d *decoder) full(b []byte) error {
	n, err := io.ReadFull(d.r, b)
	d.pos += int64(n)
	d.h.Write(b[:n])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w at byte %d", ErrTruncated, d.pos)
	}
	return err
}

func (d *decoder) u32() (uint32, error) {
	if err := d.full(d.buf[:4]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(d.buf[:4]), nil
}

func (d *decoder) u64() (uint64, error) {
	if err := d.full(d.buf[:8]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(d.buf[:8]), nil
}

func (d *decoder) str() (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(d.lim.MaxStringLen) {
		return "", fmt.Errorf("%w: string of %d bytes (limit %d)", ErrLimit, n, d.lim.MaxStringLen)
	}
	if int64(n) > d.left() {
		return "", fmt.Errorf("%w: string of %d bytes with %d left", ErrTruncated, n, d.left())
	}
	b := make([]byte, n)
	if err := d.full(b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (d *decoder) value(t ValueType, depth int) (Value, error) {
	if t == Array {
		return d.array(depth)
	}
	if t == String {
		s, err := d.str()
		return Value{Type: String, V: s}, err
	}
	sz := t.size()
	if sz == 0 {
		return Value{}, fmt.Errorf("%w: unknown value type %d", ErrCorrupt, uint32(t))
	}
	if err := d.full(d.buf[:sz]); err != nil {
		return Value{}, err
	}
	return Value{Type: t, V: scalar(t, d.buf[:sz])}, nil
}

func scalar(t ValueType, b []byte) any {
	le := binary.LittleEndian
	switch t {
	case Uint8:
		return b[0]
	case Int8:
		return int8(b[0])
	case Bool:
		return b[0] != 0
	case Uint16:
		return le.Uint16(b)
	case Int16:
		return int16(le.Uint16(b))
	case Uint32:
		return le.Uint32(b)
	case Int32:
		return int32(le.Uint32(b))
	case Float32:
		return math.Float32frombits(le.Uint32(b))
	case Uint64:
		return le.Uint64(b)
	case Int64:
		return int64(le.Uint64(b))
	case Float64:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil
}

func (d *decoder) array(depth int) (Value, error) {
	if depth >= d.lim.MaxDepth {
		return Value{}, fmt.Errorf("%w: arrays nested deeper than %d", ErrLimit, d.lim.MaxDepth)
	}
	et, err := d.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	n, err := d.u64()
	if err != nil {
		return Value{}, err
	}
	if n > uint64(d.lim.MaxArrayLen) {
		return Value{}, fmt.Errorf("%w: array of %d elements (limit %d)", ErrLimit, n, d.lim.MaxArrayLen)
	}
	// Every element takes at least this many bytes in the file, so a count
	// the file cannot hold is refused before anything is allocated.
	minSize := map[ValueType]int{String: 8, Array: 12}[elem]
	if minSize == 0 {
		minSize = elem.size()
	}
	if minSize == 0 {
		return Value{}, fmt.Errorf("%w: array of unknown value type %d", ErrCorrupt, et)
	}
	if n*uint64(minSize) > uint64(d.left()) {
		return Value{}, fmt.Errorf("%w: array of %d %s with %d bytes left", ErrTruncated, n, elem, d.left())
	}
	v := Value{Type: Array, Elem: elem}
	switch elem {
	case String:
		s := make([]string, n)
		for i := range s {
			if s[i], err = d.str(); err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
		}
		v.V = s
	case Array:
		s := make([]Value, n)
		for i := range s {
			if s[i], err = d.array(depth + 1); err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
		}
		v.V = s
	default:
		raw := make([]byte, n*uint64(minSize))
		if err := d.full(raw); err != nil {
			return Value{}, err
		}
		v.V = scalarSlice(elem, raw, int(n))
	}
	return v, nil
}

func scalarSlice(t ValueType, raw []byte, n int) any {
	sz := t.size()
	fill := func(set func(i int, b []byte)) {
		for i := range n {
			set(i, raw[i*sz:(i+1)*sz])
		}
	}
	switch t {
	case Uint8:
		return raw
	case Int8:
		s := make([]int8, n)
		fill(func(i int, b []byte) { s[i] = int8(b[0]) })
		return s
	case Bool:
		s := make([]bool, n)
		fill(func(i int, b []byte) { s[i] = b[0] != 0 })
		return s
	case Uint16:
		s := make([]uint16, n)
		fill(func(i int, b []byte) { s[i] = binary.LittleEndian.Uint16(b) })
		return s
	case Int16:
		s := make([]int16, n)
		fill(func(i int, b []byte) { s[i] = int16(binary.LittleEndian.Uint16(b)) })
		return s
	case Uint32:
		s := make([]uint32, n)
		fill(func(i int, b []byte) { s[i] = binary.LittleEndian.Uint32(b) })
		return s
	case Int32:
		s := make([]int32, n)
		fill(func(i int, b []byte) { s[i] = int32(binary.LittleEndian.Uint32(b)) })
		return s
	case Float32:
		s := make([]float32, n)
		fill(func(i int, b []byte) { s[i] = math.Float32frombits(binary.LittleEndian.Uint32(b)) })
		return s
	case Uint64:
		s := make([]uint64, n)
		fill(func(i int, b []byte) { s[i] = binary.LittleEndian.Uint64(b) })
		return s
	case Int64:
		s := make([]int64, n)
		fill(func(i int, b []byte) { s[i] = int64(binary.LittleEndian.Uint64(b)) })
		return s
	case Float64:
		s := make([]float64, n)
		fill(func(i int, b []byte) { s[i] = math.Float64frombits(binary.LittleEndian.Uint64(b)) })
		return s
	}
	return nil
}

func (d *decoder) tensorInfo() (TensorInfo, error) {
	var ti TensorInfo
	name, err := d.str()
	if err != nil {
		return ti, fmt.Errorf("name: %w", err)
	}
	if name == "" || len(name) > d.lim.MaxNameLen {
		return ti, fmt.Errorf("%w: tensor name of %d bytes (limit %d)", ErrLimit, len(name), d.lim.MaxNameLen)
	}
	ti.Name = name
	nd, err := d.u32()
	if err != nil {
		return ti, err
	}
	if nd == 0 || nd > MaxDims {
		return ti, fmt.Errorf("%w: %d dimensions (want 1 to %d)", ErrCorrupt, nd, MaxDims)
	}
	ti.Dims = make([]uint64, nd)
	elems := uint64(1)
	for i := range ti.Dims {
		if ti.Dims[i], err = d.u64(); err != nil {
			return ti, err
		}
		if ti.Dims[i] == 0 {
			return ti, fmt.Errorf("%w: dimension %d is zero", ErrCorrupt, i)
		}
		if ti.Dims[i] > d.lim.MaxElements/elems {
			return ti, fmt.Errorf("%w: dimensions %v overflow %d elements", ErrLimit, ti.Dims[:i+1], d.lim.MaxElements)
		}
		elems *= ti.Dims[i]
	}
	t, err := d.u32()
	if err != nil {
		return ti, err
	}
	ti.Type = tensor.DType(t)
	if !ti.Type.Known() {
		return ti, fmt.Errorf("%w: unknown tensor type %d", ErrCorrupt, t)
	}
	if ti.Dims[0]%uint64(ti.Type.BlockSize()) != 0 {
		return ti, fmt.Errorf("%w: row of %d elements is not a multiple of the %s block size %d", ErrCorrupt, ti.Dims[0], ti.Type, ti.Type.BlockSize())
	}
	ti.Size = elems / uint64(ti.Type.BlockSize()) * uint64(ti.Type.BlockBytes())
	if ti.Offset, err = d.u64(); err != nil {
		return ti, err
	}
	return ti, nil
}

// Digest identifies the file's contents cheaply: the SHA-256 of its
// header (metadata and tensor infos, which fix every tensor's type, shape
// and place) and its size, computed while parsing, without reading any
// tensor data. A split model's digest is the SHA-256 of its parts'.
func (f *File) Digest() string { return f.digest }
