package model

import (
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// greedy decodes n tokens after the logits last, returning the tokens and
// every step's logits.
func greedy(t *testing.T, m *Model, seq *Sequence, last []float32, n int) ([]int32, []float32) {
	t.Helper()
	var toks []int32
	var all []float32
	for range n {
		tok := argmax(last)
		toks = append(toks, tok)
		out, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: []int32{tok}}})
		if err != nil {
			t.Fatal(err)
		}
		last = out[0]
		all = append(all, last...)
	}
	return toks, all
}

// TestPrefixCacheExact: a second request that starts with a first
// request's prompt and answer reuses their cached blocks, and its logits
// (prompt and decode) are bit-identical to computing everything afresh,
// on every architecture in testdata.
func TestPrefixCacheExact(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/models/tiny-*.gguf")
	if len(paths) < 8 {
		t.Fatalf("found %d tiny models", len(paths))
	}
	p1 := make([]int32, 80)
	for i := range p1 {
		p1[i] = int32(i*131%500) + 1
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m := loadModel(t, path)
			m.KV = mustKVCache(t, m, KVCacheConfig{Prefix: true})
			a := m.NewSequence()
			if n := a.Reuse(p1); n != 0 {
				t.Fatalf("empty cache reused %d positions", n)
			}
			out, err := m.Forward(t.Context(), []Chunk{{Seq: a, Tokens: p1}})
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := greedy(t, m, a, out[0], 8)
			a.Release()

			p2 := slices.Concat(p1, answer, []int32{7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18})
			b := m.NewSequence()
			n := b.Reuse(p2)
			// a cached the full blocks of its prompt and answer (88 positions).
			if want := (len(p1) + len(answer)) / BlockTokens * BlockTokens; n != want {
				t.Fatalf("reused %d positions, want %d", n, want)
			}
			got, err := m.Forward(t.Context(), []Chunk{{Seq: b, Tokens: p2[n:], AllLogits: true}})
			if err != nil {
				t.Fatal(err)
			}
			gotToks, gotGen := greedy(t, m, b, got[0][len(got[0])-m.Vocab:], 8)

			fresh := loadModel(t, path) // its own pool, no prefix cache
			c := fresh.NewSequence()
			want, err := fresh.Forward(t.Context(), []Chunk{{Seq: c, Tokens: p2, AllLogits: true}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[0], want[0][n*m.Vocab:]) {
				t.Errorf("prompt logits after the cached prefix differ: max |Δ| %g", maxDiff(got[0], want[0][n*m.Vocab:]))
			}
			wantToks, wantGen := greedy(t, fresh, c, want[0][len(want[0])-m.Vocab:], 8)
			if !slices.Equal(gotToks, wantToks) || !slices.Equal(gotGen, wantGen) {
				t.Errorf("decode differs: %v vs %v, max |Δ| %g", gotToks, wantToks, maxDiff(gotGen, wantGen))
			}
			if st := m.KV.Stats(); st.Hits != int64(n) || st.Lookups != int64(len(p1)+len(p2)) {
				t.Errorf("stats: %d hits of %d looked up, want %d of %d", st.Hits, st.Lookups, n, len(p1)+len(p2))
			}
		})
	}
}

// TestKVBudget: a pool of a fixed number of blocks admits sequences while
// their blocks fit, evicts cached prefixes no sequence holds, and refuses
// with ErrKVFull (leaving the sequence usable) when running sequences hold
// everything.
func TestKVBudget(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	kv := mustKVCache(t, m, KVCacheConfig{Prefix: true})
	kv.limit = 4 * m.Layers // four blocks of positions
	m.KV = kv
	p := make([]int32, 2*BlockTokens+1)
	for i := range p {
		p[i] = int32(i + 3)
	}
	a := m.NewSequence()
	if err := a.Reserve(len(p)); err != nil { // 3 blocks a layer
		t.Fatal(err)
	}
	if _, err := m.Forward(t.Context(), []Chunk{{Seq: a, Tokens: p}}); err != nil {
		t.Fatal(err)
	}
	b := m.NewSequence()
	if err := b.Reserve(2 * BlockTokens); !errors.Is(err, ErrKVFull) {
		t.Fatalf("a second sequence of 2 blocks beside one of 3 in a pool of 4: %v, want ErrKVFull", err)
	}
	if got := kv.Free(); got != 2 {
		t.Errorf("free blocks %d beside a sequence holding 6 of 8, want 2", got)
	}
	a.Release() // its two full blocks stay cached
	if st := kv.Stats(); st.Used != 2*m.Layers || st.Cached != 2*m.Layers {
		t.Errorf("after release: %d blocks used, %d cached; want %d and %d", st.Used, st.Cached, 2*m.Layers, 2*m.Layers)
	}
	c := m.NewSequence()
	if n := c.Reuse(p); n != 2*BlockTokens {
		t.Fatalf("reused %d positions, want %d", n, 2*BlockTokens)
	}
	if _, err := m.Forward(t.Context(), []Chunk{{Seq: c, Tokens: p[2*BlockTokens:]}}); err != nil {
		t.Fatal(err)
	}
	// c holds the cached blocks and one more a layer: 6 of 8.
	if err := b.Reserve(2 * BlockTokens); !errors.Is(err, ErrKVFull) {
		t.Fatalf("b beside c: %v, want ErrKVFull", err)
	}
	c.Release()
	if err := b.Reserve(len(p)); err != nil { // 6 blocks: one cached prefix block must go
		t.Fatalf("b after c is gone: %v (a cached prefix should be evicted)", err)
	}
	if st := kv.Stats(); st.Evictions == 0 {
		t.Error("no entry was evicted")
	}
	if _, err := m.Forward(t.Context(), []Chunk{{Seq: b, Tokens: p}}); err != nil {
		t.Fatalf("b's forward in its reservation: %v", err)
	}
}

