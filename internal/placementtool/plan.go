package placementtool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/httpfile"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// PlanConfig is what `switchyard placement plan` is asked: will a model
// fit on these machines.
type PlanConfig struct {
	// Model is a GGUF file, the first part of a split one, or an http(s)
	// URL of either; only its header is read.
	Model string
	// CacheDir keeps what is fetched of a URL; "" means a temporary
	// directory removed afterwards.
	CacheDir string

	Nodes      int   // expert nodes
	NodeMemory int64 // bytes of memory of each
	Replicas   int   // copies of every unit; 0 means 1
	// CoordinatorMemory is the coordinator's memory: shared weights plus KV
	// cache; 0 means 256 GiB.
	CoordinatorMemory int64
	// Headroom is the fraction of each machine's memory kept free for the
	// runtime, buffers and the OS.
	Headroom float64
	// Context is the sequence length the KV-cache room is counted in; 0
	// means the model's own context or 8192, whichever is smaller.
	Context int
	// KVType is what the KV cache stores: "f32" (the zero value), "f16" or
	// "q8_0", as the coordinator's --kv-cache-type.
	KVType string
}

// PlanNode is one expert node of the plan.
type PlanNode struct {
	ID    string `json:"id"`
	Units int    `json:"units"`
	Bytes int64  `json:"bytes"`
	Free  int64  `json:"free_bytes"` // of its usable memory
}

// Plan is the answer: where everything goes and whether it fits.
type Plan struct {
	Model       string `json:"model"`
	Arch        string `json:"arch"`
	Params      int64  `json:"params"`
	TensorBytes int64  `json:"tensor_bytes"` // all tensor data, as declared
	HeaderOnly  bool   `json:"header_only"`  // the file holds no tensor data

	Fits           bool  `json:"fits"`
	ShortfallBytes int64 `json:"shortfall_bytes"` // memory missing, expert nodes and coordinator together

	SharedBytes   int64 `json:"shared_bytes"` // the coordinator's weights
	Units         int   `json:"units"`
	UnitBytesMin  int64 `json:"unit_bytes_min"`
	UnitBytesMax  int64 `json:"unit_bytes_max"`
	ExpertBytes   int64 `json:"expert_bytes"` // every unit once
	Replicas      int   `json:"replicas"`
	NodeMemory    int64 `json:"node_memory"`
	NodeUsable    int64 `json:"node_usable"` // after headroom
	NodeCapacity  int   `json:"node_capacity_units"`
	UnplacedUnits int   `json:"unplaced_replicas"`

	Nodes []PlanNode `json:"nodes"`

	CoordinatorMemory int64  `json:"coordinator_memory"`
	CoordinatorUsable int64  `json:"coordinator_usable"`
	Context           int    `json:"context"`
	KVType            string `json:"kv_cache_type"`
	KVBytesPerSeq     int64  `json:"kv_bytes_per_sequence"` // at Context
	KVRoomBytes       int64  `json:"kv_room_bytes"`         // coordinator memory left for the KV cache
	Sequences         int64  `json:"sequences"`             // of Context tokens that fit in the room

	// What would fit, when it does not: the fewest nodes of this size, the
	// most replicas on these nodes, the largest expert quantisation that
	// fits these nodes (its name, "" if none would).
	MinNodes    int      `json:"min_nodes,omitempty"`
	MaxReplicas int      `json:"max_replicas,omitempty"`
	Quant       string   `json:"quant,omitempty"`
	Advice      []string `json:"advice,omitempty"`
}

// kvFactor is the KV cache's bytes per f32 value, by --kv-cache-type.
var kvFactor = map[string]float64{"": 1, "f32": 1, "f16": 0.5, "q8_0": float64(tensor.Q8_0.BlockBytes()) / float64(tensor.Q8_0.BlockSize()) / 4}

