package up

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/internal/placementtool"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// The control plane under stress: etcd paused past the leases, killed and
// restarted with and without its data, cut off in a network namespace, and
// the leader's election session expiring, each under concurrent greedy
// streams whose texts must equal a fault-free run's, with none failing.
//
// etcd is Debian's etcd-server binary, run as a process of its own, when it
// is installed (CI installs it; under CI=true its absence fails the test);
// else the embedded server, driven to reproduce each case: a pause is a
// stop, a wait and a restart after which every lease is revoked, as they
// would have expired.

const (
	outageModel   = "../../testdata/models/tiny-mixtral-q8_0.gguf"
	outageStreams = 4  // concurrent streams
	outageTokens  = 12 // per request
	// settle is how long the load runs after the cluster is whole again:
	// past the coordinator's re-register grace (10 s), when a controller
	// that drops the units of lapsed nodes would have.
	settle = 13 * time.Second
)

var outagePrompts = []string{"The list type", "def f(x):", "To open a file", "class Point:"}

func TestEtcdPause(t *testing.T) {
	for _, d := range []time.Duration{5 * time.Second, 20 * time.Second, 60 * time.Second} {
		t.Run(fmt.Sprint(d), func(t *testing.T) {
			e := newTestEtcd(t, "")
			runOutage(t, e, 1, func(t *testing.T, c *Cluster) string {
				e.pause(t)
				time.Sleep(d)
				e.resume(t)
				return fmt.Sprintf("etcd paused for %v", d)
			})
		})
	}
}

func TestEtcdRestart(t *testing.T) {
	t.Run("on its data", func(t *testing.T) {
		e := newTestEtcd(t, "")
		runOutage(t, e, 1, func(t *testing.T, c *Cluster) string {
			e.kill(t)
			time.Sleep(5 * time.Second) // past the node leases
			e.start(t, false)
			return "etcd killed, restarted on its data after 5 s"
		})
	})
	t.Run("empty", func(t *testing.T) {
		e := newTestEtcd(t, "")
		runOutageLosing(t, e, 1, true, func(t *testing.T, c *Cluster) string {
			e.kill(t)
			time.Sleep(5 * time.Second)
			e.start(t, true)
			return "etcd killed, restarted empty after 5 s"
		})
	})
}

