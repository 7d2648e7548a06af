// Package up runs a whole cluster in one process: an embedded etcd, N
// expert nodes, a coordinator and the router, each started through the
// same Run entry point its own subcommand uses, talking real gRPC on
// loopback ports.
package up

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard-llm/switchyard/coordinator"
	expertnode "github.com/switchyard-llm/switchyard/expert-node"
	"github.com/switchyard-llm/switchyard/internal/cachedir"
	"github.com/switchyard-llm/switchyard/internal/demomodel"
	"github.com/switchyard-llm/switchyard/internal/embedetcd"
	"github.com/switchyard-llm/switchyard/internal/tlsconfig"
	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/httpfile"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
	"github.com/switchyard-llm/switchyard/router"
)

// Config of a local cluster.
type Config struct {
	// ModelPath is the GGUF file to serve; "" means the embedded demo
	// model, written to CacheDir on first use.
	ModelPath   string
	CacheDir    string // "" means cachedir.Choose's default
	ExpertNodes int    // 0 means 3
	// Coordinators behind the router; 0 means 1. With more than one, a
	// coordinator's requests are resumed on another if it dies.
	Coordinators int
	Replicas     int    // copies of each unit; 0 means 1
	Listen       string // router address; "" means 127.0.0.1:8080
	// Host is the address etcd and the gRPC roles listen on; "" means
	// 127.0.0.1 (tests use another to reach nodes in network namespaces).
	Host     string
	Encoding pb.Encoding
	// ChatTemplate is used when the model file has no chat template; nil
	// means the plain template for the demo model and none otherwise.
	ChatTemplate *chat.Template
	Logger       *slog.Logger
	// MetricsPerExpert adds per-(layer, expert) series to /metrics.
	MetricsPerExpert bool
	// Processes runs each expert node and coordinator as its own OS
	// process (Binary expert-node|coordinator …), so that faults can be
	// injected for real.
	Processes bool
	Binary    string    // the switchyard binary; "" means this executable
	LogOutput io.Writer // where child processes log; nil discards
	// APIKeysFile turns on API keys on the router (see router.Config).
	APIKeysFile string
	// Insecure turns off the default: mutual TLS on every gRPC connection
	// and on etcd with an ephemeral CA, and encrypted gossip.
	Insecure bool
	// ShutdownGrace is how long running requests have to finish when the
	// cluster stops (see router.Config); 0 means 10s.
	ShutdownGrace time.Duration
	// DashboardPublic opens the dashboard and the routing statistics
	// without an API key (see router.Config).
	DashboardPublic bool
	// ReasoningFormat says where chat replies' reasoning goes (see
	// router.Config); the zero value splits it out.
	ReasoningFormat chat.ReasoningFormat
	// DrainTimeout is each expert node process's --drain-timeout; 0
	// means 30s.
	DrainTimeout time.Duration
	// UnitWait bounds how long a step waits for a unit with no ready
	// replica; 0 means the coordinator's default.
	UnitWait time.Duration
	// Etcd is the client URL of an etcd to use instead of starting an
	// embedded one ("" starts one), as the fault tests run Debian's etcd
	// as a process of its own. It needs Insecure: the ephemeral
	// certificates are made for the embedded server.
	Etcd string
	// KVCacheBytes, KVCacheType, NoPrefixCache and QueueTimeout go to every
	// coordinator (see coordinator.Config); zero values mean its defaults.
	KVCacheBytes  int64
	KVCacheType   tensor.DType
	NoPrefixCache bool
	QueueTimeout  time.Duration
}

// Cluster is a running local cluster.
type Cluster struct {
	URL  string // the router's base URL
	Etcd string // the embedded etcd's client URL
	// TLS is the ephemeral identity every component uses (nil when
	// Insecure): clients of etcd and of the gRPC roles need it.
	TLS     *tlsconfig.Pair
	CA      *tlsconfig.CA
	procs   []*proc // expert nodes, in process mode
	coords  []*proc // coordinators, in process mode
	g       *errgroup.Group
	cancel  context.CancelFunc
	etcd    *embedetcd.Server
	dataDir string
	dirLock *os.File // held while the cluster runs: see etcdDataDir
	// stopRouter stops the router, which lets running requests finish;
	// routerDone is closed once it has.
	stopRouter context.CancelFunc
	routerDone chan struct{}
}