// MakePlan reads the model's header and plans its placement: the
// coordinator's shared part, the units on nodes as the controller
// (placement.Plan) would place them, the KV-cache room left, and whether
// it all fits. A node's capacity is counted in units of the largest unit,
// so the plan never overfills a node however the quantisation mix varies
// between layers.
func MakePlan(ctx context.Context, c PlanConfig) (Plan, error) {
	switch {
	case c.Nodes < 1:
		return Plan{}, errors.New("placement plan: --nodes must be at least 1")
	case c.NodeMemory <= 0:
		return Plan{}, errors.New("placement plan: --node-memory must be positive")
	case c.Headroom < 0 || c.Headroom >= 1:
		return Plan{}, fmt.Errorf("placement plan: --headroom %v: want a fraction in [0, 1)", c.Headroom)
	case c.Replicas < 0 || c.CoordinatorMemory < 0 || c.Context < 0:
		return Plan{}, errors.New("placement plan: negative --replicas, --coordinator-memory or --context")
	}
	factor, ok := kvFactor[c.KVType]
	if !ok {
		return Plan{}, fmt.Errorf("placement plan: --kv-cache-type %q: want f32, f16 or q8_0", c.KVType)
	}
	f, err := openHeader(ctx, c)
	if err != nil {
		return Plan{}, err
	}
	defer f.Close()
	if !f.MoE() {
		return Plan{}, fmt.Errorf("placement plan: %s has no routed experts: it runs on the coordinator alone", c.Model)
	}
	p := Plan{Model: c.Model, Arch: f.Arch.Name, Params: f.Census().Total, Replicas: max(1, c.Replicas),
		NodeMemory: c.NodeMemory, CoordinatorMemory: c.CoordinatorMemory, KVType: c.KVType}
	if p.CoordinatorMemory == 0 {
		p.CoordinatorMemory = 256 << 30
	}
	if p.KVType == "" {
		p.KVType = "f32"
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		part := f.Parts[t.Part]
		p.TensorBytes += int64(t.Size)
		p.HeaderOnly = p.HeaderOnly || part.DataOffset+int64(t.Offset+t.Size) > part.Size
		if !model.IsRoutedExpert(t.Name) {
			p.SharedBytes += int64(t.Size)
		}
	}
	var info placement.ModelInfo
	info.Layers, info.Experts = f.Layers, f.Experts
	for l := range f.Layers {
		if f.MoELayer(l) {
			info.MoELayers = append(info.MoELayers, l)
		}
	}
	units := info.Units()
	unitBytes := make(map[string]int64, len(units))
	for _, u := range units {
		b, err := f.UnitBytes(u)
		if err != nil {
			return Plan{}, fmt.Errorf("placement plan: %w", err)
		}
		unitBytes[placement.UnitKey(u)] = b
		p.ExpertBytes += b
		if p.UnitBytesMin == 0 || b < p.UnitBytesMin {
			p.UnitBytesMin = b
		}
		p.UnitBytesMax = max(p.UnitBytesMax, b)
	}
	p.Units = len(units)
	p.NodeUsable = int64(float64(c.NodeMemory) * (1 - c.Headroom))
	p.NodeCapacity = int(p.NodeUsable / p.UnitBytesMax)

	// The controller's initial placement, on nodes of that capacity.
	in := placement.Input{Units: units, Replicas: p.Replicas}
	ids := make([]string, c.Nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", i+1)
		// A node with room for no unit takes none (capacity 0 would mean
		// no limit): the controller gives a draining node nothing.
		in.Nodes = append(in.Nodes, placement.NodeState{ID: ids[i], Units: p.NodeCapacity, Draining: p.NodeCapacity == 0})
	}
	m, _ := placement.Plan(in)
	byNode := map[string]*PlanNode{}
	for _, id := range ids {
		p.Nodes = append(p.Nodes, PlanNode{ID: id})
	}
	for i := range p.Nodes {
		byNode[p.Nodes[i].ID] = &p.Nodes[i]
	}
	var placedBytes int64
	placed := 0
	for key, on := range m.Units {
		for _, id := range on {
			n := byNode[id]
			n.Units++
			n.Bytes += unitBytes[key]
			placedBytes += unitBytes[key]
			placed++
		}
	}
	for i := range p.Nodes {
		p.Nodes[i].Free = p.NodeUsable - p.Nodes[i].Bytes
	}
	p.UnplacedUnits = p.Units*p.Replicas - placed
	nodeShort := int64(0)
	if p.UnplacedUnits > 0 {
		nodeShort = int64(p.Replicas)*p.ExpertBytes - placedBytes
	}

	// The coordinator: shared weights, then the KV cache.
	p.Context = c.Context
	if p.Context == 0 {
		p.Context = min(f.Context, 8192)
	}
	p.CoordinatorUsable = int64(float64(p.CoordinatorMemory) * (1 - c.Headroom))
	p.KVBytesPerSeq = int64(float64(f.KVBytes(p.Context)) * factor)
	p.KVRoomBytes = max(0, p.CoordinatorUsable-p.SharedBytes)
	if p.KVBytesPerSeq > 0 {
		p.Sequences = p.KVRoomBytes / p.KVBytesPerSeq
	}
	coordShort := max(0, p.SharedBytes+p.KVBytesPerSeq-p.CoordinatorUsable)

	p.ShortfallBytes = nodeShort + coordShort
	p.Fits = p.ShortfallBytes == 0
	if nodeShort > 0 {
		p.advise(f, units, c)
	}
	if coordShort > 0 {
		p.Advice = append(p.Advice, fmt.Sprintf("the coordinator needs %s more for the shared part and one sequence of %d tokens (or a shorter --context, or --kv-cache-type f16/q8_0)",
			gib(coordShort), p.Context))
	}
	return p, nil
}

