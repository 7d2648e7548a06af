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

func runPlacement(ctx context.Context, args []string) error {
	store := func(fs *flag.FlagSet, args []string) (*placement.Store, []string, func(), error) {
		etcd := fs.String("etcd", "http://127.0.0.1:2379", "etcd endpoints, comma-separated")
		cluster := fs.String("cluster", "default", "cluster name")
		loadTLS := tlsFlags(fs, false)
		pos, err := parse(fs, args)
		if err != nil {
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
	return dispatch(ctx, []command{
		{"show", "the current epoch: unit → nodes, ready or loading", func(ctx context.Context, args []string) error {
			s, _, done, err := store(flag.NewFlagSet("placement show", flag.ContinueOnError), args)
			if err != nil {
				return err
			}
			defer done()
			return placementtool.Show(ctx, s, os.Stdout)
		}},
		{"drain", "move a node's units away, then let it exit: placement drain NODE", func(ctx context.Context, args []string) error {
			s, pos, done, err := store(flag.NewFlagSet("placement drain", flag.ContinueOnError), args)
			if err != nil {
				return err
			}
			defer done()
			if len(pos) != 1 {
				return errors.New("usage: switchyard placement drain NODE [--etcd ...]")
			}
			return placementtool.Drain(ctx, s, pos[0])
		}},
		{"history", "recent placement epochs with the reason for each change", func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("placement history", flag.ContinueOnError)
			n := fs.Int("n", 20, "epochs to show")
			s, _, done, err := store(fs, args)
			if err != nil {
				return err
			}
			defer done()
			return placementtool.History(ctx, s, os.Stdout, *n)
		}},
	}, args)
}
