package coordinator

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// A model whose first layer is dense (deepseek2's leading dense block) has
// no units there: the dispatcher does not count them as missing, so the
// coordinator is ready once the MoE layers' units are, and it serves them.
func TestDispatchDenseLayerHasNoUnits(t *testing.T) {
	const E, k = 4, 1
	h := model.Hyper{Embd: E, ExpertsUsed: k, Layers: 3, Experts: 2, DenseLeading: 1}
	stats := routingstats.New(h.Layers, h.Experts, k, h.MoELayers())
	d := newDispatcher(nil, nil, "sha256:x", h, pb.Encoding_ENCODING_F32, 10*time.Second, time.Second, nil, stats,
		newMetrics(prometheus.NewRegistry(), stats, false), slog.New(slog.DiscardHandler))
	moeUnits := []string{"1/0", "1/1", "2/0", "2/1"}
	if got := d.missing(); !slices.Equal(got, moeUnits) {
		t.Fatalf("missing with no nodes: %v, want %v", got, moeUnits)
	}
	_, _, s := serveEcho(t)
	addNode(t, d, "a", s, moeUnits...)
	d.pmap = placement.Map{Units: map[string][]string{}}
	for _, u := range moeUnits {
		d.pmap.Units[u] = []string{"a"}
	}
	if got := d.missing(); len(got) != 0 {
		t.Fatalf("missing with every MoE unit ready: %v, want none", got)
	}
	x := []float32{1, 2, 3, 4}
	out := make([]float32, E)
	if err := d.Forward(t.Context(), 1, x, 1, []int32{1}, out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out, x) {
		t.Errorf("layer 1 expert 1 (echo): %v, want %v", out, x)
	}
}

// Per-layer routing metrics leave a dense layer out: it routes nothing, so
// an imbalance or entropy of 0 would read as an idle MoE layer.
func TestMetricsSkipDenseLayers(t *testing.T) {
	h := model.Hyper{Layers: 3, Experts: 2, ExpertsUsed: 1, DenseLeading: 1}
	reg := prometheus.NewRegistry()
	newMetrics(reg, routingstats.New(h.Layers, h.Experts, h.ExpertsUsed, h.MoELayers()), false)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "layer" {
					got[mf.GetName()] = append(got[mf.GetName()], lp.GetValue())
				}
			}
		}
	}
	for _, name := range []string{"switchyard_coordinator_layer_imbalance", "switchyard_coordinator_layer_entropy_bits"} {
		if !slices.Equal(got[name], []string{"1", "2"}) {
			t.Errorf("%s for layers %v, want 1 and 2", name, got[name])
		}
	}
}
