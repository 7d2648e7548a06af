// Package expertnode is the expert node role: it registers in etcd, joins
// the gossip cluster, loads exactly the expert units placement gives it
// (reading only their bytes of the model file) and serves
// ExpertService.Forward over gRPC.
package expertnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/internal/serve"
	"github.com/switchyard-llm/switchyard/internal/tlsconfig"
	"github.com/switchyard-llm/switchyard/pkg/freelist"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/httpfile"
	"github.com/switchyard-llm/switchyard/pkg/membership"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Config of an expert node.
type Config struct {
	NodeID  string   // required; unique in the cluster
	Cluster string   // etcd key namespace; "" means "default"
	Etcd    []string // etcd client endpoints; required
	// Listen is the gRPC address; ignored when Listener is set.
	Listen   string
	Listener net.Listener
	// Advertise is the address others dial; "" means the listener's.
	Advertise string
	// GossipAdvertise is the host gossip peers reach this node at; "" means
	// Advertise's host. They differ when calls go through a proxy (the
	// network bench's delay) and gossip does not.
	GossipAdvertise string
	// ModelPath is a GGUF file, or an http(s) URL read with Range requests
	// (only the header and this node's units are fetched); required.
	ModelPath string
	// CacheDir keeps what is fetched from a model URL; "" means the user
	// cache directory + /switchyard/models/<node id>.
	CacheDir      string
	CapacityBytes int64 // memory offered for units; 0 means unlimited
	LeaseTTL      int64 // seconds; 0 means 3
	// RegisterTimeout bounds the first registration in etcd; 0 means 15s.
	RegisterTimeout time.Duration
	// DrainRequests starts a drain when it delivers (main wires SIGTERM to
	// it): the node asks the controller to move its units away and exits
	// once nothing is placed on it, or after DrainTimeout (0 means 1
	// minute). A drain/<id> key in etcd does the same. Cancelling the
	// context passed to Run stops at once.
	DrainRequests <-chan struct{}
	DrainTimeout  time.Duration
	// TLS, when set, secures every gRPC connection and the etcd client
	// with mutual TLS; GossipKey encrypts memberlist gossip.
	TLS       *tlsconfig.Pair
	GossipKey []byte
	Logger    *slog.Logger
	// Registerer receives the metrics; nil means a registry of its own,
	// served on MetricsListen when that is set.
	Registerer    prometheus.Registerer
	MetricsListen string
	// HealthListen, when set, serves the gRPC health service in plaintext
	// on its own port (for probes that cannot do mutual TLS).
	HealthListen string
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("expert-node: --node-id is required")
	case len(c.Etcd) == 0:
		return errors.New("expert-node: --etcd is required")
	case c.ModelPath == "":
		return errors.New("expert-node: --model is required")
	case c.Listener == nil && c.Listen == "":
		return errors.New("expert-node: --listen is required")
	}
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 3
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = time.Minute
	}
	if c.RegisterTimeout == 0 {
		c.RegisterTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// source opens the model's files: local paths, or for a URL, ranges
// fetched into a cache.
func source(cfg Config) (gguf.Source, error) {
	if httpfile.IsURL(cfg.ModelPath) {
		dir := cfg.CacheDir
		if dir == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				return nil, fmt.Errorf("expert-node: no cache directory for %s: %w", cfg.ModelPath, err)
			}
			dir = filepath.Join(base, "switchyard", "models", cfg.NodeID)
		}
		return httpfile.Opener(context.Background(), dir, nil), nil
	}
	return func(path string) (io.ReaderAt, int64, error) {
		fh, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, 0, err
		}
		return fh, st.Size(), nil
	}, nil
}