// TestEtcdCutOff runs etcd in a network namespace of its own and takes
// the link to it down for 10 s: etcd runs on and expires every lease,
// while every role keeps serving.
func TestEtcdCutOff(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil && os.Getenv("CI") == "true" {
		t.Fatal("the ip command (iproute2) is not installed; .ci/run installs it")
	}
	ns := newNetns(t)
	e := newTestEtcd(t, ns.name)
	if e.proc == nil {
		t.Skip("etcd cut off: needs the etcd binary (etcd-server) to run it in a namespace")
	}
	e.host = ns.NSAddr
	runOutage(t, e, 1, func(t *testing.T, c *Cluster) string {
		if err := ipCmd("link", "set", ns.hostIf, "down"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		if err := ipCmd("link", "set", ns.hostIf, "up"); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("etcd (in namespace %s) cut off for 10 s", ns.name)
	})
}

// TestElectionSessionExpires revokes the leading coordinator's election
// session while streams run, as its expiry would: another coordinator
// takes over the controller, adopts the placement, and no generation is
// cancelled.
func TestElectionSessionExpires(t *testing.T) {
	e := newTestEtcd(t, "")
	runOutage(t, e, 2, func(t *testing.T, c *Cluster) string {
		cli := e.client(t)
		store := placement.NewStore(cli, "default")
		r, err := cli.Get(t.Context(), store.Election(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		if err != nil || len(r.Kvs) == 0 {
			t.Fatalf("no leader in %s: %v", store.Election(), err)
		}
		leader := r.Kvs[0]
		if _, err := cli.Revoke(t.Context(), clientv3.LeaseID(leader.Lease)); err != nil {
			t.Fatal(err)
		}
		// Wait until a leader holds the election again.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			r, err := cli.Get(t.Context(), store.Election(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
			if err == nil && len(r.Kvs) > 0 && string(r.Kvs[0].Key) != string(leader.Key) {
				time.Sleep(3 * time.Second) // the new leader's controller runs its first rounds
				return fmt.Sprintf("the election session of %s expired; %s leads now", leader.Value, r.Kvs[0].Value)
			}
			if time.Now().After(deadline) {
				t.Fatal("no leader was elected within 30 s of the session's expiry")
			}
		}
	})
}

// runOutage starts a cluster on e with 3 expert nodes, runs the load,
// injects the fault (which returns a description of it), keeps the load
// on until the cluster is whole and settle has passed, and checks that no
// request failed, every text equals the fault-free run's, and no epoch
// dropped a live node's units or placed afresh.
func runOutage(t *testing.T, e *testEtcd, coordinators int, fault func(*testing.T, *Cluster) string) {
	runOutageLosing(t, e, coordinators, false, fault)
}

// runOutageLosing is runOutage for a fault that may lose etcd's data
// (lostData): then the placement must be rebuilt above the last epoch.
func runOutageLosing(t *testing.T, e *testEtcd, coordinators int, lostData bool, fault func(*testing.T, *Cluster) string) {
	e.start(t, false)
	cfg := Config{ModelPath: outageModel, Coordinators: coordinators, Insecure: true, Logger: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if e.proc != nil {
		cfg.Etcd = e.endpoint()
	}
	c := start(t, cfg)
	e.cluster = c
	want, errs := make([]string, len(outagePrompts)), make([]error, len(outagePrompts))
	for i, p := range outagePrompts {
		want[i], errs[i] = streamTextN(c.URL, p, outageTokens)
		if errs[i] != nil {
			t.Fatalf("fault-free request %d: %v", i, errs[i])
		}
	}
	cli := e.client(t)
	store := placement.NewStore(cli, "default")

	l := startLoad(c.URL, want)
	time.Sleep(2 * time.Second)
	before := current(t, store)
	l.faultFrom.Store(time.Now().UnixNano())
	what := fault(t, c)
	l.faultTo.Store(time.Now().UnixNano())
	healed := time.Now()
	whole := waitWhole(t, store, 3, 90*time.Second)
	time.Sleep(settle)
	served, duringFault, failed, failures := l.stop()
	t.Logf("%s; the cluster was whole again %v later", what, whole.Sub(healed).Round(100*time.Millisecond))
	t.Logf("requests: %d served (%d in flight or begun while the fault lasted), %d failed", served, duringFault, failed)
	for _, f := range failures {
		t.Errorf("request failed or differed: %s", f)
	}
	if duringFault == 0 {
		t.Errorf("no request was served while the fault lasted: the test shows nothing")
	}

	var hist strings.Builder
	if err := placementtool.History(t.Context(), store, &hist, 100); err != nil {
		t.Fatal(err)
	}
	t.Logf("placement history (the epoch before the fault was %d):\n%s", before.Epoch, hist.String())
	after := current(t, store)
	changes, err := placement.List[placement.Change](t.Context(), store, store.HistoryPrefix())
	if err != nil {
		t.Fatal(err)
	}
	recovered := false
	for _, ch := range changes {
		for _, r := range ch.Reasons {
			if strings.Contains(r, "node gone") || strings.Contains(r, "afresh") || (ch.Epoch > before.Epoch && strings.Contains(r, "initial placement")) {
				t.Errorf("epoch %d by %s: %q", ch.Epoch, ch.By, r)
			}
			recovered = recovered || strings.Contains(r, "recovered: etcd had no placement")
		}
		if lostData && ch.Epoch <= before.Epoch {
			t.Errorf("epoch %d written after etcd lost its data is not above the last one before (%d): %v", ch.Epoch, before.Epoch, ch.Reasons)
		}
	}
	if lostData && !recovered {
		t.Error("no epoch says the placement was recovered after etcd lost its data")
	}
	if after.Epoch < before.Epoch || (lostData && after.Epoch == before.Epoch) {
		t.Errorf("placement epoch %d before the fault, %d after", before.Epoch, after.Epoch)
	}
	if units := len(c.modelUnits(t, store)); len(after.Units) != units {
		t.Errorf("placement after the fault places %d units, want all %d", len(after.Units), units)
	}
	for _, id := range []string{"node-1", "node-2", "node-3"} {
		if len(after.UnitsOf(id)) == 0 {
			t.Errorf("%s holds no units after the fault: %v", id, after.Units)
		}
	}
}

// load runs outageStreams streams at a time, over and over, comparing
// each text with want.
type load struct {
	// The fault's span (unix ns; faultTo 0 while it lasts): a request
	// whose own span overlaps it was served across the fault.
	faultFrom, faultTo atomic.Int64
	served, during     atomic.Int64
	mu                 sync.Mutex
	failures           []string
	failed             int
	stopping           chan struct{}
	wg                 sync.WaitGroup
}

func startLoad(url string, want []string) *load {
	l := &load{stopping: make(chan struct{})}
	for w := range outageStreams {
		l.wg.Go(func() {
			for i := w; ; i += outageStreams {
				select {
				case <-l.stopping:
					return
				default:
				}
				time.Sleep(10 * time.Millisecond) // leave the shared cores some room
				k := i % len(outagePrompts)
				began := time.Now().UnixNano()
				got, err := streamTextN(url, outagePrompts[k], outageTokens)
				switch {
				case err != nil:
					l.fail(fmt.Sprintf("%s: %v", time.Now().Format(time.TimeOnly), err))
				case got != want[k]:
					l.fail(fmt.Sprintf("prompt %q: got %q, want %q", outagePrompts[k], got, want[k]))
				default:
					l.served.Add(1)
					from, to := l.faultFrom.Load(), l.faultTo.Load()
					if from != 0 && time.Now().UnixNano() >= from && (to == 0 || began <= to) {
						l.during.Add(1)
					}
				}
			}
		})
	}
	return l
}

func (l *load) fail(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	if len(l.failures) < 10 {
		l.failures = append(l.failures, why)
	}
}

func (l *load) stop() (served, during int64, failed int, failures []string) {
	close(l.stopping)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served.Load(), l.during.Load(), l.failed, l.failures
}

// waitWhole waits until etcd holds the model record, a placement, and the
// registration and status of every one of n nodes, and returns when.
func waitWhole(t *testing.T, s *placement.Store, n int, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		nodes, err1 := placement.List[placement.Node](ctx, s, s.NodesPrefix())
		status, err2 := placement.List[placement.Status](ctx, s, s.StatusPrefix())
		err3 := s.Get(ctx, s.Placement(), new(placement.Map))
		err4 := s.Get(ctx, s.Model(), new(placement.ModelInfo))
		cancel()
		if err := errors.Join(err1, err2, err3, err4); err == nil && len(nodes) == n && len(status) == n {
			return time.Now()
		} else if time.Now().After(deadline) {
			t.Fatalf("the cluster was not whole %v after the fault: %d nodes, %d statuses, %v", limit, len(nodes), len(status), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func current(t *testing.T, s *placement.Store) placement.Map {
	t.Helper()
	var m placement.Map
	if err := s.Get(t.Context(), s.Placement(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// modelUnits lists the units of the served model, from its record.
func (c *Cluster) modelUnits(t *testing.T, s *placement.Store) []string {
	t.Helper()
	var m placement.ModelInfo
	if err := s.Get(t.Context(), s.Model(), &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range m.Units() {
		out = append(out, placement.UnitKey(u))
	}
	return out
}

// testLog sends the cluster's logs to t.Log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testEtcd is the etcd a case breaks: a process (proc set) or the
// cluster's embedded server.
type testEtcd struct {
	proc    *etcdProc
	host    string
	cluster *Cluster // set once started, for the embedded server
}

// newTestEtcd finds the etcd binary, or falls back to the embedded server.
// netns, when set, is the network namespace the process runs in.
func newTestEtcd(t *testing.T, netns string) *testEtcd {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the etcd binary (Debian's etcd-server) is not installed; .ci/run installs it")
		}
		t.Logf("no etcd binary (%v): driving the embedded server instead", err)
		return &testEtcd{}
	}
	dir := t.TempDir()
	p := &etcdProc{bin: bin, dir: filepath.Join(dir, "data"), netns: netns, log: filepath.Join(dir, "etcd.log")}
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT) // a failed test may leave it stopped
		p.signal(syscall.SIGKILL)
		p.wait()
		if t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				t.Logf("etcd's log:\n%s", lastLines(string(b), 40))
			}
		}
	})
	return &testEtcd{proc: p, host: "127.0.0.1"}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (e *testEtcd) endpoint() string {
	if e.proc != nil {
		return e.proc.endpoint()
	}
	return e.cluster.Etcd
}

// start starts etcd (again), empty or on its data.
func (e *testEtcd) start(t *testing.T, empty bool) {
	t.Helper()
	switch {
	case e.proc != nil:
		if empty {
			if err := os.RemoveAll(e.proc.dir); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.proc.start(t.Context(), e.host); err != nil {
			t.Fatal(err)
		}
	case e.cluster == nil: // the cluster starts the embedded server
	case empty:
		if err := e.cluster.StartEtcdEmpty(t.Context()); err != nil {
			t.Fatal(err)
		}
	default:
		if err := e.cluster.StartEtcd(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *testEtcd) kill(t *testing.T) {
	if e.proc == nil {
		e.cluster.StopEtcd()
		return
	}
	e.proc.signal(syscall.SIGKILL)
	e.proc.wait()
}

// pause stops etcd where it stands (SIGSTOP); resume lets it go on, and it
// finds every lease expired. The embedded server cannot be stopped so: it
// is closed, and resume restarts it and revokes every lease.
func (e *testEtcd) pause(t *testing.T) {
	if e.proc == nil {
		e.cluster.StopEtcd()
		return
	}
	if err := e.proc.signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (e *testEtcd) resume(t *testing.T) {
	if e.proc != nil {
		if err := e.proc.signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := e.cluster.StartEtcd(t.Context()); err != nil {
		t.Fatal(err)
	}
	cli := e.client(t)
	leases, err := cli.Leases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Leases {
		cli.Revoke(t.Context(), l.ID)
	}
}

// client is a client of the test's own.
func (e *testEtcd) client(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := etcdclient.New([]string{e.endpoint()}, e.cluster.TLS.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// etcdProc is Debian's etcd as a process of its own.
type etcdProc struct {
	bin, dir, netns, log string
	clientPort, peerPort int
	host                 string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *etcdProc) endpoint() string {
	return "http://" + net.JoinHostPort(p.host, fmt.Sprint(p.clientPort))
}

// start runs etcd on host, on the ports of its first start, and waits
// until it answers.
func (p *etcdProc) start(ctx context.Context, host string) error {
	if p.clientPort == 0 {
		p.host = host
		for _, port := range []*int{&p.clientPort, &p.peerPort} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			*port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
	}
	peer := "http://" + net.JoinHostPort(p.host, fmt.Sprint(p.peerPort))
	args := []string{"--name", "switchyard", "--data-dir", p.dir,
		"--listen-client-urls", p.endpoint(), "--advertise-client-urls", p.endpoint(),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "switchyard=" + peer, "--initial-cluster-state", "new", "--logger", "zap", "--log-outputs", "stderr"}
	name, argv := p.bin, args
	if p.netns != "" {
		name, argv = "ip", append([]string{"netns", "exec", p.netns, p.bin}, args...)
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(name, argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting etcd: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	cli, err := etcdclient.New([]string{p.endpoint()}, nil)
	if err != nil {
		return err
	}
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(rctx, "health")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("etcd exited at start (see %s): %w", p.log, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd did not answer within 30 s: %w", err)
		}
	}
}

func (p *etcdProc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.cmd.Process.Signal(sig)
}

func (p *etcdProc) wait() {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}
