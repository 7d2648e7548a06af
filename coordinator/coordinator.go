// Package coordinator is the coordinator role: it holds the shared part of
// the model (embeddings, attention and KV cache, norms, gates, shared
// experts, the output head), batches requests continuously, dispatches
// routed experts to expert nodes over gRPC, samples and streams tokens.
// When elected leader through etcd it writes the model record and the
// initial placement.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/internal/serve"
	"github.com/switchyard-llm/switchyard/internal/tlsconfig"
	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/httpfile"
	"github.com/switchyard-llm/switchyard/pkg/membership"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// ServiceName is the health-check service name that reports whether every
// expert unit has a ready replica.
const ServiceName = "switchyard.v1.CoordinatorService"

var errUnavailable = errors.New("unavailable")

// Config of a coordinator.
type Config struct {
	ID        string   // required; unique in the cluster
	Cluster   string   // "" means "default"
	Etcd      []string // required
	Listen    string   // gRPC address; ignored when Listener is set
	Listener  net.Listener
	Advertise string // address others dial; "" means the listener's
	// ModelPath is a GGUF file, or an http(s) URL read with Range requests
	// (only the header and the shared tensors are fetched); required.
	ModelPath string
	// CacheDir keeps what is fetched from a model URL; "" means the user
	// cache directory + /switchyard/models/<id>.
	CacheDir string
	// ModelName is the name clients use; "" means general.name, else the
	// file name without extension.
	ModelName string
	Replicas  int // copies of each unit in the initial placement; 0 means 1
	// MinNodes is how many expert nodes must register before the initial
	// placement is written; 0 means 1.
	MinNodes       int
	MaxBatchTokens int // tokens per step; 0 means 256
	MaxSequences   int // running sequences; 0 means 64
	// KVCacheBytes bounds the KV cache of all sequences; 0 means half the
	// memory available at start (MemAvailable), negative means no bound.
	KVCacheBytes int64
	// NoPrefixCache turns prefix caching off (it is on by default).
	NoPrefixCache bool
	// KVCacheType is what keys and values are stored as: F32 (zero), F16
	// or Q8_0.
	KVCacheType tensor.DType
	// QueueTimeout is how long a request waits for KV-cache room before it
	// fails (and the router tries elsewhere); 0 means 60s.
	QueueTimeout   time.Duration
	Encoding       pb.Encoding   // activations on the wire; unspecified means F32
	ForwardTimeout time.Duration // per expert call; 0 means 30s
	// FallbackTemplate is used for chat requests when the file has no
	// chat template; nil means such requests fail.
	FallbackTemplate *chat.Template
	Logger           *slog.Logger
	// Registerer receives the metrics; nil means a registry of its own,
	// served on MetricsListen when that is set.
	Registerer    prometheus.Registerer
	MetricsListen string
	// HealthListen, when set, serves the gRPC health service in plaintext
	// on its own port (for probes that cannot do mutual TLS).
	HealthListen string
	// MetricsPerExpert adds per-(layer, expert) series (many for big models).
	MetricsPerExpert bool
	// ControlInterval is how often the elected coordinator's placement
	// controller looks at the cluster; 0 means 1s.
	ControlInterval time.Duration
	// MaxMoves bounds rebalancing changes per placement epoch; 0 means 4.
	MaxMoves int
	// HotReplicas is how many extra replicas hot units may get in all; 0
	// means a quarter of the units, negative turns hot replication off.
	HotReplicas int
	// HotAbove and CoolBelow are hot replication's hysteresis: replicas are
	// added while the busiest node's expected load is above HotAbove × the
	// mean and dropped when the nodes would stay below CoolBelow × the mean
	// without them; 0 means placement.DefaultHotAbove and DefaultCoolBelow
	// (1.10 and 1.05).
	HotAbove, CoolBelow float64
	// MicroBatches is how many micro-batches a step is cut into, so that
	// some run attention while the others' experts are out (more hide a
	// longer round trip; docs/performance.md has the arithmetic); 0 means
	// two for steps of 32 rows or more, one otherwise.
	MicroBatches int
	// UnitWait is how long a step waits for a unit with no ready replica
	// (while the controller places it again) before failing; 0 means 30s.
	UnitWait time.Duration
	// ReregisterGrace is how long, after etcd answers again following an
	// outage, nodes have to register again before the controller may drop
	// the units of one whose lease lapsed; 0 means 10s. A node alive in
	// gossip that answers its health check keeps its units regardless.
	ReregisterGrace time.Duration
	// MassLossHold is how long the controller holds the placement when
	// more than half its nodes vanish at once, before repairing as usual;
	// 0 means 60s.
	MassLossHold time.Duration
	// TLS, when set, secures every gRPC connection and the etcd client
	// with mutual TLS; GossipKey encrypts memberlist gossip.
	TLS       *tlsconfig.Pair
	GossipKey []byte
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("coordinator: --id is required")
	case len(c.Etcd) == 0:
		return errors.New("coordinator: --etcd is required")
	case c.ModelPath == "":
		return errors.New("coordinator: --model is required")
	case c.Listener == nil && c.Listen == "":
		return errors.New("coordinator: --listen is required")
	case c.Replicas < 0 || c.MinNodes < 0 || c.MaxBatchTokens < 0 || c.MaxSequences < 0:
		return errors.New("coordinator: negative sizes")
	case c.ReregisterGrace < 0 || c.MassLossHold < 0:
		return errors.New("coordinator: negative --reregister-grace or --mass-loss-hold")
	case c.MicroBatches < 0 || c.MicroBatches > 64:
		return fmt.Errorf("coordinator: --micro-batches %d: want 0 (automatic) to 64", c.MicroBatches)
	case c.HotAbove != 0 && (c.HotAbove <= 1 || c.CoolBelow >= c.HotAbove || c.CoolBelow < 0):
		return fmt.Errorf("coordinator: --hot-above %.2f must be above 1 and above --cool-below %.2f", c.HotAbove, c.CoolBelow)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Replicas, 1)
	def(&c.MinNodes, 1)
	def(&c.MaxBatchTokens, 256)
	def(&c.MaxSequences, 64)
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	if c.CacheDir == "" && httpfile.IsURL(c.ModelPath) {
		base, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("coordinator: no cache directory for %s: %w", c.ModelPath, err)
		}
		c.CacheDir = filepath.Join(base, "switchyard", "models", c.ID)
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = 30 * time.Second
	}
	if c.ControlInterval == 0 {
		c.ControlInterval = time.Second
	}
	if c.MaxMoves == 0 {
		c.MaxMoves = 4
	}
	if c.HotAbove == 0 {
		c.HotAbove = placement.DefaultHotAbove
	}
	if c.CoolBelow == 0 {
		c.CoolBelow = placement.DefaultCoolBelow
	}
	if c.UnitWait == 0 {
		c.UnitWait = 30 * time.Second
	}
	if c.ReregisterGrace == 0 {
		c.ReregisterGrace = 10 * time.Second
	}
	if c.MassLossHold == 0 {
		c.MassLossHold = time.Minute
	}
	if c.QueueTimeout == 0 {
		c.QueueTimeout = 60 * time.Second
	}
	if c.KVCacheBytes == 0 {
		c.KVCacheBytes = memAvailable() / 2
	}
	if c.Encoding == pb.Encoding_ENCODING_UNSPECIFIED {
		c.Encoding = pb.Encoding_ENCODING_F32
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Coordinator is a running coordinator.
type Coordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	cfg      Config
	log      *slog.Logger
	file     *model.File
	model    *model.Model
	tok      *tokenizer.Tokenizer
	tmpl     *chat.Template
	family   chat.Family // of tmpl: how replies write tool calls and reasoning
	info     placement.ModelInfo
	dispatch *dispatcher
	sched    *scheduler
	stats    *routingstats.Recorder
	metrics  *metrics
	grammars grammars // compiled output constraints, and the vocabulary they mask

	inFlight, requests, generated, promptTokens atomic.Int64
}

