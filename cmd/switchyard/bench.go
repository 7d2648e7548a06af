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

	"github.com/switchyard-llm/switchyard/internal/bench"
	"github.com/switchyard-llm/switchyard/internal/up"
)

func runBench(ctx context.Context, args []string) error {
	fs := newFlags("bench")
	var c bench.Config
	fs.StringVar(&c.ModelPath, "model", "", "GGUF model (single mode; cluster mode starts `up` on it unless --url)")
	fs.StringVar(&c.URL, "url", "", "benchmark a running cluster's router instead (needs --model for the census)")
	modes := fs.String("mode", "cluster", "single (the one-process engine), cluster, or both (single,cluster), alternated round by round")
	fs.IntVar(&c.Rounds, "rounds", 1, "measure each mode and concurrency this many times (modes alternating) and report medians")
	nodes := fs.Int("expert-nodes", 2, "expert nodes of the cluster started for cluster mode")
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
	if slices.Contains(c.Modes, "cluster") && c.URL == "" {
		cl, err := up.Start(ctx, up.Config{ModelPath: c.ModelPath, ExpertNodes: *nodes, Listen: "127.0.0.1:0"})
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
