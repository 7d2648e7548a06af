// Package sim is `switchyard sim`: the placement controller and the
// coordinator's dispatch rule at a scale one machine cannot serve —
// DeepSeek-V3's 58 MoE layers × 256 experts over 8 to 256 expert nodes —
// with simulated nodes (they load what they are given at once) and a
// simulated clock (a controller round per step of it). It reports the time
// the real placement.Plan takes per epoch, the size of what the real store
// would write to etcd (and, with Etcd, writes it to a real embedded etcd),
// the units moved, the node-load imbalance before and after hot
// replication, and decode throughput predicted by routing sampled tokens
// through the placement, against the closed-form model of
// docs/performance.md. It is not a network or kernel simulator: an expert
// node's time is bytes over bandwidth.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/switchyard-llm/switchyard/internal/embedetcd"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// Config of a simulation. DefaultConfig is DeepSeek-V3 on 256 nodes.
type Config struct {
	// The model's shape. Layers counts MoE layers; DenseLayers the leading
	// dense ones (numbered first, as in the model: units of the first MoE
	// layer are DenseLayers/0…). Groups and GroupsUsed are the gate's
	// group-limited routing (GroupsUsed = Groups: none).
	Layers, DenseLayers, Experts, TopK, Groups, GroupsUsed int
	// Embd is the hidden size; ExpertFF an expert's feed-forward size; an
	// expert holds 3 × Embd × ExpertFF weights of BitsPerWeight bits.
	Embd, ExpertFF int
	BitsPerWeight  float64
	// SharedBytes is what the coordinator reads per pass over the model
	// (attention, dense and shared experts, norms, head).
	SharedBytes int64

	Nodes     int
	Replicas  int // base replicas of every unit; 0 means 1
	Redundant int // extra replica slots per layer for hot units (DeepSeek's EPLB uses 32)

	// Routing load: a Zipf law of exponent Zipf over each layer's experts
	// (a random permutation per layer), or, when StatsFile is set, the
	// shares of a recorded /v1/routing/stats report. LoadTokens tokens are
	// routed to make the load the controller sees.
	Zipf       float64
	StatsFile  string
	LoadTokens int
	Seed       uint64

	// The controller: moves per epoch, hot-replication thresholds, and a
	// bound on the epochs run to reach a steady state.
	MaxMoves            int
	HotAbove, CoolBelow float64
	MaxEpochs           int

	// Decode: tokens per step, micro-batches in flight, and the machine.
	Batch, MicroBatches int
	NodeBandwidth       float64       // bytes/s an expert node reads weights at
	CoordBandwidth      float64       // bytes/s the coordinator reads shared weights at
	LinkRate            float64       // bits/s of each node's link
	RTT                 time.Duration // coordinator ↔ node round trip
	WireBytes           int           // bytes per activation value on the wire (4 f32, 2 bf16/f16, 1 fp8)
	Steps               int           // decode steps sampled for the prediction

	// Etcd publishes the initial and the final placement through
	// placement.Store to an embedded etcd with its default request limit.
	Etcd bool
	Log  *slog.Logger // nil: discard
}

// DefaultConfig is DeepSeek-V3 (Q4_K_M) on 256 nodes of a 100 Gbit/s
// network, 200 µs apart.
func DefaultConfig() Config {
	return Config{
		Layers: 58, DenseLayers: 3, Experts: 256, TopK: 8, Groups: 8, GroupsUsed: 4,
		Embd: 7168, ExpertFF: 2048, BitsPerWeight: 4.85, SharedBytes: 17_000_000_000 * 485 / 800,
		Nodes: 256, Replicas: 1, Redundant: 32,
		Zipf: 1.0, LoadTokens: 2048, Seed: 1,
		MaxMoves: 64, HotAbove: placement.DefaultHotAbove, CoolBelow: placement.DefaultCoolBelow, MaxEpochs: 400,
		Batch: 256, MicroBatches: 1, NodeBandwidth: 200e9, CoordBandwidth: 400e9, LinkRate: 100e9,
		RTT: 200 * time.Microsecond, WireBytes: 2, Steps: 4,
	}
}