// advise fills what would fit when the units do not: more nodes, fewer
// replicas, or experts in a smaller quantisation.
func (p *Plan) advise(f *model.File, units []model.Unit, c PlanConfig) {
	if p.NodeCapacity > 0 {
		p.MinNodes = max(p.Replicas, (p.Units*p.Replicas+p.NodeCapacity-1)/p.NodeCapacity)
		p.Advice = append(p.Advice, fmt.Sprintf("%d nodes of %s", p.MinNodes, gib(p.NodeMemory)))
		if r := min(c.Nodes, c.Nodes*p.NodeCapacity/p.Units); r >= 1 && r < p.Replicas {
			p.MaxReplicas = r
			p.Advice = append(p.Advice, fmt.Sprintf("%d replica(s) instead of %d", r, p.Replicas))
		}
	} else {
		p.Advice = append(p.Advice, fmt.Sprintf("nodes with more than %s usable: one unit takes %s", gib(p.NodeUsable), gib(p.UnitBytesMax)))
	}
	// Smaller quantisations of the experts: an expert's weights times the
	// type's bits per weight (K-quants as llama.cpp stores them; a row
	// length that does not fit the type's blocks rules it out).
	params, rows := unitParams(f, units[0])
	for _, t := range []tensor.DType{tensor.Q8_0, tensor.Q6_K, tensor.Q5_K, tensor.Q4_K, tensor.IQ4_XS, tensor.Q3_K, tensor.Q2_K} {
		per := int64(float64(params) * float64(t.BlockBytes()) / float64(t.BlockSize()))
		fit := true
		for _, r := range rows {
			fit = fit && r%uint64(t.BlockSize()) == 0
		}
		if per >= p.UnitBytesMin || !fit {
			continue // not smaller, or rows do not fit its blocks
		}
		if per > 0 && int64(c.Nodes)*(p.NodeUsable/per) >= int64(p.Units*p.Replicas) {
			p.Quant = strings.ToLower(t.String())
			p.Advice = append(p.Advice, fmt.Sprintf("experts in %s (%s a unit, %s in all)", t, gib(per), gib(per*int64(p.Units*p.Replicas))))
			return
		}
	}
}