// openModel opens the model, every part of a split one, and returns a
// counter of the bytes read from each part, in the order of g.Parts.
func openModel(cfg Config) (g *gguf.File, read []*countingReader, err error) {
	src, err := source(cfg)
	if err != nil {
		return nil, nil, err
	}
	counted := map[string]*countingReader{}
	g, err = gguf.Open(cfg.ModelPath, gguf.Options{Source: func(name string) (io.ReaderAt, int64, error) {
		r, size, err := src(name)
		if err != nil {
			return nil, 0, err
		}
		cr := &countingReader{r: r}
		counted[name] = cr
		return cr, size, nil
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("expert-node: %w", err)
	}
	g.Forget("tokenizer.") // a node never tokenizes
	read = make([]*countingReader, len(g.Parts))
	for i, p := range g.Parts {
		read[i] = counted[p.Name]
	}
	return g, read, nil
}

// countingReader counts bytes read from one file of the model.
type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// Close closes the file read.
func (c *countingReader) Close() error {
	if cl, ok := c.r.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// Node is a running expert node.
type Node struct {
	pb.UnimplementedExpertServiceServer
	cfg    Config
	log    *slog.Logger
	file   *model.File
	read   []*countingReader // bytes read from each of the model's files
	digest string

	mu    sync.RWMutex // guards local's unit set against Forward, dropped and epoch
	local *model.Local
	// dropped are loaded units the placement has taken away, each with the
	// epoch that took it: unloaded dropGrace later, unless placed back.
	dropped map[model.Unit]int64
	// scratch pools Forward's working memory (*scratch).
	scratch freelist.List[scratch]
	epoch   int64 // the placement epoch the units reflect

	metrics *metrics // nil until Serve
}

// Open reads the model file's header and prepares a node holding no units.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g, read, err := openModel(cfg)
	if err != nil {
		return nil, err
	}
	f, err := model.NewFile(g)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("expert-node: %s: %w", cfg.ModelPath, err)
	}
	if !f.MoE() {
		g.Close()
		return nil, fmt.Errorf("expert-node: %s is a dense model: there are no experts to serve", cfg.ModelPath)
	}
	digest := g.Digest()
	return &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), file: f, read: read, digest: digest,
		local: model.NewLocal(f.Embd, tensor.Default()), dropped: map[model.Unit]int64{}}, nil
}

// bytesRead is how many bytes the node has read from the model's files.
func (n *Node) bytesRead() int64 {
	var sum int64
	for _, r := range n.read {
		sum += r.n.Load()
	}
	return sum
}

// bytesReadByPart is how many bytes the node has read from each file of
// the model, in part order.
func (n *Node) bytesReadByPart() []int64 {
	by := make([]int64, len(n.read))
	for i, r := range n.read {
		by[i] = r.n.Load()
	}
	return by
}

// Run serves until ctx ends, then deregisters and stops.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	n, err := Open(cfg)
	if err != nil {
		return err
	}
	return n.Serve(ctx)
}

