package placementtool

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// writeModel writes a synthetic model to a temporary file.
func writeModel(t *testing.T, c synth.Config) string {
	t.Helper()
	w, err := synth.New(c)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// deepSeekV3Header is DeepSeek-V3's shapes in llama.cpp's Q4_K_M mix, the
// header only.
func deepSeekV3Header(t *testing.T) string {
	return writeModel(t, synth.Config{Arch: "deepseek2", Preset: "full", DType: tensor.Q4_K, Mix: "m", Seed: 1, HeaderOnly: true})
}

// expertBytesV3 re-derives DeepSeek-V3 Q4_K_M's routed-expert bytes from
// its published shape (58 MoE layers of 256 experts of 3 × 7168 × 2048
// weights) and llama.cpp's Q4_K_M rule: ffn_down in Q6_K (210 bytes per
// 256 weights) in the layers use_more_bits picks, every other matrix Q4_K
// (144 bytes per 256).
func expertBytesV3() (total, min, max int64) {
	const n, w = 61, 7168 * 2048
	q4, q6 := int64(w/256*144), int64(w/256*210)
	min = 1 << 62
	for l := 3; l < n; l++ {
		down := q4
		if l < n/8 || l >= 7*n/8 || (l-n/8)%3 == 2 {
			down = q6
		}
		unit := 2*q4 + down
		total += 256 * unit
		min, max = minInt(min, unit), maxInt(max, unit)
	}
	return total, min, max
}

func minInt(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// DeepSeek-V3 Q4_K_M (about 404 GB declared, none of it present) on 4, 8
// and 16 nodes of 128 GiB: it fits; every unit is placed once, evenly,
// within each node's memory; the experts' bytes are what the published
// shape and llama.cpp's mix give.
func TestPlanDeepSeekV3Fits(t *testing.T) {
	path := deepSeekV3Header(t)
	if st, _ := os.Stat(path); st.Size() > 16<<20 {
		t.Fatalf("the header-only file is %d bytes", st.Size())
	}
	wantExperts, wantMin, wantMax := expertBytesV3()
	for _, n := range []int{4, 8, 16} {
		p, err := MakePlan(t.Context(), PlanConfig{Model: path, Nodes: n, NodeMemory: 128 << 30, Headroom: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Fits || p.ShortfallBytes != 0 || !p.HeaderOnly {
			t.Fatalf("%d nodes: fits %v, short by %d, header only %v; want a fit", n, p.Fits, p.ShortfallBytes, p.HeaderOnly)
		}
		if p.ExpertBytes != wantExperts || p.UnitBytesMin != wantMin || p.UnitBytesMax != wantMax {
			t.Errorf("experts %d bytes (units %d–%d), want %d (%d–%d)", p.ExpertBytes, p.UnitBytesMin, p.UnitBytesMax, wantExperts, wantMin, wantMax)
		}
		if p.TensorBytes < 400e9 || p.TensorBytes > 410e9 || p.SharedBytes != p.TensorBytes-p.ExpertBytes {
			t.Errorf("tensors %d bytes, shared %d: want about 404 GB, the shared part the rest", p.TensorBytes, p.SharedBytes)
		}
		units, lo, hi := 0, 14848, 0
		var bytes int64
		for _, nd := range p.Nodes {
			units += nd.Units
			bytes += nd.Bytes
			lo, hi = min(lo, nd.Units), max(hi, nd.Units)
			if nd.Bytes > p.NodeUsable || nd.Free != p.NodeUsable-nd.Bytes {
				t.Errorf("%s holds %d bytes of %d usable (free %d)", nd.ID, nd.Bytes, p.NodeUsable, nd.Free)
			}
		}
		if len(p.Nodes) != n || units != 14848 || bytes != wantExperts || hi-lo > 1 {
			t.Errorf("%d nodes hold %d units (%d to %d each), %d bytes; want %d nodes, 14848 units evenly, %d bytes", len(p.Nodes), units, lo, hi, bytes, n, wantExperts)
		}
		// MLA caches one latent (512) and one rotated key (64) per layer and
		// token, 4 bytes each: 61 × 576 × 4 per token.
		if p.Context != 8192 || p.KVBytesPerSeq != 61*576*4*8192 || p.Sequences != p.KVRoomBytes/p.KVBytesPerSeq {
			t.Errorf("KV: %d bytes a sequence of %d, %d sequences", p.KVBytesPerSeq, p.Context, p.Sequences)
		}
	}
}

// Where it does not fit, the plan says by how much and what would.
func TestPlanDoesNotFit(t *testing.T) {
	path := deepSeekV3Header(t)
	_, _, unitMax := expertBytesV3()
	mem := int64(128 << 30)
	usable := int64(float64(mem) * 0.95)
	perNode := int(usable / unitMax)
	cases := []struct {
		name            string
		nodes, replicas int
		minNodes, maxR  int
		quant           string
	}{
		// Two nodes hold 2 × perNode units of 14,848.
		{"2 nodes", 2, 1, (14848 + perNode - 1) / perNode, 0, "q2_k"},
		// Two replicas need 29,696 places; four nodes have 4 × perNode.
		{"4 nodes, 2 replicas", 4, 2, (29696 + perNode - 1) / perNode, 1, "q2_k"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := MakePlan(t.Context(), PlanConfig{Model: path, Nodes: c.nodes, NodeMemory: 128 << 30, Replicas: c.replicas, Headroom: 0.05})
			if err != nil {
				t.Fatal(err)
			}
			placed := 0
			for _, nd := range p.Nodes {
				placed += nd.Units
				if nd.Units != perNode {
					t.Errorf("%s holds %d units, want a full node's %d", nd.ID, nd.Units, perNode)
				}
			}
			if p.Fits || p.UnplacedUnits != 14848*c.replicas-placed || p.ShortfallBytes <= 0 {
				t.Errorf("fits %v, %d replicas unplaced (placed %d), short by %d", p.Fits, p.UnplacedUnits, placed, p.ShortfallBytes)
			}
			if p.MinNodes != c.minNodes || p.MaxReplicas != c.maxR || p.Quant != c.quant {
				t.Errorf("advice: %d nodes, %d replicas, %q; want %d, %d, %q (%q)", p.MinNodes, p.MaxReplicas, p.Quant, c.minNodes, c.maxR, c.quant, p.Advice)
			}
		})
	}
	// The coordinator too: 8 GiB does not hold the 10 GB shared part.
	p, err := MakePlan(t.Context(), PlanConfig{Model: path, Nodes: 8, NodeMemory: 128 << 30, CoordinatorMemory: 8 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if p.Fits || p.ShortfallBytes != p.SharedBytes+p.KVBytesPerSeq-8<<30 {
		t.Errorf("an 8 GiB coordinator: fits %v, short by %d, want %d", p.Fits, p.ShortfallBytes, p.SharedBytes+p.KVBytesPerSeq-8<<30)
	}
}

// Over HTTP only the header is fetched: planning a model served with its
// data reads a small part of it, and gives the same plan as the local file.
func TestPlanFromURLReadsTheHeader(t *testing.T) {
	path := writeModel(t, synth.Config{Arch: "deepseek2", Preset: "small", DType: tensor.Q8_0, Seed: 1})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gguf.Read(bytes.NewReader(data), int64(len(data)), gguf.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, n: &served}
		http.ServeContent(cw, r, "model.gguf", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	cfg := PlanConfig{Model: srv.URL + "/model.gguf", Nodes: 3, NodeMemory: 1 << 30}
	remote, err := MakePlan(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Model = path
	local, err := MakePlan(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	remote.Model = path
	if !reflect.DeepEqual(remote, local) {
		t.Errorf("the plan over HTTP differs from the local one:\n%+v\n%+v", remote, local)
	}
	t.Logf("served %d bytes of %d (header %d)", served.Load(), len(data), g.DataOffset)
	if got, limit := served.Load(), g.DataOffset+128<<10; got > limit || got*4 > int64(len(data)) {
		t.Errorf("served %d bytes of a %d-byte file whose header is %d bytes", got, len(data), g.DataOffset)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}
