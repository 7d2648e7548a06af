// Package router is the HTTP front door: an OpenAI-compatible API over
// the coordinators it finds in etcd, sending each request to the one with
// the fewest requests in flight.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/internal/tlsconfig"
	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// coordinatorHealthService is the health-check name coordinators report
// readiness under (every expert unit has a ready replica).
const coordinatorHealthService = "switchyard.v1.CoordinatorService"

// Config of a router.
type Config struct {
	Cluster  string   // "" means "default"
	Etcd     []string // required
	Listen   string   // HTTP address; ignored when Listener is set
	Listener net.Listener
	Logger   *slog.Logger
	// Registerer receives the router's metrics; nil means a registry of
	// its own. Gatherer is what /metrics serves; nil means that registry
	// (set both to serve a shared registry, as `up` does).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// APIKeysFile, when set, is a file of API keys (one per line, reloaded
	// when it changes); every request then needs Authorization: Bearer KEY
	// except to the PublicPaths. nil PublicPaths means /healthz, /readyz
	// and /metrics.
	APIKeysFile string
	PublicPaths []string
	// DashboardPublic opens the dashboard and the routing statistics to
	// anyone even with API keys on; otherwise a browser signs in to them
	// with a key once, kept in a session cookie.
	DashboardPublic bool
	// TLS, when set, secures the router's gRPC connections to
	// coordinators and its etcd client with mutual TLS.
	TLS *tlsconfig.Pair
	// ShutdownGrace is how long running requests have to finish once the
	// context passed to Run ends (the router stops accepting at once);
	// then they end with a "server shutting down" error. 0 means 10s.
	ShutdownGrace time.Duration
	// ReasoningFormat says where a chat reply's reasoning goes (the
	// --reasoning-format flag): the zero value, chat.ReasoningDeepSeek,
	// splits it into reasoning_content (Anthropic: thinking blocks), whole
	// and as streamed deltas; chat.ReasoningNone leaves it in the content,
	// markup and all.
	ReasoningFormat chat.ReasoningFormat
}

// ErrShuttingDown ends the requests still running when the shutdown grace
// runs out.
var ErrShuttingDown = errors.New("server shutting down")

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	switch {
	case len(c.Etcd) == 0:
		return errors.New("router: --etcd is required")
	case c.Listener == nil && c.Listen == "":
		return errors.New("router: --listen is required")
	}
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		reg := prometheus.NewRegistry()
		c.Registerer = reg
		if c.Gatherer == nil {
			c.Gatherer = reg
		}
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.NewRegistry()
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return nil
}

// Router is a running router.
type Router struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu     sync.RWMutex
	coords map[string]*coordConn
	model  *placement.ModelInfo
	nodes  map[string]placement.Node
	status map[string]placement.Status
	pmap   placement.Map
}

type coordConn struct {
	id, addr string
	conn     *grpc.ClientConn
	client   pb.CoordinatorServiceClient
	health   healthpb.HealthClient
	inFlight atomic.Int64
}

