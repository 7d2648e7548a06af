// Package netbench runs a cluster whose coordinator and expert nodes are
// separate processes, each in a Linux network namespace of its own, joined
// by veth pairs to a bridge, with a round-trip delay added between the
// coordinator and every node and, optionally, a link rate: what `switchyard
// bench --netns` measures. The delay comes from netem where the kernel has
// it, else from an in-process toxiproxy per node (Shopify's, with a latency
// toxic of microseconds: its own counts whole milliseconds); the rate from
// tbf. etcd and the router run in this process, on the bridge's address.
// Everything it creates (namespaces, links, proxies, processes) is removed
// by Close, which Start also runs when it fails. It needs root and iproute2.
package netbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchyard-llm/switchyard/internal/embedetcd"
	"github.com/switchyard-llm/switchyard/router"
)

// Config of a namespaced cluster.
type Config struct {
	Binary      string // the switchyard binary; "" means this executable
	ModelPath   string // required
	ExpertNodes int    // at least 1
	// LinkRate is each node's link rate as tc writes it ("10gbit"); ""
	// means none.
	LinkRate string
	// MicroBatches and Activations go to the coordinator
	// (--micro-batches, --activations); zero values mean its defaults.
	MicroBatches int
	Activations  string
	CacheDir     string // the roles' --cache-dir; "" means a temporary one
	Logger       *slog.Logger
	LogOutput    io.Writer // the child processes' logs; nil discards
}

// Cluster is a running namespaced cluster.
type Cluster struct {
	URL   string // the router
	Delay string // "netem" or "toxiproxy": what adds the round trip

	cfg     Config
	log     *slog.Logger
	id      int
	bridge  string
	nss     []string // namespaces made
	links   []string // host-side links made
	procs   []*exec.Cmd
	proxies []*toxiproxy.Proxy
	etcd    *embedetcd.Server
	dir     string
	stop    context.CancelFunc
	routerW sync.WaitGroup
	netem   []string // links whose netem qdisc sets the delay
}

// Check says why a namespaced cluster cannot run here, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("netbench: needs root (network namespaces, veth links, tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netbench: needs %s (iproute2)", tool)
		}
	}
	return nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addr is the bridge subnet's address of host k: 1 is this process, 2 the
// coordinator, 10 + i node i.
func (c *Cluster) addr(k int) string { return fmt.Sprintf("10.216.%d.%d", c.id, k) }