// Serve registers the node and serves until ctx ends.
func (n *Node) Serve(ctx context.Context) error {
	cfg := n.cfg
	ep, err := serve.Listen(cfg.Listener, cfg.Listen, cfg.Advertise)
	if err != nil {
		return fmt.Errorf("expert-node: %w", err)
	}
	lis, addr, bindHost, advHost := ep.Listener, ep.Addr, ep.BindHost, ep.AdvertiseHost
	if cfg.GossipAdvertise != "" {
		advHost = cfg.GossipAdvertise
	}

	cli, err := etcdclient.New(cfg.Etcd, cfg.TLS.ClientConfig())
	if err != nil {
		return fmt.Errorf("expert-node: %w", err)
	}
	defer cli.Close()
	store := placement.NewStore(cli, cfg.Cluster)

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
	n.metrics = newMetrics(reg, n)

	members, err := membership.Start(membership.Config{Name: cfg.NodeID, BindAddr: bindHost, Advertise: advHost, Logger: n.log, SecretKey: cfg.GossipKey})
	if err != nil {
		return err
	}
	defer members.Close()

	srv := n.grpcServer(cfg.TLS.ServerOption())
	hs := health.NewServer()
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

	self := placement.Node{ID: cfg.NodeID, Addr: addr, GossipAddr: members.Addr(), CapacityBytes: cfg.CapacityBytes}
	rctx, cancelReg := context.WithTimeout(ctx, cfg.RegisterTimeout)
	// When the lease lapses (etcd was away longer than its TTL, or lost its
	// data) the node registers again and publishes its status again.
	lease, err := store.Register(rctx, store.Node(cfg.NodeID), self, cfg.LeaseTTL, func(ctx context.Context, id clientv3.LeaseID) {
		n.log.Warn("registration lost and renewed; publishing status again")
		n.publish(ctx, store, id)
	})
	cancelReg()
	if err != nil {
		return fmt.Errorf("expert-node: cannot register in etcd %v (is its certificate signed by the cluster CA?): %w", cfg.Etcd, err)
	}
	// exitBy, once set (by a drain that timed out, when etcd is likely
	// away), bounds what the node still asks of etcd as it exits, revoking
	// its lease included, so that --drain-timeout holds.
	var exitBy time.Time
	defer func() {
		cctx := context.WithoutCancel(ctx)
		if !exitBy.IsZero() {
			var cancel context.CancelFunc
			cctx, cancel = context.WithDeadline(cctx, exitBy)
			defer cancel()
		}
		lease.Close(cctx)
	}()
	n.log.Info("expert node registered", "addr", addr, "gossip", members.Addr(), "digest", n.digest)
	n.joinGossip(ctx, store, members)

	// Watches outlive ctx: on SIGTERM the node drains, and must still see
	// placement change while it does.
	wctx, stopWatches := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatches()
	// Placement changes are applied one at a time by this goroutine.
	maps := make(chan placement.Map, 1)
	go placement.WatchPlacement(wctx, store, func(pm placement.Map) {
		if pm.Units == nil && pm.Epoch == 0 {
			return // etcd holds none
		}
		select {
		case <-maps:
		default:
		}
		maps <- pm
	})
	drainReq := make(chan struct{}, 1)
	go placement.Watch(wctx, store, store.Drain(cfg.NodeID), func(m map[string]bool) {
		if m[""] {
			select {
			case drainReq <- struct{}{}:
			default:
			}
		}
	})
	var deadline <-chan time.Time
	draining := false
	startDrain := func(why string) {
		draining = true
		deadline = time.After(cfg.DrainTimeout)
		self.Draining = true
		// With etcd away the write would retry for ever and hold up this
		// loop past the drain's deadline: it gets a deadline of its own.
		pctx, cancel := context.WithTimeout(wctx, min(etcdCallTimeout, cfg.DrainTimeout))
		err := lease.Put(pctx, self) // kept if the lease is renewed
		cancel()
		if err != nil {
			n.log.Warn("announce drain", "err", err)
		}
		n.log.Info("draining: waiting for the controller to move units away", "why", why, "timeout", cfg.DrainTimeout)
	}
	// forgetDrain removes a drain request made through etcd, if any.
	forgetDrain := func(ctx context.Context) {
		dctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		defer cancel()
		if _, err := store.C.Delete(dctx, store.Drain(cfg.NodeID)); err != nil {
			n.log.Warn("remove drain request", "err", err)
		}
	}
	var last placement.Map
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cfg.DrainRequests:
			if !draining {
				startDrain("stop signal")
			}
		case <-drainReq:
			if !draining {
				startDrain("drain requested")
			}
		case <-deadline:
			n.log.Warn("drain timed out; exiting with units still placed here")
			exitBy = time.Now().Add(drainExitTimeout)
			fctx, cancel := context.WithDeadline(wctx, exitBy)
			forgetDrain(fctx)
			cancel()
			return nil
		case err := <-serveErr:
			return fmt.Errorf("expert-node: serve: %w", err)
		case pm := <-maps:
			last = pm
			n.apply(wctx, store, lease.ID(), pm)
		}
		if draining && last.Units != nil && len(last.UnitsOf(cfg.NodeID)) == 0 {
			// Nothing routes here any more; let in-flight calls finish.
			time.Sleep(500 * time.Millisecond)
			forgetDrain(wctx)
			n.log.Info("drained")
			return nil
		}
	}
}

