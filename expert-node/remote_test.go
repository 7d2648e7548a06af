package expertnode

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

const demo = "../internal/demomodel/demo-moe-q8_0.gguf"

// TestModelOverHTTP serves the demo model from a local HTTP server that
// honours Range and counts what it sends: a node holding a third of the
// units fetches the header and about a third of the expert bytes, and a
// second start with the same cache fetches nothing again.
func TestModelOverHTTP(t *testing.T) {
	data, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"demo-v1"`)
		http.ServeContent(&counter{w, &sent}, r, "demo.gguf", time.Unix(1, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	cache := t.TempDir()
	cfg := Config{NodeID: "node-1", ModelPath: srv.URL + "/demo-moe-q8_0.gguf", CacheDir: cache}

	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := n.file.Hyper
	// A third of the units (every third one) placed on this node.
	pm := placement.Map{Epoch: 1, Units: map[string][]string{}}
	held := 0
	for l := range h.Layers {
		for e := range h.Experts {
			if (l*h.Experts+e)%3 == 0 {
				pm.Units[placement.UnitKey(model.Unit{Layer: l, Expert: e})] = []string{"node-1"}
				held++
			}
		}
	}
	n.sync(pm)
	unit, _ := n.file.UnitBytes(model.Unit{})
	expert := unit * int64(h.Layers*h.Experts)
	got := sent.Load() - n.file.DataOffset // what was sent beyond the header
	frac := float64(got) / float64(expert)
	t.Logf("held %d of %d units; the server sent %d header + %d unit bytes = %.3f of the %d expert bytes (file %d bytes)",
		held, h.Layers*h.Experts, n.file.DataOffset, got, frac, expert, len(data))
	if want := int64(held) * unit; got < want || got > want+64<<10 {
		t.Errorf("fetched %d bytes beyond the header, want the %d bytes of the held units", got, want)
	}
	if frac < 0.30 || frac > 0.37 {
		t.Errorf("fetched %.2f of the expert bytes, want about a third", frac)
	}

	// A second start reads from the cache.
	before := sent.Load()
	n2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n2.sync(pm)
	if extra := sent.Load() - before; extra > 16 {
		t.Errorf("second start fetched %d bytes again", extra)
	}
	if got := len(n2.local.Units()); got != held {
		t.Errorf("second start loaded %d units, want %d", got, held)
	}
}

// TestSplitModelOverHTTP serves the demo model split into three parts:
// given the first part's URL, the node finds the others, reads from each
// its header and the units it holds there and nothing else, and reports
// the bytes of each part in its metrics.
func TestSplitModelOverHTTP(t *testing.T) {
	whole, err := gguf.Open(demo, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	ws, err := whole.Split(3)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	partOf := map[string]int{} // tensor name → part, as written
	for i, w := range ws {
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		files["/"+gguf.PartName("demo", i, 3)] = buf.Bytes()
		for _, ti := range w.Tensors {
			partOf[ti.Name] = i
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Unix(1, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	n, err := Open(Config{NodeID: "node-1", ModelPath: srv.URL + "/demo-00001-of-00003.gguf", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.read) != 3 {
		t.Fatalf("counting %d parts, want 3", len(n.read))
	}
	h := n.file.Hyper
	pm := placement.Map{Epoch: 1, Units: map[string][]string{}}
	var want [3]int64 // bytes of the held units in each part
	for l := range h.Layers {
		for e := range h.Experts {
			if (l*h.Experts+e)%3 != 0 {
				continue
			}
			pm.Units[placement.UnitKey(model.Unit{Layer: l, Expert: e})] = []string{"node-1"}
			for _, p := range []string{"gate", "up", "down"} {
				ti, _ := whole.Tensor(fmt.Sprintf("blk.%d.ffn_%s_exps.weight", l, p))
				want[partOf[ti.Name]] += int64(ti.Size / ti.Dims[2])
			}
		}
	}
	n.sync(pm)
	reg := prometheus.NewRegistry()
	newMetrics(reg, n)
	perPart := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "switchyard_expert_model_part_bytes_read_total":
			for _, m := range mf.GetMetric() {
				perPart[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		case "switchyard_expert_model_bytes_read_total":
			if got, want := mf.GetMetric()[0].GetCounter().GetValue(), float64(n.bytesRead()); got != want {
				t.Errorf("switchyard_expert_model_bytes_read_total is %g, the node read %g bytes", got, want)
			}
		}
	}
	for i, p := range n.file.Parts {
		read := n.read[i].n.Load()
		t.Logf("part %d: header %d bytes, units %d bytes, read %d bytes", i+1, p.DataOffset, want[i], read)
		if got := read - p.DataOffset; got < want[i] || got > want[i]+64<<10 {
			t.Errorf("part %d: read %d bytes beyond its header, want the %d bytes of the held units in it", i+1, got, want[i])
		}
		if m := perPart[strconv.Itoa(i+1)]; m != float64(read) {
			t.Errorf("part %d: metric says %g bytes read, the counter %d", i+1, m, read)
		}
	}
	if want[1] == 0 || want[2] == 0 {
		t.Errorf("held units' bytes per part %v: the later parts should hold experts", want)
	}
}

type counter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *counter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

// A unit the placement takes away is no longer reported ready but is still
// served for a moment (coordinators on the old placement still send it
// calls); then it is unloaded, unless the placement has given it back.
func TestDroppedUnitLingers(t *testing.T) {
	n := testNode(t) // holds 0/0–0/3
	client := serveNode(t, n)
	placed := func(epoch int64, experts ...int) placement.Map {
		pm := placement.Map{Epoch: epoch, Units: map[string][]string{}}
		for _, e := range experts {
			pm.Units[placement.UnitKey(model.Unit{Layer: 0, Expert: e})] = []string{"n1"}
		}
		return pm
	}
	forward := func() error { // routes to experts 3, 1 and 2
		_, err := client.Forward(t.Context(), validRequest(n))
		return err
	}
	n.sync(placed(1, 0, 1, 2, 3))
	n.sync(placed(2, 0, 3)) // 0/1 and 0/2 move away
	if got := n.status().Ready; !slices.Equal(got, []string{"0/0", "0/3"}) {
		t.Errorf("ready %v after 0/1 and 0/2 were taken away, want [0/0 0/3]", got)
	}
	if err := forward(); err != nil {
		t.Fatalf("a call to units just taken away: %v", err)
	}
	n.sync(placed(3, 0, 2, 3))                   // 0/2 comes back before it is unloaded
	n.unload(model.Unit{Layer: 0, Expert: 1}, 2) // the timers of epoch 2's drops
	n.unload(model.Unit{Layer: 0, Expert: 2}, 2)
	if got := n.status().Ready; !slices.Equal(got, []string{"0/0", "0/2", "0/3"}) {
		t.Errorf("ready %v, want [0/0 0/2 0/3]", got)
	}
	if err := forward(); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "L0/E1") {
		t.Errorf("a call to unloaded unit 0/1: %v, want NotFound naming L0/E1", err)
	}
	// Dropped again: the first drop's timer must not cut the new grace short.
	u := model.Unit{Layer: 0, Expert: 2}
	n.sync(placed(4, 0, 3))
	n.unload(u, 2)
	if !slices.Contains(n.local.Units(), u) {
		t.Errorf("0/2 unloaded by the timer of an earlier drop")
	}
	n.unload(u, 4)
	if slices.Contains(n.local.Units(), u) {
		t.Errorf("0/2 still loaded after its drop's grace")
	}
}