// Start makes the network, starts etcd and the router here and the roles
// in their namespaces, and returns once the router is ready.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if cfg.ExpertNodes < 1 || cfg.ExpertNodes > 200 || cfg.ModelPath == "" {
		return nil, fmt.Errorf("netbench: %d expert nodes (1 to 200) of model %q", cfg.ExpertNodes, cfg.ModelPath)
	}
	if cfg.Binary == "" {
		if cfg.Binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("netbench: %w", err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c = &Cluster{cfg: cfg, log: log, id: os.Getpid() % 250}
	c.bridge = fmt.Sprintf("sybr%d", c.id)
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	if c.dir, err = os.MkdirTemp("", "switchyard-netbench-"); err != nil {
		return c, fmt.Errorf("netbench: %w", err)
	}
	if cfg.CacheDir == "" {
		c.cfg.CacheDir = c.dir
	}
	if err := c.network(); err != nil {
		return c, err
	}
	if c.etcd, err = embedetcd.Start(ctx, c.dir+"/etcd", c.addr(1), 0, nil); err != nil {
		return c, err
	}
	if err := c.startNodes(); err != nil {
		return c, err
	}
	if err := c.startCoordinator(); err != nil {
		return c, err
	}
	return c, c.startRouter(ctx)
}

// network makes the bridge and a namespace per role, joined to it, with
// the link rate on both ends of each node's link.
func (c *Cluster) network() error {
	steps := [][]string{
		{"ip", "link", "add", c.bridge, "type", "bridge"},
		{"ip", "addr", "add", c.addr(1) + "/24", "dev", c.bridge},
		{"ip", "link", "set", c.bridge, "up"},
	}
	c.links = append(c.links, c.bridge)
	for _, s := range steps {
		if err := run(s...); err != nil {
			return fmt.Errorf("netbench: %w", err)
		}
	}
	hosts := []int{2}
	for i := range c.cfg.ExpertNodes {
		hosts = append(hosts, 10+i)
	}
	for _, k := range hosts {
		ns := fmt.Sprintf("sy-nb%d-%d", c.id, k)
		host, peer := fmt.Sprintf("synb%dh%d", c.id, k), fmt.Sprintf("synb%dn%d", c.id, k)
		c.nss = append(c.nss, ns)
		c.links = append(c.links, host)
		steps := [][]string{
			{"ip", "netns", "add", ns},
			{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
			{"ip", "link", "set", peer, "netns", ns},
			{"ip", "link", "set", host, "master", c.bridge},
			{"ip", "link", "set", host, "up"},
			{"ip", "netns", "exec", ns, "ip", "addr", "add", c.addr(k) + "/24", "dev", peer},
			{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
			{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		}
		if c.cfg.LinkRate != "" && k >= 10 {
			burst, err := burstOf(c.cfg.LinkRate)
			if err != nil {
				return err
			}
			tbf := []string{"root", "tbf", "rate", c.cfg.LinkRate, "burst", burst, "latency", "50ms"}
			steps = append(steps, append([]string{"tc", "qdisc", "add", "dev", host}, tbf...),
				append([]string{"ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", peer}, tbf...))
		}
		for _, s := range steps {
			if err := run(s...); err != nil {
				return fmt.Errorf("netbench: %w", err)
			}
		}
	}
	// netem, where the kernel has it, delays a node's link itself (half the
	// round trip each way); without a rate it can sit at the root.
	if c.cfg.LinkRate == "" && run("tc", "qdisc", "add", "dev", fmt.Sprintf("synb%dh%d", c.id, 10), "root", "netem", "delay", "0us") == nil {
		c.Delay = "netem"
		for i := range c.cfg.ExpertNodes {
			c.netem = append(c.netem, fmt.Sprintf("synb%dh%d", c.id, 10+i))
		}
	} else {
		c.Delay = "toxiproxy"
	}
	return nil
}

// burstOf is a tbf burst for rate: 10 ms of it, at least 64 KiB.
func burstOf(rate string) (string, error) {
	r := strings.ToLower(rate)
	mult := 1.0
	for _, u := range []struct {
		s string
		m float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if rest, ok := strings.CutSuffix(r, u.s); ok {
			r, mult = rest, u.m
			break
		}
	}
	f, err := strconv.ParseFloat(r, 64)
	if err != nil || f <= 0 {
		return "", fmt.Errorf("netbench: link rate %q: want a tc rate such as 10gbit", rate)
	}
	return strconv.Itoa(max(64<<10, int(f*mult/8/100))), nil
}

// nodePort is where every node serves gRPC, in its own namespace.
const nodePort = 9100

func (c *Cluster) startNodes() error {
	for i := range c.cfg.ExpertNodes {
		k := 10 + i
		advertise := net.JoinHostPort(c.addr(k), strconv.Itoa(nodePort))
		if c.Delay == "toxiproxy" {
			p, err := c.proxy(fmt.Sprintf("node-%d", i+1), advertise)
			if err != nil {
				return err
			}
			advertise = p.Listen
		}
		args := []string{"expert-node", "--etcd", c.etcd.Endpoint, "--listen", net.JoinHostPort(c.addr(k), strconv.Itoa(nodePort)),
			"--advertise", advertise, "--gossip-advertise", c.addr(k), "--model", c.cfg.ModelPath,
			"--node-id", fmt.Sprintf("node-%d", i+1), "--shared-cores", "--cache-dir", c.cfg.CacheDir}
		if err := c.spawn(c.nss[1+i], args); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startCoordinator() error {
	args := []string{"coordinator", "--etcd", c.etcd.Endpoint, "--listen", net.JoinHostPort(c.addr(2), "9200"),
		"--model", c.cfg.ModelPath, "--id", "coordinator-1", "--min-nodes", strconv.Itoa(c.cfg.ExpertNodes),
		"--shared-cores", "--cache-dir", c.cfg.CacheDir, "--chat-template", "plain"}
	if c.cfg.MicroBatches > 0 {
		args = append(args, "--micro-batches", strconv.Itoa(c.cfg.MicroBatches))
	}
	if c.cfg.Activations != "" {
		args = append(args, "--activations", c.cfg.Activations)
	}
	return c.spawn(c.nss[0], args)
}

// spawn runs the binary with args in namespace ns.
func (c *Cluster) spawn(ns string, args []string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, c.cfg.Binary}, args...)...)
	cmd.Stdout, cmd.Stderr = c.cfg.LogOutput, c.cfg.LogOutput
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with this process, whatever happens
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("netbench: start %s in %s: %w", args[0], ns, err)
	}
	c.procs = append(c.procs, cmd)
	return nil
}

// proxy starts a toxiproxy on the bridge's address forwarding to upstream.
func (c *Cluster) proxy(name, upstream string) (*toxiproxy.Proxy, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, net.JoinHostPort(c.addr(1), "0"), upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("netbench: proxy for %s: %w", name, err)
	}
	c.proxies = append(c.proxies, p)
	return p, nil
}

func (c *Cluster) startRouter(ctx context.Context) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("netbench: router: %w", err)
	}
	c.URL = "http://" + lis.Addr().String()
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = stop
	c.routerW.Add(1)
	go func() {
		defer c.routerW.Done()
		if err := router.Run(rctx, router.Config{Etcd: []string{c.etcd.Endpoint}, Listener: lis, Logger: c.log,
			Registerer: prometheus.NewRegistry(), DashboardPublic: true}); err != nil && rctx.Err() == nil {
			c.log.Error("router", "err", err)
		}
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(c.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		for _, p := range c.procs {
			if p.ProcessState != nil {
				return fmt.Errorf("netbench: %s exited while starting", p.Args)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("netbench: the cluster was not ready after 3 minutes")
}

// SetRTT sets the round trip added between the coordinator and every
// node: 0 removes it (calls still go through the proxies).
func (c *Cluster) SetRTT(rtt time.Duration) error {
	half := rtt / 2
	if c.Delay == "netem" {
		for i, link := range c.netem {
			us := strconv.FormatInt(half.Microseconds(), 10) + "us"
			if err := run("tc", "qdisc", "replace", "dev", link, "root", "netem", "delay", us); err != nil {
				return fmt.Errorf("netbench: %w", err)
			}
			peer := fmt.Sprintf("synb%dn%d", c.id, 10+i)
			if err := run("ip", "netns", "exec", c.nss[1+i], "tc", "qdisc", "replace", "dev", peer, "root", "netem", "delay", us); err != nil {
				return fmt.Errorf("netbench: %w", err)
			}
		}
		return nil
	}
	for _, p := range c.proxies {
		for _, dir := range []string{"upstream", "downstream"} {
			name := "delay_" + dir
			if p.Toxics.GetToxic(name) != nil {
				if err := p.Toxics.RemoveToxic(context.Background(), name); err != nil {
					return fmt.Errorf("netbench: %w", err)
				}
			}
			if rtt == 0 {
				continue
			}
			body := fmt.Sprintf(`{"name":%q,"type":"latency_us","stream":%q,"toxicity":1,"attributes":{"latency_us":%d}}`, name, dir, half.Microseconds())
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
				return fmt.Errorf("netbench: delay on %s: %w", p.Name, err)
			}
		}
	}
	return nil
}

// Close stops the roles, the router, the proxies and etcd, and removes
// every namespace and link made. It may be called more than once.
func (c *Cluster) Close() error {
	for _, p := range c.procs {
		if p.Process != nil && p.ProcessState == nil {
			p.Process.Signal(syscall.SIGINT)
		}
	}
	for _, p := range c.procs {
		if p.Process == nil || p.ProcessState != nil {
			continue
		}
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	c.procs = nil
	if c.stop != nil {
		c.stop()
		c.routerW.Wait()
		c.stop = nil
	}
	for _, p := range c.proxies {
		p.Stop()
	}
	c.proxies = nil
	if c.etcd != nil {
		c.etcd.Close()
		c.etcd = nil
	}
	var errs []error
	for _, ns := range c.nss {
		if err := run("ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	c.nss = nil
	for _, l := range c.links {
		run("ip", "link", "del", l) // most went with their namespace's peer
	}
	c.links = nil
	if c.dir != "" {
		os.RemoveAll(c.dir)
		c.dir = ""
	}
	return errors.Join(errs...)
}

// latencyUS is toxiproxy's latency toxic in microseconds: its own counts
// whole milliseconds, and the round trips measured start at 0.2 ms. Each
// chunk is held until its arrival time plus the latency, so a stream's
// chunks are delayed by the same amount whatever their number.
type latencyUS struct {
	LatencyUS int64 `json:"latency_us"`
}

func (t *latencyUS) Pipe(stub *toxics.ToxicStub) {
	d := time.Duration(t.LatencyUS) * time.Microsecond
	for {
		select {
		case <-stub.Interrupt:
			return
		case ch := <-stub.Input:
			if ch == nil {
				stub.Close()
				return
			}
			release(stub, ch, d)
		}
	}
}

func release(stub *toxics.ToxicStub, ch *stream.StreamChunk, d time.Duration) {
	if wait := d - time.Since(ch.Timestamp); wait > 0 {
		select {
		case <-time.After(wait):
		case <-stub.Interrupt:
		}
	}
	stub.Output <- ch
}

func init() { toxics.Register("latency_us", new(latencyUS)) }