// etcdCallTimeout bounds each etcd call the node makes outside its
// registration, so that with etcd gone it still stops on time.
const etcdCallTimeout = 5 * time.Second

// drainExitTimeout is what a node whose drain timed out gives etcd, all
// calls together, before it exits.
const drainExitTimeout = time.Second

// joinGossip joins every registered coordinator and node it can reach.
func (n *Node) joinGossip(ctx context.Context, store *placement.Store, m *membership.Members) {
	ctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	var addrs []string
	if nodes, err := placement.List[placement.Node](ctx, store, store.NodesPrefix()); err == nil {
		for id, nd := range nodes {
			if id != n.cfg.NodeID {
				addrs = append(addrs, nd.GossipAddr)
			}
		}
	}
	if cs, err := placement.List[placement.Coordinator](ctx, store, store.CoordinatorsPrefix()); err == nil {
		for _, c := range cs {
			addrs = append(addrs, c.GossipAddr)
		}
	}
	if err := m.Join(addrs); err != nil {
		n.log.Warn("gossip join", "err", err)
	}
}

// apply loads the units placed here that are missing, drops the ones no
// longer placed here, and publishes what is ready.
func (n *Node) apply(ctx context.Context, store *placement.Store, lease clientv3.LeaseID, pm placement.Map) {
	n.sync(pm)
	n.publish(ctx, store, lease)
}

// dropGrace is how long a unit the placement takes away stays loaded:
// coordinators that have not yet seen the new placement still send it
// calls for a moment, and those must not fail.
const dropGrace = 2 * time.Second

// sync loads the units pm places on this node and unloads, after
// dropGrace, the ones it no longer places here.
func (n *Node) sync(pm placement.Map) {
	want := pm.UnitsOf(n.cfg.NodeID)
	n.mu.RLock()
	have := n.local.Units()
	n.mu.RUnlock()
	loaded := 0
	for _, u := range want {
		if slices.Contains(have, u) {
			continue
		}
		e, err := n.file.LoadExpert(u)
		if err != nil {
			n.log.Error("load unit", "unit", u, "err", err)
			continue
		}
		n.mu.Lock()
		n.local.Add(e)
		n.mu.Unlock()
		loaded++
	}
	if loaded > 0 {
		debug.FreeOSMemory() // what was read to pack the units is garbage now
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.epoch = pm.Epoch
	for _, u := range want {
		delete(n.dropped, u)
	}
	for _, u := range have {
		if _, ok := n.dropped[u]; !ok && !slices.Contains(want, u) {
			n.dropped[u] = pm.Epoch
			time.AfterFunc(dropGrace, func() { n.unload(u, pm.Epoch) })
		}
	}
}

// unload drops u if it is still dropped by the placement of epoch.
func (n *Node) unload(u model.Unit, epoch int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.dropped[u]; ok && e == epoch {
		n.local.Remove(u)
		delete(n.dropped, u)
	}
}

// publish writes the node's status.
func (n *Node) publish(ctx context.Context, store *placement.Store, lease clientv3.LeaseID) {
	st := n.status()
	ctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	if err := store.Put(ctx, store.Status(n.cfg.NodeID), st, lease); err != nil {
		n.log.Error("publish status", "err", err)
		return
	}
	n.log.Info("units ready", "epoch", st.Epoch, "units", len(st.Ready), "bytes_read", n.bytesRead(), "bytes_read_by_part", n.bytesReadByPart())
}

// status lists the units the node has loaded and the placement gives it
// (not those it is about to unload).
func (n *Node) status() placement.Status {
	n.mu.RLock()
	defer n.mu.RUnlock()
	st := placement.Status{NodeID: n.cfg.NodeID, Digest: n.digest, Epoch: n.epoch}
	for _, u := range sortUnits(n.local.Units()) {
		if _, ok := n.dropped[u]; !ok {
			st.Ready = append(st.Ready, placement.UnitKey(u))
		}
	}
	return st
}

func sortUnits(us []model.Unit) []model.Unit {
	slices.SortFunc(us, func(a, b model.Unit) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return a.Expert - b.Expert
	})
	return us
}
