package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"time"

	"github.com/switchyard-llm/switchyard/internal/bench"
	"github.com/switchyard-llm/switchyard/internal/netbench"
	"github.com/switchyard-llm/switchyard/internal/up"
)

func runBench(ctx context.Context, args []string) error {
	fs := newFlags("bench")
	var c bench.Config
	fs.StringVar(&c.ModelPath, "model", "", "GGUF model (single mode; cluster mode starts `up` on it unless --url)")
	fs.StringVar(&c.URL, "url", "", "benchmark a running cluster's router instead (needs --model for the census)")
	modes := fs.String("mode", "cluster", "single (the one-process engine), cluster, or both (single,cluster), alternated round by round")
	fs.IntVar(&c.Rounds, "rounds", 1, "measure each mode and concurrency this many times (modes alternating) and report medians")
	nodes := fs.String("expert-nodes", "2", "expert nodes of the cluster started for cluster mode (with --netns, a list: 2,4)")
	netns := fs.Bool("netns", false, "cluster mode with the coordinator and each expert node a process in a network namespace of its own, a round trip (--rtt) added between them (needs root and iproute2)")
	rtts := fs.String("rtt", "0,0.2ms,1ms,5ms", "with --netns: round trips to add between the coordinator and the nodes, comma-separated")
	linkRate := fs.String("link-rate", "", "with --netns: each node's link rate, as tc writes it (10gbit); default none")
	microBatches := fs.Int("micro-batches", 0, "with --netns: the coordinator's --micro-batches")
	activations := fs.String("activations", "", "with --netns: the coordinator's --activations (f32, f16, bf16, fp8)")
	conc := fs.String("concurrency", "1,4,16", "concurrent streams, comma-separated")
	fs.IntVar(&c.PromptTokens, "prompt-tokens", 128, "prompt length")
	fs.IntVar(&c.GenTokens, "gen-tokens", 64, "tokens generated per stream")
	fs.StringVar(&c.Workload, "workload", "", "measure the prefix cache instead: multi-turn or shared-prefix (default: plain prefill and decode)")
	prefix := fs.String("prefix-cache", "on,off", "with --workload: prefix cache settings to compare, alternated")
	asJSON := fs.Bool("json", false, "print JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measurement to this file")
	traceFile := fs.String("trace", "", "write an execution trace of the measurement to this file (go tool trace)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if c.ModelPath == "" {
		return errors.New("bench: --model is required")
	}
	for _, s := range splitList(*conc) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("bench: --concurrency %q", s)
		}
		c.Concurrency = append(c.Concurrency, n)
	}
	if c.PromptTokens < 1 || c.GenTokens < 2 {
		return errors.New("bench: --prompt-tokens ≥ 1 and --gen-tokens ≥ 2")
	}
	c.PrefixCache = splitList(*prefix)
	for _, p := range c.PrefixCache {
		if p != "on" && p != "off" {
			return fmt.Errorf("bench: --prefix-cache %q: want on, off or on,off", *prefix)
		}
	}
	switch c.Workload {
	case "", bench.MultiTurn, bench.SharedPrefix:
	default:
		return fmt.Errorf("bench: --workload %q: want %s or %s", c.Workload, bench.MultiTurn, bench.SharedPrefix)
	}
	c.Modes = splitList(*modes)
	for _, m := range c.Modes {
		if m != "single" && m != "cluster" {
			return fmt.Errorf("bench: --mode %q: want single, cluster or single,cluster", *modes)
		}
	}
	if len(c.Modes) == 0 || c.Rounds < 1 {
		return errors.New("bench: --mode needs a mode, and --rounds ≥ 1")
	}
	var nodeCounts []int
	for _, s := range splitList(*nodes) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("bench: --expert-nodes %q", s)
		}
		nodeCounts = append(nodeCounts, n)
	}
	if len(nodeCounts) == 0 || (len(nodeCounts) > 1 && !*netns) {
		return errors.New("bench: --expert-nodes takes one count (a list with --netns)")
	}
	if *netns {
		return benchNetns(ctx, c, nodeCounts, *rtts, *linkRate, *microBatches, *activations, *asJSON)
	}
	if slices.Contains(c.Modes, "cluster") && c.URL == "" {
		cl, err := up.Start(ctx, up.Config{ModelPath: c.ModelPath, ExpertNodes: nodeCounts[0], Listen: "127.0.0.1:0"})
		if err != nil {
			return err
		}
		defer cl.Close()
		c.URL = cl.URL
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	rep, err := bench.Measure(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	bench.Print(os.Stdout, rep)
	return nil
}

// benchNetns runs cluster mode over network namespaces (internal/netbench).
func benchNetns(ctx context.Context, c bench.Config, nodes []int, rtts, linkRate string, microBatches int, activations string, asJSON bool) error {
	if c.URL != "" || c.Workload != "" || len(c.Modes) != 1 || c.Modes[0] != "cluster" {
		return errors.New("bench: --netns measures cluster mode only, of a cluster it starts (no --url, --workload or single mode)")
	}
	if err := netbench.Check(); err != nil {
		return fmt.Errorf("bench --netns: %w", err)
	}
	mc := netbench.MeasureConfig{Nodes: nodes, Concurrency: c.Concurrency, PromptTokens: c.PromptTokens, GenTokens: c.GenTokens, Rounds: c.Rounds,
		Cluster: netbench.Config{ModelPath: c.ModelPath, LinkRate: linkRate, MicroBatches: microBatches, Activations: activations, Logger: logger()}}
	for _, s := range splitList(rtts) {
		if s == "0" {
			mc.RTTs = append(mc.RTTs, 0)
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("bench: --rtt %q: want durations such as 0,0.2ms,1ms", s)
		}
		mc.RTTs = append(mc.RTTs, d)
	}
	rep, err := netbench.Measure(ctx, mc)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	netbench.Print(os.Stdout, rep)
	return nil
}