// Start brings the cluster up and returns once the router reports ready.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.ExpertNodes == 0 {
		cfg.ExpertNodes = 3
	}
	if cfg.ExpertNodes < 1 {
		return nil, errors.New("up: --expert-nodes must be at least 1")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.ModelPath == "" || httpfile.IsURL(cfg.ModelPath) {
		dir, warning, err := cachedir.Choose(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
		if warning != "" {
			cfg.Logger.Warn(warning)
		}
		cfg.CacheDir = dir
	}
	fallback := cfg.ChatTemplate
	if cfg.ModelPath == "" {
		p, err := demomodel.Path(cfg.CacheDir)
		if err != nil {
			return nil, err
		}
		cfg.ModelPath = p
		// The demo model carries no chat template: chat with the plain one.
		if fallback == nil {
			if fallback, err = chat.New("plain", chat.Plain, "", ""); err != nil {
				return nil, err
			}
		}
	}
	if !httpfile.IsURL(cfg.ModelPath) {
		if _, err := os.Stat(cfg.ModelPath); err != nil {
			return nil, fmt.Errorf("up: model: %w", err)
		}
	}
	routerLis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("up: router: %w", err)
	}
	dataDir, dirLock, err := etcdDataDir(cfg.Logger)
	if err != nil {
		routerLis.Close()
		return nil, err
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	var (
		pair      *tlsconfig.Pair
		ca        *tlsconfig.CA
		etcdTLS   *embedetcd.TLSFiles
		gossipKey []byte
		tlsArgs   []string // for child processes
	)
	if !cfg.Insecure {
		if pair, ca, etcdTLS, tlsArgs, gossipKey, err = ephemeralTLS(dataDir, cfg.Host); err != nil {
			routerLis.Close()
			os.RemoveAll(dataDir)
			dirLock.Close()
			return nil, err
		}
	}
	var etcd *embedetcd.Server
	endpoint := cfg.Etcd
	switch {
	case endpoint != "" && !cfg.Insecure:
		routerLis.Close()
		os.RemoveAll(dataDir)
		dirLock.Close()
		return nil, errors.New("up: an etcd of one's own (Config.Etcd) needs Insecure")
	case endpoint == "":
		if etcd, err = embedetcd.Start(ctx, dataDir, cfg.Host, 0, etcdTLS); err != nil {
			routerLis.Close()
			os.RemoveAll(dataDir)
			dirLock.Close()
			return nil, err
		}
		endpoint = etcd.Endpoint
		cfg.Logger.Info("embedded etcd serving", "endpoint", endpoint, "data", dataDir)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Cluster{URL: "http://" + routerLis.Addr().String(), Etcd: endpoint, TLS: pair, CA: ca, cancel: cancel, etcd: etcd, dataDir: dataDir, dirLock: dirLock}
	g, gctx := errgroup.WithContext(rctx)
	c.g = g
	endpoints := []string{endpoint}
	// One registry for the whole process, served by the router's /metrics;
	// each component's series carry its ID.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labelled := func(id string) prometheus.Registerer {
		return prometheus.WrapRegistererWith(prometheus.Labels{"component": id}, reg)
	}
	for i := range cfg.ExpertNodes {
		id := fmt.Sprintf("node-%d", i+1)
		if cfg.Processes {
			p, err := newProc(cfg.Binary, id, cfg.LogOutput, append([]string{"expert-node", "--etcd", endpoint, "--listen", net.JoinHostPort(cfg.Host, "0"),
				"--model", cfg.ModelPath, "--node-id", id, "--drain-timeout", cfg.DrainTimeout.String(), "--shared-cores", "--cache-dir", cfg.CacheDir}, tlsArgs...))
			if err == nil {
				err = p.start()
			}
			if err != nil {
				c.Close()
				return nil, err
			}
			c.procs = append(c.procs, p)
			continue
		}
		lis, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("up: expert node: %w", err)
		}
		g.Go(func() error {
			return expertnode.Run(gctx, expertnode.Config{NodeID: id, Etcd: endpoints, Listener: lis, ModelPath: cfg.ModelPath, CacheDir: modelCache(cfg.CacheDir, id),
				Logger: cfg.Logger, Registerer: labelled(id), TLS: pair, GossipKey: gossipKey})
		})
	}
	for i := range max(1, cfg.Coordinators) {
		id := fmt.Sprintf("coordinator-%d", i+1)
		if cfg.Processes {
			args := []string{"coordinator", "--etcd", endpoint, "--listen", net.JoinHostPort(cfg.Host, "0"), "--model", cfg.ModelPath,
				"--id", id, "--min-nodes", fmt.Sprint(cfg.ExpertNodes), "--replicas", fmt.Sprint(max(1, cfg.Replicas)), "--shared-cores",
				"--kv-cache-bytes", fmt.Sprint(cfg.KVCacheBytes), "--prefix-cache", map[bool]string{false: "on", true: "off"}[cfg.NoPrefixCache]}
			if cfg.KVCacheType != 0 {
				args = append(args, "--kv-cache-type", strings.ToLower(cfg.KVCacheType.String()))
			}
			if cfg.QueueTimeout > 0 {
				args = append(args, "--queue-timeout", cfg.QueueTimeout.String())
			}
			if cfg.CacheDir != "" {
				args = append(args, "--cache-dir", cfg.CacheDir)
			}
			if fallback != nil {
				args = append(args, "--chat-template", "plain")
			}
			p, err := newProc(cfg.Binary, id, cfg.LogOutput, append(args, tlsArgs...))
			if err == nil {
				err = p.start()
			}
			if err != nil {
				c.Close()
				return nil, err
			}
			c.coords = append(c.coords, p)
			continue
		}
		coordLis, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("up: coordinator: %w", err)
		}
		g.Go(func() error {
			return coordinator.Run(gctx, coordinator.Config{ID: id, Etcd: endpoints, Listener: coordLis,
				ModelPath: cfg.ModelPath, Replicas: cfg.Replicas, MinNodes: cfg.ExpertNodes, Encoding: cfg.Encoding,
				FallbackTemplate: fallback, Logger: cfg.Logger, Registerer: labelled(id), MetricsPerExpert: cfg.MetricsPerExpert,
				UnitWait: cfg.UnitWait, TLS: pair, GossipKey: gossipKey, CacheDir: modelCache(cfg.CacheDir, id),
				KVCacheBytes: cfg.KVCacheBytes, NoPrefixCache: cfg.NoPrefixCache, QueueTimeout: cfg.QueueTimeout, KVCacheType: cfg.KVCacheType})
		})
	}
	routerCtx, stopRouter := context.WithCancel(gctx)
	c.stopRouter, c.routerDone = stopRouter, make(chan struct{})
	g.Go(func() error {
		defer close(c.routerDone)
		return router.Run(routerCtx, router.Config{Etcd: endpoints, Listener: routerLis, Logger: cfg.Logger,
			Registerer: labelled("router"), Gatherer: reg, APIKeysFile: cfg.APIKeysFile, TLS: pair,
			ShutdownGrace: cfg.ShutdownGrace, DashboardPublic: cfg.DashboardPublic, ReasoningFormat: cfg.ReasoningFormat})
	})
	if err := c.waitReady(ctx, gctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) waitReady(ctx, gctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(c.URL + "/readyz") // public even with API keys
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-gctx.Done():
			return fmt.Errorf("up: a component stopped while starting: %w", c.g.Wait())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("up: the cluster was not ready after 2 minutes")
}

