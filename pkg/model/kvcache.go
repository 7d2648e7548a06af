package model

import (
	"container/list"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"unsafe"

	"github.com/switchyard-llm/switchyard/pkg/offheap"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// BlockTokens is the number of positions in one KV-cache block.
const BlockTokens = 32

// ErrKVFull is returned (wrapped) when the KV cache's budget has no room
// for the blocks a sequence needs.
var ErrKVFull = errors.New("model: KV cache full")

// block holds one layer's keys and values for BlockTokens positions: as
// float32 (k, v), or in the pool's cache type (kb, vb).
type block struct {
	k, v   []float32
	kb, vb []byte
	ref    int // sequences and cache entries holding it
}

// KVCache is a pool of KV-cache blocks under a byte budget, shared by the
// sequences of one model, and, when prefix caching is on, an index of the
// blocks of finished prompt prefixes, so that a later sequence starting
// with the same tokens reuses them instead of computing them again
// (vLLM's automatic prefix caching: each full block is keyed by a hash
// chained over every token up to its end).
//
// Cached blocks are read-only: a sequence writes only into blocks it holds
// alone, and copies a shared block before writing into it. Entries no
// running sequence holds are evicted least recently used first when the
// pool needs room.
//
// A KVCache is not safe for concurrent use: the sequences of one pool are
// stepped by one goroutine (the coordinator's scheduler).
type KVCache struct {
	kd, vd  int          // values per position, keys and values, of every layer
	typ     tensor.DType // what the blocks hold: F32, F16 or Q8_0
	kRow    int          // bytes per position of keys, and of values
	vRow    int
	layers  int  // blocks per position range: one per layer
	limit   int  // blocks the budget allows, 0: no limit
	used    int  // blocks allocated (held by a sequence or an entry)
	prefix  bool // index finished blocks for reuse
	free    []*block
	slab    []byte // with a budget, the memory of every block (reserve)
	carved  int    // bytes of slab handed out to blocks
	index   map[uint64]*entry
	lru     *list.List // of *entry, least recently used at the front
	seed    maphash.Seed
	hits    int64 // prompt positions served from the cache
	lookups int64 // prompt positions looked up
	evicted int64 // entries evicted
}

// entry is one cached block position range of a prefix: every layer's
// block for it (nil where a sliding-window layer had dropped it).
type entry struct {
	hash   uint64
	parent uint64 // the previous block's hash, 0 for the first
	tokens [BlockTokens]int32
	blocks []*block
	elem   *list.Element
}

// KVCacheConfig configures a KVCache.
type KVCacheConfig struct {
	// Bytes bounds the pool; 0 means no bound.
	Bytes int64
	// Prefix turns prefix caching on.
	Prefix bool
	// Type is what keys and values are stored as, as llama.cpp's
	// -ctk/-ctv: F32 (0 means F32), F16, or Q8_0 (for head sizes that are
	// multiples of 32). Attention dequantizes them block by block.
	Type tensor.DType
}

// ErrKVType is returned (wrapped) for a cache type a model cannot use.
var ErrKVType = errors.New("model: unsupported KV cache type")

// NewKVCache returns a pool for the sequences of m.
func NewKVCache(m *Model, c KVCacheConfig) (*KVCache, error) {
	kd, vd := m.Shared.Layers[0].Attn.cacheWidths(m.Hyper)
	if c.Type == 0 {
		c.Type = tensor.F32
	}
	kc := &KVCache{kd: kd, vd: vd, typ: c.Type, layers: m.Layers, prefix: c.Prefix,
		index: map[uint64]*entry{}, lru: list.New(), seed: maphash.MakeSeed()}
	switch c.Type {
	case tensor.F32, tensor.F16:
	case tensor.Q8_0:
		// Blocks of 32 must not straddle heads: each head's key and value
		// is dequantized on its own.
		dk, dv := m.HeadDim, m.ValueDim
		if m.MLA() {
			dk, dv = kd, m.KVLoRA
		}
		if dk%tensor.QK != 0 || dv%tensor.QK != 0 {
			return nil, fmt.Errorf("%w: Q8_0 needs key and value sizes that are multiples of %d, this model has %d and %d", ErrKVType, tensor.QK, dk, dv)
		}
	default:
		return nil, fmt.Errorf("%w: %s (want f32, f16 or q8_0)", ErrKVType, c.Type)
	}
	kc.kRow, kc.vRow = c.Type.RowBytes(kd), c.Type.RowBytes(vd)
	if c.Bytes > 0 {
		kc.limit = max(1, int(c.Bytes/int64(kc.BlockBytes())))
	}
	return kc, nil
}

// BlockBytes is the size of one block (one layer, BlockTokens positions).
func (c *KVCache) BlockBytes() int { return BlockTokens * (c.kRow + c.vRow) }

// Type is what the pool stores keys and values as.
func (c *KVCache) Type() tensor.DType { return c.typ }

// KVStats is a snapshot of a pool.
type KVStats struct {
	Blocks, Used, Cached int   // budget (0: none), allocated, held by cache entries
	Hits, Lookups        int64 // prompt positions served from the cache, and looked up
	Evictions            int64
}

// Stats reports the pool's use.
func (c *KVCache) Stats() KVStats {
	return KVStats{Blocks: c.limit, Used: c.used, Cached: c.lru.Len() * c.layers,
		Hits: c.hits, Lookups: c.lookups, Evictions: c.evicted}
}

// Free is the number of blocks that can still be allocated, evicting
// cache entries no sequence holds; -1 without a budget.
func (c *KVCache) Free() int {
	if c.limit == 0 {
		return -1
	}
	n := c.limit - c.used
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if c.evictable(e.Value.(*entry)) {
			n += c.entryBlocks(e.Value.(*entry))
		}
	}
	return n
}