// Run serves HTTP until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	lis := cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("router: listen: %w", err)
		}
	}
	cli, err := etcdclient.New(cfg.Etcd, cfg.TLS.ClientConfig())
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	defer cli.Close()
	store := placement.NewStore(cli, cfg.Cluster)
	r := &Router{cfg: cfg, log: cfg.Logger.With("role", "router"), coords: map[string]*coordConn{}, metrics: newMetrics(cfg.Registerer)}
	defer r.closeConns()
	go placement.Watch(ctx, store, store.CoordinatorsPrefix(), r.setCoordinators)
	go placement.Watch(ctx, store, store.NodesPrefix(), func(m map[string]placement.Node) {
		r.mu.Lock()
		r.nodes = m
		r.mu.Unlock()
	})
	go placement.Watch(ctx, store, store.StatusPrefix(), func(m map[string]placement.Status) {
		r.mu.Lock()
		r.status = m
		r.mu.Unlock()
	})
	go placement.WatchPlacement(ctx, store, func(m placement.Map) {
		r.mu.Lock()
		r.pmap = m
		r.mu.Unlock()
	})
	go placement.Watch(ctx, store, store.Model(), func(m map[string]placement.ModelInfo) {
		if info, ok := m[""]; ok {
			r.mu.Lock()
			r.model = &info
			r.mu.Unlock()
		}
	})

	handler := r.Handler()
	if cfg.APIKeysFile != "" {
		keys, err := newAPIKeys(cfg.APIKeysFile)
		if err != nil {
			return fmt.Errorf("router: --api-keys-file: %w", err)
		}
		public := map[string]bool{}
		paths := cfg.PublicPaths
		if paths == nil {
			paths = []string{"/healthz", "/readyz", "/metrics"}
		}
		for _, p := range paths {
			public[p] = true
		}
		if cfg.DashboardPublic {
			for p := range sessionPaths {
				public[p] = true
			}
		}
		handler = keys.require(handler, public)
	}
	// Requests outlive ctx by the shutdown grace; then stopRequests ends
	// them with ErrShuttingDown as their context's cause.
	requests, stopRequests := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopRequests(nil)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return requests }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	r.log.Info("router serving", "addr", lis.Addr().String())
	select {
	case <-ctx.Done():
		r.shutdown(srv, stopRequests)
		<-errc // http.ErrServerClosed
		return nil
	case err := <-errc:
		return fmt.Errorf("router: serve: %w", err)
	}
}

// shutdown stops accepting, gives running requests the grace to finish,
// then ends those left with ErrShuttingDown and closes the server once
// they have written it (or after a few seconds more).
func (r *Router) shutdown(srv *http.Server, stopRequests context.CancelCauseFunc) {
	r.log.Info("router stopping: no new requests; running ones have the grace to finish", "grace", r.cfg.ShutdownGrace)
	gctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
	defer cancel()
	if srv.Shutdown(gctx) == nil {
		return
	}
	r.log.Warn("shutdown grace over: ending the requests still running", "grace", r.cfg.ShutdownGrace)
	stopRequests(ErrShuttingDown)
	fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(fctx); errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
	}
}

func (r *Router) setCoordinators(cs map[string]placement.Coordinator) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.coords {
		if n, ok := cs[id]; !ok || n.Addr != c.addr {
			c.conn.Close()
			delete(r.coords, id)
		}
	}
	for id, c := range cs {
		if _, ok := r.coords[id]; ok {
			continue
		}
		conn, err := grpc.NewClient(c.Addr, r.cfg.TLS.DialOption())
		if err != nil {
			r.log.Error("dial coordinator", "id", id, "addr", c.Addr, "err", err)
			continue
		}
		r.coords[id] = &coordConn{id: id, addr: c.Addr, conn: conn, client: pb.NewCoordinatorServiceClient(conn), health: healthpb.NewHealthClient(conn)}
	}
}

func (r *Router) closeConns() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.coords {
		c.conn.Close()
		delete(r.coords, id)
	}
}

// pickExcept returns the coordinator with the fewest requests in flight
// among those not in skip.
func (r *Router) pickExcept(skip map[string]bool) *coordConn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var best *coordConn
	for _, c := range r.coords {
		if skip[c.id] {
			continue
		}
		if best == nil || c.inFlight.Load() < best.inFlight.Load() || (c.inFlight.Load() == best.inFlight.Load() && c.id < best.id) {
			best = c
		}
	}
	return best
}

func (r *Router) modelInfo() *placement.ModelInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.model
}

// ready reports whether some coordinator can serve every expert unit.
func (r *Router) ready(ctx context.Context) bool {
	r.mu.RLock()
	cs := make([]*coordConn, 0, len(r.coords))
	for _, c := range r.coords {
		cs = append(cs, c)
	}
	r.mu.RUnlock()
	for _, c := range cs {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := c.health.Check(cctx, &healthpb.HealthCheckRequest{Service: coordinatorHealthService})
		cancel()
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			return true
		}
	}
	return false
}
