// Command switchyard serves Mixture-of-Experts language models across
// machines. Each subcommand is one role or tool; this file only parses
// flags, handles signals and turns errors into exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

type command struct {
	name, usage string
	run         func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"up", "a whole cluster in one process on loopback (the quickest start)", runUp},
		{"router", "the HTTP front door: OpenAI-compatible API", runRouter},
		{"coordinator", "shared layers, batching, sampling; dispatches experts", runCoordinator},
		{"expert-node", "serves the expert units placed on it", runExpertNode},
		{"bench", "measure prefill, decode, TTFT and inter-token latency (single process or cluster)", runBench},
		{"certs", "write a development CA and per-role certificates for mutual TLS", runCerts},
		{"placement", "show, drain or list the history of expert placement", runPlacement},
		{"stats", "routing statistics of a running cluster: heatmap, nodes, --compare two prompts", runStats},
		{"model", "single-process tools over a GGUF file: synth, inspect, tokenize, logits, run", runModel},
	}
}

// drain delivers SIGTERM to an expert node, which drains on it instead of
// stopping (main wires it only for the expert-node command).
var drain chan struct{}

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if len(os.Args) > 1 && os.Args[1] == "expert-node" {
		sigs = sigs[:1]
		drain = make(chan struct{})
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			close(drain)
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	if err := dispatch(ctx, commands(), os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "switchyard:", err)
		}
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, cmds []command, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, "usage: switchyard <command> [flags]\n\ncommands:")
		for _, c := range cmds {
			fmt.Fprintf(os.Stderr, "  %-12s %s\n", c.name, c.usage)
		}
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, args[1:])
		}
	}
	return fmt.Errorf("unknown command %q (run 'switchyard help')", args[0])
}

// parse parses flags that may come before or after positional arguments
// and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseTokens parses "1,2,3" into token IDs.
func parseTokens(s string) ([]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("--tokens is empty: give at least one token ID")
	}
	var out []int32
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--tokens: %q is not a token ID", f)
		}
		out = append(out, int32(n))
	}
	return out, nil
}