// Run serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c, err := open(cfg)
	if err != nil {
		return err
	}
	defer c.file.Close()
	return c.serve(ctx)
}

func open(cfg Config) (*Coordinator, error) {
	opts := gguf.Options{Mmap: true}
	if httpfile.IsURL(cfg.ModelPath) {
		// Fetched by ranges, each part of a split model through its own cache.
		opts = gguf.Options{Source: httpfile.Opener(context.Background(), cfg.CacheDir, nil)}
	}
	f, err := model.Open(cfg.ModelPath, opts)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	fail := func(err error) (*Coordinator, error) {
		f.Close()
		return nil, fmt.Errorf("coordinator: %s: %w", cfg.ModelPath, err)
	}
	if len(f.MoELayers()) == 0 {
		return fail(errors.New("a dense model has no experts to distribute; use `switchyard model run`"))
	}
	shared, err := f.LoadShared()
	if err != nil {
		return fail(err)
	}
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		return fail(err)
	}
	tmpl, err := chat.FromGGUF(f.File)
	if errors.Is(err, chat.ErrNoTemplate) {
		tmpl, err = cfg.FallbackTemplate, nil
	}
	if err != nil {
		return fail(err)
	}
	digest := f.Digest()
	name := cfg.ModelName
	if name == "" {
		if v, ok := f.Get("general.name"); ok {
			name, _ = v.V.(string)
		}
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(cfg.ModelPath), filepath.Ext(cfg.ModelPath))
	}
	// The tokenizer and the template are built: nothing reads the parsed
	// vocabulary (tokens, merges, scores) again.
	f.Forget("tokenizer.ggml.")
	h := f.Hyper
	c := &Coordinator{cfg: cfg, log: cfg.Logger.With("coordinator", cfg.ID), file: f, tok: tok, tmpl: tmpl,
		info: placement.ModelInfo{Name: name, Arch: h.Arch, Digest: digest, Layers: h.Layers, Experts: h.Experts,
			ExpertsUsed: h.ExpertsUsed, Vocab: h.Vocab, Context: h.Context, Census: f.Census(), MoELayers: h.MoELayers()}}
	if tmpl != nil {
		c.info.ChatTemplate = tmpl.Name
		c.family = chat.DetectFamily(tmpl.Source)
		c.log.Info("chat template", "source", tmpl.Name, "family", c.family)
	}
	c.stats = routingstats.New(h.Layers, h.Experts, h.ExpertsUsed, h.MoELayers())
	switch {
	case cfg.HotReplicas == 0:
		c.cfg.HotReplicas = len(c.info.Units()) / 4
	case cfg.HotReplicas < 0:
		c.cfg.HotReplicas = 0
	}
	c.model = &model.Model{Hyper: h, Arch: f.Arch, Shared: shared, Pool: tensor.Default(), Observer: c.stats}
	return c, nil
}