// unitParams is the number of weights of one unit, and the row lengths of
// its matrices.
func unitParams(f *model.File, u model.Unit) (n int64, rows []uint64) {
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if !model.IsRoutedExpert(t.Name) || !strings.HasPrefix(t.Name, fmt.Sprintf("blk.%d.", u.Layer)) || strings.HasSuffix(t.Name, ".bias") {
			continue
		}
		if strings.Contains(t.Name, "_exps.") {
			n += int64(t.Elements()) / int64(t.Dims[len(t.Dims)-1])
			rows = append(rows, t.Dims[0])
		} else if strings.Contains(t.Name, fmt.Sprintf(".%d.", u.Expert)) {
			n += int64(t.Elements())
			rows = append(rows, t.Dims[0])
		}
	}
	return n, rows
}

// openHeader opens the model for its header only: a local file (or its
// parts), or a URL of which only the header's bytes are fetched.
func openHeader(ctx context.Context, c PlanConfig) (*model.File, error) {
	opts := gguf.Options{HeaderOnly: true}
	if httpfile.IsURL(c.Model) {
		dir := c.CacheDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "switchyard-plan-")
			if err != nil {
				return nil, fmt.Errorf("placement plan: %w", err)
			}
			defer os.RemoveAll(tmp) // the header is parsed before returning
			dir = tmp
		}
		opts.Source = httpfile.Opener(ctx, dir, nil)
	}
	f, err := model.Open(c.Model, opts)
	if err != nil {
		return nil, fmt.Errorf("placement plan: %w", err)
	}
	return f, nil
}

// PrintPlan writes p for a reader.
func PrintPlan(w io.Writer, p Plan) {
	data := ""
	if p.HeaderOnly {
		data = ", declared in a header-only file"
	}
	fmt.Fprintf(w, "model        %s: %s, %.1fB parameters, %s of tensors%s\n", p.Model, p.Arch, float64(p.Params)/1e9, gib(p.TensorBytes), data)
	fmt.Fprintf(w, "coordinator  %s (%s usable): shared part %s; KV-cache room %s = %d sequences of %d tokens (%s each, %s cache)\n",
		gib(p.CoordinatorMemory), gib(p.CoordinatorUsable), gib(p.SharedBytes), gib(p.KVRoomBytes), p.Sequences, p.Context, gib(p.KVBytesPerSeq), p.KVType)
	fmt.Fprintf(w, "experts      %d units of %s to %s, %s in all, %d replica(s) each: %s\n", p.Units, gib(p.UnitBytesMin), gib(p.UnitBytesMax), gib(p.ExpertBytes), p.Replicas, gib(int64(p.Replicas)*p.ExpertBytes))
	fmt.Fprintf(w, "nodes        %d × %s (%s usable, room for %d units)\n\n", len(p.Nodes), gib(p.NodeMemory), gib(p.NodeUsable), p.NodeCapacity)
	fmt.Fprintf(w, "  %-10s %7s %12s %12s\n", "node", "units", "bytes", "free")
	for _, n := range p.Nodes {
		fmt.Fprintf(w, "  %-10s %7d %12s %12s\n", n.ID, n.Units, gib(n.Bytes), gib(n.Free))
	}
	fmt.Fprintln(w)
	if p.Fits {
		fmt.Fprintln(w, "fits         yes")
		return
	}
	fmt.Fprintf(w, "fits         no: short by %s", gib(p.ShortfallBytes))
	if p.UnplacedUnits > 0 {
		fmt.Fprintf(w, " (%d unit replicas have no room)", p.UnplacedUnits)
	}
	fmt.Fprintln(w)
	if len(p.Advice) > 0 {
		fmt.Fprintf(w, "would fit    %s\n", strings.Join(p.Advice, "; or "))
	}
}

// gib writes a byte count in binary units.
func gib(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
