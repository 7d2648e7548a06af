package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/internal/placementtool"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

func placementCommands() []command {
	return []command{
		{"show", "[--etcd URLS]", "the current epoch: unit → nodes, ready or loading", placementShow, nil},
		{"drain", "NODE [--etcd URLS]", "move a node's units away, then let it exit", placementDrain, nil},
		{"history", "[-n N] [--etcd URLS]", "recent placement epochs with the reason for each change", placementHistory, nil},
		{"plan", "--model FILE|URL --nodes N --node-memory SIZE [flags]", "will a model fit: its shared part, each node's units and bytes, KV-cache room, and what would fit if not (reads the header only)", placementPlan, nil},
	}
}

func placementPlan(ctx context.Context, args []string) error {
	fs := newFlags("placement plan")
	var c placementtool.PlanConfig
	fs.StringVar(&c.Model, "model", "", "GGUF file, first part of a split one, or an http(s) URL; only the header is read")
	fs.IntVar(&c.Nodes, "nodes", 0, "expert nodes")
	nodeMem := fs.String("node-memory", "", "memory of each expert node, with a KiB, MiB, GiB or TiB suffix")
	fs.IntVar(&c.Replicas, "replicas", 1, "copies of every expert unit")
	coordMem := fs.String("coordinator-memory", "256GiB", "memory of the coordinator: the shared part and the KV cache")
	fs.Float64Var(&c.Headroom, "headroom", 0.05, "fraction of each machine's memory kept free for the runtime and the OS")
	fs.IntVar(&c.Context, "context", 0, "sequence length the KV-cache room is counted in (0: the model's, at most 8192)")
	fs.StringVar(&c.KVType, "kv-cache-type", "f32", "what the KV cache stores: f32, f16 or q8_0 (as the coordinator's --kv-cache-type)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if c.Model == "" || c.Nodes == 0 || *nodeMem == "" {
		return errors.New("placement plan: --model, --nodes and --node-memory are required")
	}
	var err error
	if c.NodeMemory, err = parseBytes(*nodeMem); err != nil {
		return fmt.Errorf("placement plan: --node-memory: %w", err)
	}
	if c.CoordinatorMemory, err = parseBytes(*coordMem); err != nil {
		return fmt.Errorf("placement plan: --coordinator-memory: %w", err)
	}
	p, err := placementtool.MakePlan(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	placementtool.PrintPlan(os.Stdout, p)
	return nil
}

// placementStore adds the etcd flags to fs, parses args and connects;
// done closes the connection.
func placementStore(fs *flag.FlagSet, args []string) (s *placement.Store, pos []string, done func(), err error) {
	etcd := fs.String("etcd", "http://127.0.0.1:2379", "etcd endpoints, comma-separated")
	cluster := fs.String("cluster", "default", "cluster name")
	loadTLS := tlsFlags(fs, false)
	if pos, err = parse(fs, args); err != nil {
		return nil, nil, nil, err
	}
	pair, _, err := loadTLS()
	if err != nil {
		return nil, nil, nil, err
	}
	cli, err := etcdclient.New(splitList(*etcd), pair.ClientConfig())
	if err != nil {
		return nil, nil, nil, err
	}
	return placement.NewStore(cli, *cluster), pos, func() { cli.Close() }, nil
}

func placementShow(ctx context.Context, args []string) error {
	s, _, done, err := placementStore(newFlags("placement show"), args)
	if err != nil {
		return err
	}
	defer done()
	return placementtool.Show(ctx, s, os.Stdout)
}

func placementDrain(ctx context.Context, args []string) error {
	s, pos, done, err := placementStore(newFlags("placement drain"), args)
	if err != nil {
		return err
	}
	defer done()
	if len(pos) != 1 {
		return errors.New("usage: switchyard placement drain NODE [--etcd ...]")
	}
	return placementtool.Drain(ctx, s, pos[0])
}

func placementHistory(ctx context.Context, args []string) error {
	fs := newFlags("placement history")
	n := fs.Int("n", 20, "epochs to show")
	s, _, done, err := placementStore(fs, args)
	if err != nil {
		return err
	}
	defer done()
	return placementtool.History(ctx, s, os.Stdout, *n)
}
