package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-llm/switchyard/coordinator"
	expertnode "github.com/switchyard-llm/switchyard/expert-node"
	"github.com/switchyard-llm/switchyard/internal/cachedir"
	"github.com/switchyard-llm/switchyard/internal/tlsconfig"
	"github.com/switchyard-llm/switchyard/internal/up"
	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/httpfile"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
	"github.com/switchyard-llm/switchyard/router"
)

// environment is every SWITCHYARD_* variable switchyard reads, read in
// this one place and logged (secrets only as set or not) by logger.
type environment struct {
	log       string // SWITCHYARD_LOG: debug, info, warn or error (default info)
	gossipKey string // SWITCHYARD_GOSSIP_KEY: the gossip key, when no --gossip-key-file is given
}

func readEnvironment() environment {
	return environment{log: os.Getenv("SWITCHYARD_LOG"), gossipKey: os.Getenv("SWITCHYARD_GOSSIP_KEY")}
}

// logger writes text logs to stderr at the level of SWITCHYARD_LOG and
// logs the environment read.
func logger() *slog.Logger {
	env := readEnvironment()
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(env.log)); err != nil {
		lvl = slog.LevelInfo
	}
	l := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	l.Debug("environment", "SWITCHYARD_LOG", env.log, "SWITCHYARD_GOSSIP_KEY", map[bool]string{true: "set", false: "unset"}[env.gossipKey != ""])
	return l
}

// cacheFlag adds --cache-dir to fs; the returned func, called after
// parsing, chooses the directory (see cachedir.Choose) and logs a
// warning when it falls back to a temporary one.
func cacheFlag(fs *flag.FlagSet) func(log *slog.Logger) (string, error) {
	dir := fs.String("cache-dir", "", "where to keep the demo model and what is fetched from a model URL (default: $XDG_CACHE_HOME/switchyard, else $HOME/.cache/switchyard, else a directory under $TMPDIR, with a warning)")
	return func(log *slog.Logger) (string, error) {
		path, warning, err := cachedir.Choose(*dir)
		if warning != "" {
			log.Warn(warning)
		}
		return path, err
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseEncoding(s string) (pb.Encoding, error) {
	switch strings.ToLower(s) {
	case "", "f32":
		return pb.Encoding_ENCODING_F32, nil
	case "f16":
		return pb.Encoding_ENCODING_F16, nil
	case "bf16":
		return pb.Encoding_ENCODING_BF16, nil
	case "fp8":
		return pb.Encoding_ENCODING_FP8_E4M3, nil
	}
	return 0, fmt.Errorf("--activations %q: want f32, f16, bf16 or fp8", s)
}

func runUp(ctx context.Context, args []string) error {
	fs := newFlags("up")
	var c up.Config
	fs.StringVar(&c.ModelPath, "model", "", "GGUF model to serve (default: the built-in demo model)")
	fs.IntVar(&c.ExpertNodes, "expert-nodes", 3, "expert nodes to start")
	fs.IntVar(&c.Replicas, "replicas", 1, "copies of each expert unit")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "router HTTP address")
	fs.BoolVar(&c.MetricsPerExpert, "metrics-per-expert", false, "export per-(layer, expert) series on /metrics")
	fs.StringVar(&c.APIKeysFile, "api-keys-file", "", "require API keys listed in this file (one per line)")
	fs.BoolVar(&c.DashboardPublic, "dashboard-public", false, "with --api-keys-file: open the dashboard and /v1/routing/stats without a key (default: a browser signs in with one)")
	fs.BoolVar(&c.Insecure, "insecure", false, "plaintext gRPC, etcd and gossip (default: mutual TLS with ephemeral certificates)")
	fs.BoolVar(&c.Processes, "processes", false, "run each expert node and coordinator as its own OS process")
	fs.IntVar(&c.Coordinators, "coordinators", 1, "coordinators behind the router")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "on Ctrl-C or SIGTERM, how long running requests have to finish before they end with a 'server shutting down' error")
	kv := kvFlags(fs, &c.KVCacheBytes, &c.NoPrefixCache, &c.QueueTimeout, &c.KVCacheType)
	act := fs.String("activations", "f32", "activation encoding on the wire: f32 (exact), f16, bf16, or fp8 (E4M3 with a scale per row: a quarter of the bytes, inexact)")
	tmpl := fs.String("chat-template", "", `chat template for a model file without one: "plain" or a Jinja file (the demo model uses "plain")`)
	reasoning := reasoningFlag(fs)
	cache := cacheFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := kv(); err != nil {
		return err
	}
	log := logger()
	var err error
	if c.CacheDir, err = cache(log); err != nil {
		return err
	}
	if c.ReasoningFormat, err = reasoning(); err != nil {
		return err
	}
	if c.Encoding, err = parseEncoding(*act); err != nil {
		return err
	}
	if c.ChatTemplate, err = loadTemplate(*tmpl); err != nil {
		return err
	}
	c.Logger, c.LogOutput = log, os.Stderr
	return up.Run(ctx, c, func(url string) { fmt.Println("ready:", url) })
}

