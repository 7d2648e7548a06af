// Command switchyard serves Mixture-of-Experts language models across
// machines. Each subcommand is one role or tool; this file only parses
// flags, handles signals and turns errors into exit codes.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// command is a subcommand: a role or tool (run), or a group of
// subcommands (subs).
type command struct {
	name    string
	args    string // what follows the name in its usage line
	summary string
	run     func(ctx context.Context, args []string) error
	subs    func() []command
}

func commands() []command {
	return []command{
		{"up", "[flags]", "a whole cluster in one process on loopback (the quickest start)", runUp, nil},
		{"router", "[flags]", "the HTTP front door: OpenAI-compatible API", runRouter, nil},
		{"coordinator", "[flags]", "shared layers, batching, sampling; dispatches experts", runCoordinator, nil},
		{"expert-node", "[flags]", "serves the expert units placed on it", runExpertNode, nil},
		{"bench", "--model FILE [flags]", "measure prefill, decode, TTFT and inter-token latency (single process or cluster)", runBench, nil},
		{"sim", "[flags]", "simulate placement and decode at scale (DeepSeek-V3 on 8–256 nodes) with the real controller", runSim, nil},
		{"certs", "[flags]", "write a development CA and per-role certificates for mutual TLS", runCerts, nil},
		{"placement", "", "show, drain or list the history of expert placement; plan whether a model fits", nil, placementCommands},
		{"stats", "[flags] | --compare PROMPT-A PROMPT-B", "routing statistics of a running cluster: heatmap, nodes, --compare two prompts", runStats, nil},
		{"model", "", "single-process tools over a GGUF file: synth, inspect, split, tokenize, logits, run", nil, modelCommands},
	}
}

// errUsage is a command line that names no command: the list is printed.
var errUsage = errors.New("no command given")

// drain delivers SIGTERM to an expert node, which drains on it instead of
// stopping (main wires it only for the expert-node command).
var drain chan struct{}

// gcPercent is the garbage collector's target unless GOGC says
// otherwise. A role's weights and KV cache live outside the Go heap
// (package offheap); what is left is scratch and buffers, reused
// through free lists, so little garbage is made. Go's default of 100
// would let it grow as large as everything live; at 5 resident memory
// stays within a twentieth of the live heap, for 1.3% of the CPU
// under load.
const gcPercent = 5

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
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
	err := dispatch(ctx, "", commands(), os.Args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "switchyard:", err)
		os.Exit(1)
	}
}

// dispatch runs the command args name among cmds. path is the group's
// name ("" at the top, "model ", …). "help CMD…" and "CMD… --help" print
// that command's help; a group given no subcommand lists its commands.
func dispatch(ctx context.Context, path string, cmds []command, args []string) error {
	if len(args) == 0 {
		list(os.Stderr, path, cmds)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		list(os.Stdout, path, cmds)
		return nil
	case "help":
		if len(args) == 1 {
			list(os.Stdout, path, cmds)
			return nil
		}
		// help CMD SUB… is CMD SUB… --help.
		return dispatch(ctx, path, cmds, append(args[1:], "--help"))
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		if c.subs != nil {
			return dispatch(ctx, path+c.name+" ", c.subs(), args[1:])
		}
		return c.run(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q (run 'switchyard help%s')", strings.TrimSpace(path+args[0]), strings.TrimSuffix(" "+path, " "))
}

// list prints a group's usage line and commands.
func list(w io.Writer, path string, cmds []command) {
	fmt.Fprintf(w, "usage: switchyard %s<command> [flags]\n\ncommands:\n", path)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n'switchyard help %s<command>' describes a command and its flags.\n", path)
}

// lookup finds a command by its full name ("up", "model inspect").
func lookup(name string) (command, bool) {
	cmds := commands()
	var found command
	for _, part := range strings.Fields(name) {
		ok := false
		for _, c := range cmds {
			if c.name == part {
				found, ok = c, true
				break
			}
		}
		if !ok {
			return command{}, false
		}
		if found.subs != nil {
			cmds = found.subs()
		}
	}
	return found, true
}

// newFlags is the flag set of the command named name ("model inspect");
// -h and --help print the command's usage line, summary and flags.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		c, _ := lookup(name)
		fmt.Fprintf(fs.Output(), "usage: switchyard %s %s\n\n%s\n\nflags:\n", name, c.args, c.summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags that may come before or after positional arguments
// and returns the positional ones. Help asked for with -h or --help goes
// to stdout (and parse returns flag.ErrHelp); a usage error to stderr.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var msg bytes.Buffer
	fs.SetOutput(&msg)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Stdout.Write(msg.Bytes())
			} else {
				os.Stderr.Write(msg.Bytes())
			}
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