func (c *KVCache) entryBlocks(en *entry) int {
	n := 0
	for _, b := range en.blocks {
		if b != nil && b.ref == 1 {
			n++
		}
	}
	return n
}

// evictable reports whether no sequence holds any of the entry's blocks.
func (c *KVCache) evictable(en *entry) bool {
	for _, b := range en.blocks {
		if b != nil && b.ref > 1 {
			return false
		}
	}
	return true
}

// alloc returns an empty block, held once, evicting the least recently
// used entry that no sequence holds when the budget is spent.
func (c *KVCache) alloc() (*block, error) {
	for c.limit > 0 && c.used >= c.limit {
		if !c.evictOne() {
			return nil, fmt.Errorf("%w: %d blocks of %d bytes in use", ErrKVFull, c.used, c.BlockBytes())
		}
	}
	if n := len(c.free); n > 0 {
		c.used++
		b := c.free[n-1]
		c.free = c.free[:n-1]
		b.ref = 1
		return b, nil
	}
	kb, vb, err := c.carve()
	if err != nil {
		return nil, err
	}
	c.used++
	if c.typ != tensor.F32 {
		return &block{kb: kb, vb: vb, ref: 1}, nil
	}
	return &block{k: asFloats(kb), v: asFloats(vb), ref: 1}, nil
}

// carve returns the memory of a new block's keys and values. With a
// budget it comes from one region of the whole budget outside the Go
// heap, reserved at the first block: the pool holds exactly what it has
// used, and the garbage collector neither scans it nor grows its next
// goal by it (at GOGC 10 a heap of blocks kept a tenth more resident).
// Blocks are never given back, only reused, so at most limit are carved.
func (c *KVCache) carve() (kb, vb []byte, err error) {
	k, v := BlockTokens*c.kRow, BlockTokens*c.vRow
	if c.limit == 0 {
		return make([]byte, k), make([]byte, v), nil
	}
	if c.slab == nil {
		if c.slab, err = offheap.Map(c.limit * (k + v)); err != nil {
			return nil, nil, fmt.Errorf("model: KV cache: %w", err)
		}
		runtime.AddCleanup(c, offheap.Unmap, c.slab)
	}
	at := c.carved
	if at+k+v > len(c.slab) { // only when the limit grew after the slab was reserved
		return make([]byte, k), make([]byte, v), nil
	}
	c.carved += k + v
	return c.slab[at : at+k : at+k], c.slab[at+k : at+k+v : at+k+v], nil
}

// asFloats views b, 4-byte aligned, as float32s.
func asFloats(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// release drops one hold on b, returning it to the free list when none is
// left.
func (c *KVCache) release(b *block) {
	b.ref--
	if b.ref == 0 {
		c.used--
		c.free = append(c.free, b)
	}
}

// evictOne drops the least recently used entry no sequence holds.
func (c *KVCache) evictOne() bool {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		en := e.Value.(*entry)
		if !c.evictable(en) {
			continue
		}
		c.lru.Remove(e)
		delete(c.index, en.hash)
		for _, b := range en.blocks {
			if b != nil {
				c.release(b)
			}
		}
		c.evicted++
		return true
	}
	return false
}

// chain is the hash of a block of tokens following the block hashed
// parent (0 for the first).
func (c *KVCache) chain(parent uint64, tokens []int32) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	var buf [8 + 4*BlockTokens]byte
	for i := range 8 {
		buf[i] = byte(parent >> (8 * i))
	}
	for i, t := range tokens {
		for j := range 4 {
			buf[8+4*i+j] = byte(uint32(t) >> (8 * j))
		}
	}
	h.Write(buf[:])
	if x := h.Sum64(); x != 0 {
		return x
	}
	return 1
}

// lookup returns the entry for a block of tokens after parent, if cached.
func (c *KVCache) lookup(parent uint64, tokens []int32) *entry {
	en := c.index[c.chain(parent, tokens)]
	if en == nil || en.parent != parent || !slices.Equal(en.tokens[:], tokens) {
		return nil
	}
	return en
}

// insert records a sequence's full block bi (every layer's, nil where
// dropped) as the entry after parent.
func (c *KVCache) insert(parent uint64, tokens []int32, blocks []*block) uint64 {
	h := c.chain(parent, tokens)
	if en := c.index[h]; en != nil {
		c.lru.MoveToBack(en.elem)
		return h
	}
	en := &entry{hash: h, parent: parent, blocks: slices.Clone(blocks)}
	copy(en.tokens[:], tokens)
	for _, b := range en.blocks {
		if b != nil {
			b.ref++
		}
	}
	en.elem = c.lru.PushBack(en)
	c.index[h] = en
	return h
}

// Clear drops every cache entry no sequence holds.
func (c *KVCache) Clear() {
	for c.evictOne() {
	}
}

// rows dequantizes n cached rows from row at of a block's bytes (rows of
// rowBytes), each from its element off on, width values, into dst, one
// after another.
func (c *KVCache) rows(dst []float32, b []byte, rowBytes, at, n, off, width int) []float32 {
	start := c.typ.RowBytes(off)
	size := c.typ.RowBytes(width)
	for i := range n {
		r := b[(at+i)*rowBytes+start:]
		tensor.Dequantize(c.typ, dst[i*width:(i+1)*width], r[:size], width)
	}
	return dst[:n*width]
}