// Validate reports a configuration that cannot be simulated.
func (c Config) Validate() error {
	switch {
	case c.Layers < 1 || c.Experts < 2 || c.TopK < 1 || c.TopK > c.Experts:
		return fmt.Errorf("sim: shape %d layers × %d experts, top-%d", c.Layers, c.Experts, c.TopK)
	case c.Nodes < 1:
		return errors.New("sim: --nodes must be at least 1")
	case c.Batch < 1 || c.MicroBatches < 1 || c.MicroBatches > c.Batch || c.Steps < 1:
		return fmt.Errorf("sim: batch %d in %d micro-batches over %d steps", c.Batch, c.MicroBatches, c.Steps)
	case c.NodeBandwidth <= 0 || c.CoordBandwidth <= 0 || c.LinkRate <= 0 || c.WireBytes < 1:
		return errors.New("sim: bandwidths, link rate and wire bytes must be positive")
	case c.MaxEpochs < 1 || c.LoadTokens < 1 || c.Embd < 1 || c.ExpertFF < 1 || c.BitsPerWeight <= 0:
		return errors.New("sim: epochs, load tokens and expert sizes must be positive")
	}
	return nil
}

// Report is what a simulation found. Times in milliseconds.
type Report struct {
	Layers    int `json:"layers"`
	Experts   int `json:"experts"`
	TopK      int `json:"top_k"`
	Nodes     int `json:"nodes"`
	Units     int `json:"units"`
	Replicas  int `json:"replicas"`
	Redundant int `json:"redundant"`

	// EpochMS is the longest epoch: placement.Plan plus encoding what
	// Publish writes, the initial placement included (InitialMS); each the
	// least of three runs of the same round.
	EpochMS   float64 `json:"epoch_ms"`
	InitialMS float64 `json:"initial_ms"`
	Epochs    int     `json:"epochs"` // epochs written until nothing changed
	Settled   bool    `json:"settled"`

	// PlacementBytes is the steady-state placement as written (manifest
	// and shards); MaxRequestBytes the largest single write of it, against
	// etcd's default limit (EtcdLimitBytes).
	PlacementBytes  int  `json:"placement_bytes"`
	PlacementShards int  `json:"placement_shards"`
	MaxRequestBytes int  `json:"max_request_bytes"`
	EtcdLimitBytes  int  `json:"etcd_limit_bytes"`
	EtcdPublished   bool `json:"etcd_published"` // written to a real etcd (Config.Etcd)

	// Node-load imbalance (max over mean of expected loads) after the
	// initial placement and at steady state; Layer* are the mean over
	// layers of each layer's max over mean (what a decode step waits on).
	ImbalanceBefore      float64 `json:"imbalance_before"`
	ImbalanceAfter       float64 `json:"imbalance_after"`
	LayerImbalanceBefore float64 `json:"layer_imbalance_before"`
	LayerImbalanceAfter  float64 `json:"layer_imbalance_after"`
	// Moves counts units added or moved after the initial placement
	// (hot replicas, rebalancing); Dropped the surplus replicas dropped.
	Moves         int     `json:"moves"`
	MaxEpochMoves int     `json:"max_epoch_moves"`
	Dropped       int     `json:"dropped"`
	ExtraReplicas int     `json:"extra_replicas"`
	HotAbove      float64 `json:"hot_above"`
	CoolBelow     float64 `json:"cool_below"`

	Batch        int     `json:"batch"`
	MicroBatches int     `json:"micro_batches"`
	RTTms        float64 `json:"rtt_ms"`
	// PredictedTokS routes Steps sampled batches through the steady-state
	// placement with the dispatcher's rule; ModelTokS is the closed form;
	// ModelError is their relative difference. FloorTokS is a single
	// stream's bound from round trips alone, 1 / (layers × RTT).
	PredictedTokS float64 `json:"predicted_tok_s"`
	ModelTokS     float64 `json:"model_tok_s"`
	ModelError    float64 `json:"model_error"`
	FloorTokS     float64 `json:"single_stream_floor_tok_s"`
	// Step time parts of the prediction, per step.
	SharedMS float64 `json:"shared_ms"`
	ExpertMS float64 `json:"expert_ms"` // Σ over layers of the slowest node
	NetMS    float64 `json:"rtt_total_ms"`
}

// etcdDefaultLimit is etcd's default --max-request-bytes.
const etcdDefaultLimit = 1536 << 10

