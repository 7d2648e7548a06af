package main

import (
	"context"
	"errors"
	"flag"
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
	}
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