// Wait blocks until a component fails or the cluster is closed.
func (c *Cluster) Wait() error { return c.g.Wait() }

// Close stops every component and the embedded etcd, and removes its data.
// The router goes first: it stops taking requests and gives running ones
// its shutdown grace while the roles behind it still serve them.
func (c *Cluster) Close() error {
	if c.stopRouter != nil {
		c.stopRouter()
		<-c.routerDone
	}
	for _, p := range append(c.coords, c.procs...) {
		p.stop()
	}
	c.cancel()
	err := c.g.Wait()
	if c.etcd != nil {
		c.etcd.Close()
	}
	os.RemoveAll(c.dataDir)
	c.dirLock.Close()
	return err
}

// modelCache is where a role keeps what it fetches of a model URL:
// <cache>/models/<id>; "" when there is no cache directory (a local model).
func modelCache(cache, id string) string {
	if cache == "" {
		return ""
	}
	return filepath.Join(cache, "models", id)
}

// Run starts the cluster, calls ready with the router's URL, and serves
// until ctx ends.
func Run(ctx context.Context, cfg Config, ready func(url string)) error {
	c, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	ready(c.URL)
	errc := make(chan error, 1)
	go func() { errc <- c.Wait() }()
	select {
	case <-ctx.Done():
		return c.Close()
	case err := <-errc:
		c.Close()
		return err
	}
}

// ephemeralTLS makes a throwaway CA and certificate, writes them into dir
// for etcd and child processes, and makes a gossip key.
func ephemeralTLS(dir, host string) (*tlsconfig.Pair, *tlsconfig.CA, *embedetcd.TLSFiles, []string, []byte, error) {
	ca, err := tlsconfig.NewCA("switchyard up (ephemeral)")
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	certPEM, keyPEM, err := ca.Issue("switchyard", []string{host})
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	files := &embedetcd.TLSFiles{Cert: filepath.Join(dir, "tls.pem"), Key: filepath.Join(dir, "tls-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	for path, b := range map[string][]byte{files.Cert: certPEM, files.Key: keyPEM, files.CA: ca.CertPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, nil, nil, nil, nil, fmt.Errorf("up: %w", err)
		}
	}
	pair, err := tlsconfig.Load(files.Cert, files.Key, files.CA)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, nil, nil, nil, err
	}
	// The gossip key goes to child processes in a file (ps shows arguments).
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("up: %w", err)
	}
	args := []string{"--tls-cert", files.Cert, "--tls-key", files.Key, "--tls-ca", files.CA, "--gossip-key-file", keyFile}
	return pair, ca, files, args, key, nil
}