// Run simulates cfg.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5717))
	var weights [][]float64
	if cfg.StatsFile != "" {
		f, err := os.Open(cfg.StatsFile)
		if err != nil {
			return Report{}, fmt.Errorf("sim: %w", err)
		}
		weights, err = replayWeights(f, cfg.Layers, cfg.Experts)
		f.Close()
		if err != nil {
			return Report{}, err
		}
	} else {
		weights = zipfWeights(r, cfg.Layers, cfg.Experts, cfg.Zipf)
	}
	groups, used := max(1, cfg.Groups), max(1, cfg.GroupsUsed)
	rt, err := newRouter(r, weights, cfg.TopK, groups, used)
	if err != nil {
		return Report{}, err
	}
	info := placement.ModelInfo{Layers: cfg.DenseLayers + cfg.Layers, Experts: cfg.Experts}
	for l := range cfg.Layers {
		info.MoELayers = append(info.MoELayers, cfg.DenseLayers+l)
	}
	units := info.Units()
	rep := Report{Layers: cfg.Layers, Experts: cfg.Experts, TopK: cfg.TopK, Nodes: cfg.Nodes, Units: len(units),
		Replicas: max(1, cfg.Replicas), Redundant: cfg.Redundant, HotAbove: cfg.HotAbove, CoolBelow: cfg.CoolBelow,
		Batch: cfg.Batch, MicroBatches: cfg.MicroBatches, RTTms: ms(cfg.RTT), EtcdLimitBytes: etcdDefaultLimit}

	// The load the controller sees: LoadTokens tokens' routing.
	counts := rt.counts(cfg.LoadTokens)
	load := map[string]float64{}
	for l := range cfg.Layers {
		for e := range cfg.Experts {
			load[placement.UnitKey(unitOf(cfg, l, e))] = counts[l][e]
		}
	}
	in := placement.Input{Units: units, Replicas: cfg.Replicas, MaxMoves: cfg.MaxMoves,
		ExtraReplicas: cfg.Redundant * cfg.Layers, HotAbove: cfg.HotAbove, CoolBelow: cfg.CoolBelow}
	for i := range cfg.Nodes {
		in.Nodes = append(in.Nodes, placement.NodeState{ID: fmt.Sprintf("expert-node-%03d", i), Ready: map[string]bool{}})
	}
	store := placement.NewStore(nil, "sim")

	// The controller's epochs, on a simulated clock: the initial placement
	// (made before any load is known, as a fresh cluster's is), then
	// rounds with the load, each node loading what it was given before the
	// next, until a round changes nothing.
	var initial placement.Map
	for epoch := 0; epoch < cfg.MaxEpochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if epoch == 1 {
			in.Load = load
			rep.ImbalanceBefore, rep.LayerImbalanceBefore = imbalance(cfg, in.Current, load)
		}
		// An epoch's time is the least of three runs of the same round
		// (Plan is a function of its input): the machine may be shared.
		var next placement.Map
		var reasons []string
		var manifest []byte
		var shards [][]byte
		took := time.Duration(math.MaxInt64)
		for range 3 {
			start := time.Now()
			next, reasons = placement.Plan(in)
			if len(reasons) == 0 {
				break
			}
			manifest, shards, err = store.EncodePlacement(next)
			took = min(took, time.Since(start))
			if err != nil {
				return rep, fmt.Errorf("sim: epoch %d: %w", next.Epoch, err)
			}
		}
		if len(reasons) == 0 {
			rep.Settled = true
			break
		}
		rep.EpochMS = max(rep.EpochMS, ms(took))
		if epoch == 0 {
			rep.InitialMS, initial = ms(took), next
		} else {
			moved, dropped := classify(reasons)
			rep.Moves += moved
			rep.Dropped += dropped
			rep.MaxEpochMoves = max(rep.MaxEpochMoves, moved)
		}
		rep.Epochs++
		rep.PlacementBytes, rep.PlacementShards, rep.MaxRequestBytes = len(manifest), len(shards), len(manifest)
		for _, b := range shards {
			rep.PlacementBytes += len(b)
			rep.MaxRequestBytes = max(rep.MaxRequestBytes, len(b))
		}
		in.Current = next
		loadAll(&in)
		log.Debug("epoch", "epoch", next.Epoch, "changes", len(reasons), "took", took)
	}
	rep.ImbalanceAfter, rep.LayerImbalanceAfter = imbalance(cfg, in.Current, load)
	for _, w := range in.Current.Want {
		rep.ExtraReplicas += w - max(1, cfg.Replicas)
	}
	if cfg.Etcd {
		if err := publish(ctx, initial, in.Current); err != nil {
			return rep, err
		}
		rep.EtcdPublished = true
	}
	predict(cfg, rt, in.Current, counts, &rep)
	return rep, nil
}