func runExpertNode(ctx context.Context, args []string) error {
	fs := newFlags("expert-node")
	var c expertnode.Config
	etcd := fs.String("etcd", "", "etcd endpoints, comma-separated")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9100", "gRPC address")
	fs.StringVar(&c.Advertise, "advertise", "", "address others dial (default: --listen)")
	fs.StringVar(&c.GossipAdvertise, "gossip-advertise", "", "host gossip peers reach this node at (default: --advertise's host)")
	fs.StringVar(&c.ModelPath, "model", "", "GGUF model file")
	fs.StringVar(&c.NodeID, "node-id", "", "unique node ID")
	fs.StringVar(&c.Cluster, "cluster", "default", "cluster name (etcd key namespace)")
	fs.Int64Var(&c.CapacityBytes, "capacity-bytes", 0, "memory offered for expert units (0: unlimited)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "", "HTTP address for /metrics (default: none)")
	fs.StringVar(&c.HealthListen, "health-listen", "", "plaintext gRPC health port for probes (default: none)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", time.Minute, "on SIGTERM, how long to wait for units to move away")
	fs.DurationVar(&c.RegisterTimeout, "register-timeout", 15*time.Second, "how long to try the first registration in etcd")
	sharedCores := fs.Bool("shared-cores", false, "this process shares its CPU cores with other busy switchyard processes (as up --processes runs them): compute threads poll briefly for work and sleep while waiting on the network")
	loadTLS := tlsFlags(fs, true)
	cache := cacheFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	tensor.Default().ShareCores(*sharedCores)
	var err error
	if c.TLS, c.GossipKey, err = loadTLS(); err != nil {
		return err
	}
	c.Etcd, c.Logger, c.DrainRequests = splitList(*etcd), logger(), drain
	if c.CacheDir, err = modelCache(cache, c.Logger, c.ModelPath, c.NodeID); err != nil {
		return err
	}
	return expertnode.Run(ctx, c)
}

func runCoordinator(ctx context.Context, args []string) error {
	fs := newFlags("coordinator")
	var c coordinator.Config
	etcd := fs.String("etcd", "", "etcd endpoints, comma-separated")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9000", "gRPC address")
	fs.StringVar(&c.Advertise, "advertise", "", "address others dial (default: --listen)")
	fs.StringVar(&c.ModelPath, "model", "", "GGUF model file")
	fs.StringVar(&c.ModelName, "model-name", "", "name clients use (default: general.name)")
	fs.StringVar(&c.ID, "id", "coordinator-1", "unique coordinator ID")
	fs.StringVar(&c.Cluster, "cluster", "default", "cluster name (etcd key namespace)")
	fs.IntVar(&c.Replicas, "replicas", 1, "copies of each expert unit in the initial placement")
	fs.IntVar(&c.MinNodes, "min-nodes", 1, "expert nodes to wait for before placing units")
	fs.IntVar(&c.MaxMoves, "max-moves", 4, "rebalancing changes per placement epoch")
	fs.IntVar(&c.HotReplicas, "hot-replicas", 0, "extra replicas for hot units in all (0: a quarter of the units; -1: off)")
	fs.IntVar(&c.MicroBatches, "micro-batches", 0, "micro-batches a step is cut into, so attention runs while other micro-batches' experts are out (0: two for steps of 32 rows or more)")
	fs.Float64Var(&c.HotAbove, "hot-above", placement.DefaultHotAbove, "add hot replicas while the busiest node is above this × the mean load")
	fs.Float64Var(&c.CoolBelow, "cool-below", placement.DefaultCoolBelow, "drop hot replicas when the nodes would stay below this × the mean without them")
	fs.DurationVar(&c.ReregisterGrace, "reregister-grace", 10*time.Second, "after an etcd outage, how long nodes have to register again before their units may move")
	fs.DurationVar(&c.MassLossHold, "mass-loss-hold", time.Minute, "when more than half the nodes vanish at once, how long to hold the placement before repairing")
	fs.IntVar(&c.MaxBatchTokens, "max-batch-tokens", 256, "tokens per scheduler step")
	kv := kvFlags(fs, &c.KVCacheBytes, &c.NoPrefixCache, &c.QueueTimeout, &c.KVCacheType)
	fs.StringVar(&c.MetricsListen, "metrics-listen", "", "HTTP address for /metrics (default: none)")
	fs.StringVar(&c.HealthListen, "health-listen", "", "plaintext gRPC health port for probes (default: none)")
	fs.BoolVar(&c.MetricsPerExpert, "metrics-per-expert", false, "export per-(layer, expert) series")
	act := fs.String("activations", "f32", "activation encoding on the wire: f32 (exact), f16, bf16, or fp8 (E4M3 with a scale per row: a quarter of the bytes, inexact)")
	tmpl := fs.String("chat-template", "", `chat template for a model file without one: "plain" or a Jinja file`)
	sharedCores := fs.Bool("shared-cores", false, "this process shares its CPU cores with other busy switchyard processes (as up --processes runs them): compute threads poll briefly for work and sleep while waiting on the network")
	loadTLS := tlsFlags(fs, true)
	cache := cacheFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := kv(); err != nil {
		return err
	}
	tensor.Default().ShareCores(*sharedCores)
	var err error
	if c.TLS, c.GossipKey, err = loadTLS(); err != nil {
		return err
	}
	enc, err := parseEncoding(*act)
	if err != nil {
		return err
	}
	if c.FallbackTemplate, err = loadTemplate(*tmpl); err != nil {
		return err
	}
	c.Etcd, c.Encoding, c.Logger = splitList(*etcd), enc, logger()
	if c.CacheDir, err = modelCache(cache, c.Logger, c.ModelPath, c.ID); err != nil {
		return err
	}
	return coordinator.Run(ctx, c)
}

// reasoningFlag adds --reasoning-format; the function it returns reads it.
func reasoningFlag(fs *flag.FlagSet) func() (chat.ReasoningFormat, error) {
	s := fs.String("reasoning-format", "deepseek", "where a chat reply's reasoning goes: deepseek (reasoning_content, and Anthropic thinking blocks) or none (left in the content, markup and all)")
	return func() (chat.ReasoningFormat, error) {
		f, err := chat.ParseReasoningFormat(*s)
		if err != nil {
			return 0, fmt.Errorf("--reasoning-format: %w", err)
		}
		return f, nil
	}
}

func runRouter(ctx context.Context, args []string) error {
	fs := newFlags("router")
	var c router.Config
	etcd := fs.String("etcd", "", "etcd endpoints, comma-separated")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP address")
	fs.StringVar(&c.Cluster, "cluster", "default", "cluster name (etcd key namespace)")
	fs.StringVar(&c.APIKeysFile, "api-keys-file", "", "file of API keys, one per line (reloaded on change); requests then need Authorization: Bearer")
	public := fs.String("public-paths", "/healthz,/readyz,/metrics", "paths that need no API key")
	fs.BoolVar(&c.DashboardPublic, "dashboard-public", false, "with --api-keys-file: open the dashboard and /v1/routing/stats without a key (default: a browser signs in with one)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "on SIGINT or SIGTERM, how long running requests have to finish before they end with a 'server shutting down' error")
	reasoning := reasoningFlag(fs)
	loadTLS := tlsFlags(fs, false)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if c.TLS, _, err = loadTLS(); err != nil {
		return err
	}
	if c.ReasoningFormat, err = reasoning(); err != nil {
		return err
	}
	c.Etcd, c.Logger, c.PublicPaths = splitList(*etcd), logger(), splitList(*public)
	return router.Run(ctx, c)
}

// loadTemplate reads a --chat-template value: "" (none), "plain" (the
// documented fallback) or the path of a Jinja file.
func loadTemplate(v string) (*chat.Template, error) {
	switch v {
	case "":
		return nil, nil
	case "plain":
		return chat.New("plain", chat.Plain, "", "")
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("--chat-template: %w", err)
	}
	return chat.New(filepath.Base(v), string(b), "", "")
}

// tlsFlags adds --tls-cert, --tls-key, --tls-ca and (with gossip)
// --gossip-key-file to fs; the returned function loads them after parsing.
// The gossip key comes from that file, else from SWITCHYARD_GOSSIP_KEY,
// never from the command line, where ps would show it.
func tlsFlags(fs *flag.FlagSet, gossip bool) func() (*tlsconfig.Pair, []byte, error) {
	cert := fs.String("tls-cert", "", "this role's certificate (PEM); with --tls-key and --tls-ca turns on mutual TLS")
	key := fs.String("tls-key", "", "the certificate's key (PEM)")
	ca := fs.String("tls-ca", "", "the cluster CA (PEM) that signs every role's certificate")
	var gk *string
	if gossip {
		gk = fs.String("gossip-key-file", "", "file holding the base64 key (16, 24 or 32 bytes) that encrypts gossip (default: $SWITCHYARD_GOSSIP_KEY; unset: gossip in plaintext)")
	}
	return func() (*tlsconfig.Pair, []byte, error) {
		p, err := tlsconfig.Load(*cert, *key, *ca)
		if err != nil || gk == nil {
			return p, nil, err
		}
		k, err := gossipKey(*gk, readEnvironment().gossipKey)
		if err != nil {
			return nil, nil, err
		}
		return p, k, nil
	}
}

// gossipKey decodes the gossip key from file, else from env (the value
// of SWITCHYARD_GOSSIP_KEY); neither set means no key.
func gossipKey(file, env string) ([]byte, error) {
	src, text := "SWITCHYARD_GOSSIP_KEY", env
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--gossip-key-file: %w", err)
		}
		src, text = "--gossip-key-file "+file, string(b)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		if file != "" {
			return nil, fmt.Errorf("%s is empty", src)
		}
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(text)
	if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
		return nil, fmt.Errorf("%s: want base64 of 16, 24 or 32 bytes", src)
	}
	return k, nil
}

