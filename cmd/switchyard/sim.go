package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/switchyard-llm/switchyard/internal/sim"
)

func runSim(ctx context.Context, args []string) error {
	fs := newFlags("sim")
	c := sim.DefaultConfig()
	fs.IntVar(&c.Layers, "layers", c.Layers, "MoE layers")
	fs.IntVar(&c.DenseLayers, "dense-layers", c.DenseLayers, "leading dense layers (in the coordinator's shared part)")
	fs.IntVar(&c.Experts, "experts", c.Experts, "routed experts per layer")
	fs.IntVar(&c.TopK, "top-k", c.TopK, "experts per token")
	fs.IntVar(&c.Groups, "groups", c.Groups, "expert groups of the gate's group-limited routing")
	fs.IntVar(&c.GroupsUsed, "groups-used", c.GroupsUsed, "groups a token may pick experts from")
	fs.IntVar(&c.Embd, "embd", c.Embd, "hidden size")
	fs.IntVar(&c.ExpertFF, "expert-ff", c.ExpertFF, "an expert's feed-forward size")
	fs.Float64Var(&c.BitsPerWeight, "bits-per-weight", c.BitsPerWeight, "expert weights' bits per weight (Q4_K_M's experts: about 4.85)")
	shared := fs.String("shared-bytes", fmt.Sprint(c.SharedBytes), "bytes the coordinator reads per pass (attention, dense layers, shared experts, head); KiB, MiB, GiB suffixes")
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "expert nodes")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "base replicas of every unit")
	fs.IntVar(&c.Redundant, "redundant", c.Redundant, "extra replica slots per layer for hot experts (DeepSeek's EPLB: 32)")
	fs.Float64Var(&c.Zipf, "zipf", c.Zipf, "Zipf exponent of each layer's expert load (a random permutation per layer)")
	fs.StringVar(&c.StatsFile, "routing-stats", "", "replay the expert load of a recorded /v1/routing/stats JSON file instead of Zipf")
	fs.IntVar(&c.LoadTokens, "load-tokens", c.LoadTokens, "tokens routed to make the load the controller sees")
	seed := fs.Uint64("seed", c.Seed, "random seed")
	fs.IntVar(&c.MaxMoves, "max-moves", c.MaxMoves, "rebalancing changes per placement epoch")
	fs.Float64Var(&c.HotAbove, "hot-above", c.HotAbove, "add hot replicas while the busiest node is above this × the mean load")
	fs.Float64Var(&c.CoolBelow, "cool-below", c.CoolBelow, "drop them when the nodes would stay below this × the mean")
	fs.IntVar(&c.MaxEpochs, "max-epochs", c.MaxEpochs, "bound on the placement epochs run to reach a steady state")
	fs.IntVar(&c.Batch, "batch", c.Batch, "tokens per decode step (concurrent streams)")
	fs.IntVar(&c.MicroBatches, "micro-batches", c.MicroBatches, "micro-batches in flight")
	fs.IntVar(&c.Steps, "steps", c.Steps, "decode steps sampled for the prediction")
	nodeBW := fs.String("node-bandwidth", "200GB/s", "an expert node's weight read bandwidth")
	coordBW := fs.String("coordinator-bandwidth", "400GB/s", "the coordinator's weight read bandwidth")
	link := fs.String("link-rate", "100gbit", "each node's link rate")
	fs.DurationVar(&c.RTT, "rtt", c.RTT, "round trip between the coordinator and a node")
	wire := fs.String("wire", "bf16", "activation format on the wire: f32, bf16, f16 or fp8")
	fs.BoolVar(&c.Etcd, "etcd", true, "write the initial and final placement to an embedded etcd (default limits) through the real store")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c.Seed = *seed
	var err error
	if c.SharedBytes, err = parseBytes(*shared); err != nil {
		return fmt.Errorf("sim: --shared-bytes: %w", err)
	}
	if c.NodeBandwidth, err = parseRate(*nodeBW); err != nil {
		return fmt.Errorf("sim: --node-bandwidth: %w", err)
	}
	if c.CoordBandwidth, err = parseRate(*coordBW); err != nil {
		return fmt.Errorf("sim: --coordinator-bandwidth: %w", err)
	}
	bits, err := parseRate(*link)
	if err != nil {
		return fmt.Errorf("sim: --link-rate: %w", err)
	}
	c.LinkRate = bits * 8 // parseRate gives bytes/s
	switch *wire {
	case "f32":
		c.WireBytes = 4
	case "bf16", "f16":
		c.WireBytes = 2
	case "fp8":
		c.WireBytes = 1
	default:
		return fmt.Errorf("sim: --wire %q: want f32, bf16, f16 or fp8", *wire)
	}
	c.Log = logger()
	rep, err := sim.Run(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	sim.Print(os.Stdout, rep)
	return nil
}

// parseRate reads a rate in bytes per second: "200GB/s", "1.5GiB/s", or a
// bit rate as tc writes them ("10gbit", "100mbit", "1gbps"), or a plain
// number of bytes per second.
func parseRate(s string) (float64, error) {
	in := strings.TrimSpace(s)
	low := strings.ToLower(in)
	type unit struct {
		suffix string
		mult   float64
	}
	for _, u := range []unit{
		{"gib/s", 1 << 30}, {"mib/s", 1 << 20}, {"kib/s", 1 << 10},
		{"tb/s", 1e12}, {"gb/s", 1e9}, {"mb/s", 1e6}, {"kb/s", 1e3}, {"b/s", 1},
		{"tbit", 1e12 / 8}, {"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"bit", 1.0 / 8},
		{"gbps", 1e9 / 8}, {"mbps", 1e6 / 8}, {"kbps", 1e3 / 8}, {"bps", 1.0 / 8},
	} {
		if rest, ok := strings.CutSuffix(low, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil || f <= 0 {
				return 0, fmt.Errorf("%q is not a rate", in)
			}
			return f * u.mult, nil
		}
	}
	f, err := strconv.ParseFloat(low, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%q is not a rate (try 200GB/s or 10gbit)", in)
	}
	return f, nil
}