// unitOf is MoE layer l's expert e as a unit of the model.
func unitOf(cfg Config, l, e int) model.Unit {
	return model.Unit{Layer: cfg.DenseLayers + l, Expert: e}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loadAll makes every node ready for what in.Current places on it.
func loadAll(in *placement.Input) {
	for i := range in.Nodes {
		clear(in.Nodes[i].Ready)
	}
	idx := map[string]int{}
	for i, n := range in.Nodes {
		idx[n.ID] = i
	}
	for key, on := range in.Current.Units {
		for _, id := range on {
			in.Nodes[idx[id]].Ready[key] = true
		}
	}
}

// classify counts the changes of an epoch's reasons: replicas added (hot
// or moves) and replicas dropped.
func classify(reasons []string) (added, dropped int) {
	for _, r := range reasons {
		switch {
		case strings.Contains(r, "replica added"), strings.Contains(r, "(rebalance)"):
			added++
		case strings.Contains(r, "dropped"):
			dropped++
		}
	}
	return added, dropped
}

// imbalance is the node-load imbalance of m under load — over the whole
// model, and the mean over MoE layers of each layer's — with each unit's
// load split evenly over its replicas.
func imbalance(cfg Config, m placement.Map, load map[string]float64) (total, perLayer float64) {
	nodes := map[string]int{}
	for _, on := range m.Units {
		for _, id := range on {
			if _, ok := nodes[id]; !ok {
				nodes[id] = len(nodes)
			}
		}
	}
	n := max(cfg.Nodes, len(nodes))
	all := make([]float64, n)
	layer := make([]float64, n)
	for l := range cfg.Layers {
		clear(layer)
		for e := range cfg.Experts {
			key := placement.UnitKey(unitOf(cfg, l, e))
			on := m.Units[key]
			for _, id := range on {
				share := load[key] / float64(len(on))
				layer[nodes[id]] += share
				all[nodes[id]] += share
			}
		}
		perLayer += maxOverMean(layer)
	}
	return maxOverMean(all), perLayer / float64(cfg.Layers)
}

func maxOverMean(x []float64) float64 {
	var sum, mx float64
	for _, v := range x {
		sum += v
		mx = max(mx, v)
	}
	if sum == 0 {
		return 0
	}
	return mx / (sum / float64(len(x)))
}

// publish writes the initial and the final placement to a real embedded
// etcd (default limits) as the elected controller would: fenced on an
// election key, sharded past the request limit.
func publish(ctx context.Context, maps ...placement.Map) error {
	dir, err := os.MkdirTemp("", "switchyard-sim-etcd-")
	if err != nil {
		return fmt.Errorf("sim: etcd: %w", err)
	}
	defer os.RemoveAll(dir)
	srv, err := embedetcd.Start(ctx, dir, "", 0, nil)
	if err != nil {
		return fmt.Errorf("sim: etcd: %w", err)
	}
	defer srv.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		return fmt.Errorf("sim: etcd client: %w", err)
	}
	defer cli.Close()
	sess, err := concurrency.NewSession(cli, concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("sim: etcd session: %w", err)
	}
	defer sess.Close()
	s := placement.NewStore(cli, "sim")
	el := concurrency.NewElection(sess, s.Election())
	if err := el.Campaign(ctx, "sim"); err != nil {
		return fmt.Errorf("sim: campaign: %w", err)
	}
	fence := placement.Fence{Key: el.Key(), Rev: el.Rev()}
	for _, m := range maps {
		why := placement.Change{Epoch: m.Epoch, Time: time.Now().UTC(), By: "sim", Reasons: []string{"simulated"}}
		if err := s.Publish(ctx, fence, m, why, 100); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		got, err := s.GetPlacement(ctx)
		if err != nil {
			return fmt.Errorf("sim: read back epoch %d: %w", m.Epoch, err)
		}
		if len(got.Units) != len(m.Units) || got.Epoch != m.Epoch {
			return fmt.Errorf("sim: etcd gave back epoch %d with %d units, wrote epoch %d with %d", got.Epoch, len(got.Units), m.Epoch, len(m.Units))
		}
	}
	return nil
}