// modelCache is where a role keeps what it fetches of a model URL:
// <cache dir>/models/<id>; "" for a local model, which needs none.
func modelCache(cache func(*slog.Logger) (string, error), log *slog.Logger, modelPath, id string) (string, error) {
	if !httpfile.IsURL(modelPath) {
		return "", nil
	}
	dir, err := cache(log)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "models", id), nil
}

func runCerts(ctx context.Context, args []string) error {
	fs := newFlags("certs")
	out := fs.String("out", "certs", "directory to write into")
	hosts := fs.String("hosts", "", "extra host names or IPs the certificates are valid for, comma-separated")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := tlsconfig.WriteDev(*out, splitList(*hosts)); err != nil {
		return err
	}
	fmt.Printf("wrote a development CA (ca.pem) and certificates for %s into %s\n", strings.Join(tlsconfig.Roles, ", "), *out)
	return nil
}

// kvFlags adds the KV-cache flags a coordinator (and up) takes; the
// returned func, called after parsing, fills the fields.
func kvFlags(fs *flag.FlagSet, bytes *int64, noPrefix *bool, queue *time.Duration, typ *tensor.DType) func() error {
	size := fs.String("kv-cache-bytes", "0", "KV-cache budget, with an optional KiB/MiB/GiB suffix (0: half the available memory; -1: no bound)")
	prefix := fs.String("prefix-cache", "on", "reuse the KV cache of earlier prompts' prefixes: on or off")
	fs.DurationVar(queue, "queue-timeout", 60*time.Second, "how long a request waits for KV-cache room before it fails")
	typName := fs.String("kv-cache-type", "f32", "what the KV cache stores keys and values as: f32, f16 or q8_0 (head sizes a multiple of 32)")
	return func() error {
		var err error
		if *bytes, err = parseBytes(*size); err != nil {
			return fmt.Errorf("--kv-cache-bytes: %w", err)
		}
		switch *prefix {
		case "on", "off":
			*noPrefix = *prefix == "off"
		default:
			return fmt.Errorf("--prefix-cache %q: want on or off", *prefix)
		}
		switch *typName {
		case "f32", "f16", "q8_0":
			*typ, err = tensor.ParseDType(*typName)
			return err
		}
		return fmt.Errorf("--kv-cache-type %q: want f32, f16 or q8_0", *typName)
	}
}

// parseBytes reads a byte count with an optional KiB, MiB, GiB or TiB suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40} {
		if rest, ok := strings.CutSuffix(s, suf); ok {
			s, mult = rest, m
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a byte count", s)
	}
	return n * mult, nil
}