func mustKVCache(t *testing.T, m *Model, c KVCacheConfig) *KVCache {
	t.Helper()
	kv, err := NewKVCache(m, c)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestKVCacheTypes runs the F32 goldens with the KV cache stored as F16
// and, where head sizes allow, Q8_0, and holds each to its deviation from
// llama.cpp's F32-cache logits as measured, with a margin: F16 ≤ 6.4e-3
// (gpt-oss; 1.1e-3–2.9e-3 elsewhere), Q8_0 ≤ 1.57 (gpt-oss, where a
// quantised key flips a router choice; 0.155 on qwen3moe). Q8_0 is
// refused, by name, for heads not a multiple of 32 wide. Blocks shrink to
// a half (F16) and 34/128 (Q8_0) of F32's.
func TestKVCacheTypes(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/golden/tiny-*-f32.json")
	bound := map[tensor.DType]float64{tensor.F16: 0.01, tensor.Q8_0: 2}
	size := map[tensor.DType][2]int{tensor.F16: {1, 2}, tensor.Q8_0: {34, 128}}
	for _, gpath := range files {
		name := strings.TrimSuffix(filepath.Base(gpath), ".json")
		for _, typ := range []tensor.DType{tensor.F16, tensor.Q8_0} {
			t.Run(name+"/"+typ.String(), func(t *testing.T) {
				g := loadGolden(t, gpath)
				m := loadModel(t, modelPath(name))
				kv, err := NewKVCache(m, KVCacheConfig{Type: typ})
				if typ == tensor.Q8_0 && (m.HeadDim%32 != 0 || m.ValueDim%32 != 0 || m.MLA()) {
					if !errors.Is(err, ErrKVType) {
						t.Fatalf("Q8_0 cache for head sizes %d/%d: %v, want ErrKVType", m.HeadDim, m.ValueDim, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				f32 := mustKVCache(t, m, KVCacheConfig{})
				if r := size[typ]; kv.BlockBytes()*r[1] != f32.BlockBytes()*r[0] {
					t.Errorf("%s block %d bytes, F32 block %d", typ, kv.BlockBytes(), f32.BlockBytes())
				}
				m.KV = kv
				var worst float64
				for _, p := range g.Prompts {
					seq := m.NewSequence()
					out, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: p.Prompt, AllLogits: true}})
					if err != nil {
						t.Fatal(err)
					}
					for pos := range p.Prompt {
						worst = max(worst, maxDiff(out[0][pos*m.Vocab:(pos+1)*m.Vocab], p.Logits[pos]))
					}
					for step, tok := range p.Greedy[:len(p.GenLogits)] {
						out, err := m.Forward(t.Context(), []Chunk{{Seq: seq, Tokens: []int32{tok}}})
						if err != nil {
							t.Fatal(err)
						}
						worst = max(worst, maxDiff(out[0], p.GenLogits[step]))
					}
					seq.Release()
				}
				t.Logf("%s cache: max |Δlogit| %.3g against llama.cpp's F32 cache", typ, worst)
				if worst > bound[typ] {
					t.Errorf("%s cache: max |Δlogit| %.3g, over %g", typ, worst, bound[typ])
				}
			})
		}
	}
}

// TestKVBudgetOffHeap: a pool with a budget keeps its blocks outside the
// Go heap, so the garbage collector's goal does not grow by them.
func TestKVBudgetOffHeap(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	const budget = 64 << 20
	kv := mustKVCache(t, m, KVCacheConfig{Bytes: budget})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var blocks []*block
	for range kv.limit {
		b, err := kv.alloc()
		if err != nil {
			t.Fatal(err)
		}
		b.k[len(b.k)-1], b.v[0] = 1, 2 // written: the pages are the process's now
		blocks = append(blocks, b)
	}
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > budget/8 {
		t.Errorf("the Go heap grew by %d bytes for %d blocks of a %d-byte budget, want the blocks off the heap", grew, len(blocks), budget)
	}
	if _, err := kv.alloc(); !errors.Is(err, ErrKVFull) {
		t.Errorf("a block past the budget: %v, want ErrKVFull", err)
	}
	// Distinct memory: each block's last key is its own.
	for i, b := range blocks {
		b.k[len(b.k)-1] = float32(i)
	}
	for i, b := range blocks {
		if b.k[len(b.k)-1] != float32(i) {
			t.Fatalf("block %d shares memory with another", i)
		}
	}
}