func (c *Coordinator) serve(ctx context.Context) error {
	cfg := c.cfg
	ep, err := serve.Listen(cfg.Listener, cfg.Listen, cfg.Advertise)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	lis, addr, bindHost, advHost := ep.Listener, ep.Addr, ep.BindHost, ep.AdvertiseHost

	cli, err := etcdclient.New(cfg.Etcd, cfg.TLS.ClientConfig())
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer cli.Close()
	store := placement.NewStore(cli, cfg.Cluster)
	// The goroutines below end with ctx; serve returns after they have.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	hs := health.NewServer()
	hs.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	members, err := membership.Start(membership.Config{Name: cfg.ID, BindAddr: bindHost, Advertise: advHost, Logger: c.log, SecretKey: cfg.GossipKey})
	if err != nil {
		return err
	}
	defer members.Close()
	reg := cfg.Registerer
	if reg == nil {
		own := prometheus.NewRegistry()
		reg = own
		if cfg.MetricsListen != "" {
			stop, err := serve.Metrics(cfg.MetricsListen, own)
			if err != nil {
				return err
			}
			defer stop()
		}
	}
	c.metrics = newMetrics(reg, c.stats, cfg.MetricsPerExpert)
	c.dispatch = newDispatcher(c.model.Pool, cfg.TLS.DialOption(), c.info.Digest, c.model.Hyper, cfg.Encoding, cfg.ForwardTimeout, cfg.UnitWait, members, c.stats, c.metrics, c.log)
	c.dispatch.microBatches = cfg.MicroBatches
	defer c.dispatch.close()
	c.model.Experts = c.dispatch
	updateHealth := func() {
		st := healthpb.HealthCheckResponse_SERVING
		if len(c.dispatch.missing()) > 0 {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus(ServiceName, st)
	}
	c.watchCluster(ctx, &wg, store, members, updateHealth)

	if c.model.KV, err = model.NewKVCache(c.model, model.KVCacheConfig{Bytes: max(0, cfg.KVCacheBytes), Prefix: !cfg.NoPrefixCache, Type: cfg.KVCacheType}); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	c.log.Info("KV cache", "budget_bytes", cfg.KVCacheBytes, "type", c.model.KV.Type(), "block_bytes", c.model.KV.BlockBytes(), "prefix_cache", !cfg.NoPrefixCache)
	c.sched = &scheduler{m: c.model, tok: c.tok, maxTokens: cfg.MaxBatchTokens, maxSeqs: cfg.MaxSequences,
		queueTimeout: cfg.QueueTimeout, submit: make(chan *genRequest), log: c.log, onStep: func(generated int) {
			c.stats.RecordStep(generated)
			c.metrics.steps.Inc()
			c.metrics.tokens.WithLabelValues("generated").Add(float64(generated))
		}}
	reg.MustRegister(&kvCollector{s: c.sched, blockBytes: c.model.KV.BlockBytes()})
	go c.sched.run(ctx)

	srv := grpc.NewServer(cfg.TLS.ServerOption())
	pb.RegisterCoordinatorServiceServer(srv, c)
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if cfg.HealthListen != "" {
		stop, err := serve.Health(cfg.HealthListen, hs)
		if err != nil {
			return err
		}
		defer stop()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	defer serve.StopGracefully(srv)

	lease, err := store.Register(ctx, store.Coordinator(cfg.ID), placement.Coordinator{ID: cfg.ID, Addr: addr, GossipAddr: members.Addr()}, 5, nil)
	if err != nil {
		return err
	}
	defer lease.Close(context.WithoutCancel(ctx))
	wg.Go(func() { c.lead(ctx, store, members) })
	c.log.Info("coordinator serving", "addr", addr, "model", c.info.Name, "digest", c.info.Digest)

	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		return fmt.Errorf("coordinator: serve: %w", err)
	}
}
