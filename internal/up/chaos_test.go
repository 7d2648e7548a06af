package up

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/internal/placementtool"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the switchyard command once for the process-mode tests.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := filepathTemp()
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "switchyard")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/switchyard").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// workload runs n concurrent greedy streams and returns their texts.
func workload(t *testing.T, url string, n, tokens int) ([]string, []error) {
	texts, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		prompt := fmt.Sprintf("%s %d", []string{"The list type", "def f(x):", "To open a file", "class Point:"}[i%4], i)
		wg.Go(func() { texts[i], errs[i] = streamTextN(url, prompt, tokens) })
	}
	wg.Wait()
	return texts, errs
}

// TestChaosKillNode runs 32 concurrent greedy streams against expert nodes
// running as processes, kills one with SIGKILL mid-run and starts it again
// later: every request must complete with the text of a fault-free run.
// With 2 replicas the dispatcher resends to the other replica; with 1 the
// controller places the lost units again and the step waits for them.
func TestChaosKillNode(t *testing.T) {
	bin := binary(t)
	for _, replicas := range []int{2, 1} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			bg, ctx := background(t) // before start: its cleanup runs after the cluster's
			c := start(t, Config{Processes: true, Binary: bin, Replicas: replicas})
			want, errs := workload(t, c.URL, 32, 48)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("fault-free stream %d: %v", i, err)
				}
			}
			started := firstTokens(t, c.URL)
			done := make(chan struct{})
			var got []string
			bg.Go(func() {
				got, errs = workload(t, c.URL, 32, 48)
				close(done)
			})
			awaitFirstTokens(t, c.URL, started+32)
			killed := time.Now()
			if err := c.KillNode(1); err != nil {
				t.Fatal(err)
			}
			// How long until a new request is served without node-2: one
			// one-token request after another until one succeeds.
			served := make(chan time.Duration, 1)
			bg.Go(func() {
				for ctx.Err() == nil {
					if completeOne(ctx, c.URL) == nil {
						served <- time.Since(killed)
						return
					}
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			})
			select {
			case <-done:
			case <-time.After(90 * time.Second):
				t.Fatal("the workload did not finish within 90 s of the kill")
			}
			t.Logf("workload finished %v after the kill", time.Since(killed).Round(time.Millisecond))
			select {
			case d := <-served:
				t.Logf("kill -9 → a new request served in %v", d.Round(time.Millisecond))
			case <-time.After(30 * time.Second):
				t.Error("no new request was served within 30 s of the workload's end")
			}
			for i := range got {
				if errs[i] != nil {
					t.Errorf("stream %d failed: %v", i, errs[i])
				} else if got[i] != want[i] {
					t.Errorf("stream %d differs from the fault-free run:\n got %q\nwant %q", i, got[i], want[i])
				}
			}
			// The kill hit traffic in flight: calls to node-2 failed and were resent.
			for _, n := range getReport(t, c.URL, "all").Nodes {
				if n.ID == "node-2" && n.Retries == 0 {
					t.Errorf("no call to the killed node was resent: %+v", n)
				}
			}
			calls := func() uint64 {
				for _, n := range getReport(t, c.URL, "all").Nodes {
					if n.ID == "node-2" {
						return n.Calls
					}
				}
				return 0
			}
			before := calls()
			joined := time.Now()
			if err := c.StartNode(1); err != nil {
				t.Fatal(err)
			}
			// The controller gives the returning node units back; measure
			// until it serves its first Forward.
			for calls() == before {
				if time.Since(joined) > 60*time.Second {
					t.Fatal("the restarted node served nothing within 60 s")
				}
				workload(t, c.URL, 4, 8)
			}
			t.Logf("node-2 restarted → first Forward served in %v", time.Since(joined).Round(time.Millisecond))
			again, errs := workload(t, c.URL, 8, 16)
			for i := range again {
				if errs[i] != nil {
					t.Errorf("after restart, stream %d: %v", i, errs[i])
				}
			}
		})
	}
}

// TestDrainUnderLoad stops a node with SIGTERM while streams run: it
// drains (the controller moves its units away first) with zero errors.
func TestDrainUnderLoad(t *testing.T) {
	bin := binary(t)
	bg, _ := background(t)
	c := start(t, Config{Processes: true, Binary: bin})
	started := firstTokens(t, c.URL)
	done := make(chan struct{})
	var errs []error
	bg.Go(func() {
		_, errs = workload(t, c.URL, 16, 64)
		close(done)
	})
	awaitFirstTokens(t, c.URL, started+16)
	if err := c.DrainNode(2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	<-done
	for i, err := range errs {
		if err != nil {
			t.Errorf("stream %d: %v", i, err)
		}
	}
	rep := getReport(t, c.URL, "all")
	for _, n := range rep.Nodes {
		if n.ID == "node-3" && n.Health != "down" {
			t.Errorf("drained node-3 still %s", n.Health)
		}
	}
}

// seededWorkload runs n concurrent streams, half greedy and half sampled
// with fixed seeds, and returns their texts.
func seededWorkload(t *testing.T, url string, n, tokens int) ([]string, []error) {
	texts, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		body := map[string]any{"prompt": fmt.Sprintf("%s %d", []string{"The list type", "def f(x):"}[i%2], i),
			"max_tokens": tokens, "stream": true, "temperature": 0}
		if i%2 == 1 {
			body["temperature"], body["seed"], body["top_p"] = 0.9, 100+i, 0.95
		}
		wg.Go(func() { texts[i], errs[i] = streamBody(url, body) })
	}
	wg.Wait()
	return texts, errs
}

// TestCoordinatorLoss kills one of two coordinators (processes) mid-stream:
// the router resumes its requests on the other, and every stream — greedy
// and seeded — equals the fault-free run.
func TestCoordinatorLoss(t *testing.T) {
	bin := binary(t)
	bg, _ := background(t)
	c := start(t, Config{Processes: true, Binary: bin, Coordinators: 2})
	const streams, tokens = 16, 160
	want, errs := seededWorkload(t, c.URL, streams, tokens)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fault-free stream %d: %v", i, err)
		}
	}
	started := firstTokens(t, c.URL)
	done := make(chan struct{})
	var got []string
	bg.Go(func() {
		got, errs = seededWorkload(t, c.URL, streams, tokens)
		close(done)
	})
	awaitFirstTokens(t, c.URL, started+streams) // all in flight
	if err := c.KillCoordinator(0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("streams did not finish within 60 s of the coordinator's death")
	}
	for i := range got {
		if errs[i] != nil {
			t.Errorf("stream %d failed: %v", i, errs[i])
		} else if got[i] != want[i] {
			t.Errorf("stream %d differs from the fault-free run:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	resp, err := http.Get(c.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := regexp.MustCompile(`switchyard_router_resumed_requests_total\{[^}]*\} (\d+)`).FindSubmatch(readAll(resp.Body))
	if m == nil || string(m[1]) == "0" {
		t.Errorf("no request was resumed: the kill did not hit streams in flight (%q)", m)
	} else {
		t.Logf("%s streams resumed on the other coordinator", m[1])
	}
}

func readAll(r io.Reader) []byte { b, _ := io.ReadAll(r); return b }

// background returns a WaitGroup for a test's goroutines and a context
// that ends with the test. Call it before start: cleanups run last
// registered first, so the cluster closes (ending any stream still open),
// then the context is cancelled, then every goroutine is waited for, and
// none outlives the test or logs after it.
func background(t *testing.T) (*sync.WaitGroup, context.Context) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &wg, ctx
}

// completeOne asks for one greedy token, within ctx.
func completeOne(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions", strings.NewReader(`{"prompt":"The list type","max_tokens":1,"temperature":0}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// awaitFirstTokens waits until n streams in all have had their first
// token (firstTokens), so that a fault injected next hits streams in
// flight, however fast the machine.
func awaitFirstTokens(t *testing.T, url string, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); firstTokens(t, url) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams had no first token within 30 s", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// firstTokens is how many streams have had their first token, from the
// router's time-to-first-token histogram.
func firstTokens(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := regexp.MustCompile(`switchyard_router_time_to_first_token_seconds_count(?:\{[^}]*\})? (\d+)`).FindSubmatch(readAll(resp.Body))
	if m == nil {
		t.Fatal("the router exports no time-to-first-token histogram")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestHotReplication sends a skewed workload (one token, over and over)
// and checks that the controller gives hot units extra replicas and
// that the load per expert node evens out, comparing the rows each node
// served before and after.
func TestHotReplication(t *testing.T) {
	c := start(t, Config{})
	// run sends the workload; every stream must complete, or the rows
	// compared below would measure failures rather than load.
	run := func(phase string) {
		t.Helper()
		const streams = 24
		errs := make([]error, streams)
		var wg sync.WaitGroup
		for i := range streams {
			wg.Go(func() {
				// The same token over and over routes to the same experts.
				_, errs[i] = streamBody(c.URL, map[string]any{"prompt": "x", "max_tokens": 40, "temperature": 0, "stream": true,
					"logit_bias": map[string]float64{"120": 100}})
			})
		}
		wg.Wait()
		failed := 0
		for i, err := range errs {
			if err != nil {
				if failed == 0 {
					t.Errorf("%s: stream %d: %v", phase, i, err)
				}
				failed++
			}
		}
		if failed > 0 {
			t.Fatalf("%s: %d of %d streams failed", phase, failed, streams)
		}
	}
	rowsOf := func(rep routingstats.Report) map[string]uint64 {
		m := map[string]uint64{}
		for _, n := range rep.Nodes {
			m[n.ID] = n.Rows
		}
		return m
	}
	imbalance := func(a, b map[string]uint64) float64 {
		var d []uint64
		for id := range b {
			d = append(d, b[id]-a[id])
		}
		return routingstats.Imbalance(d)
	}
	served := func(a, b map[string]uint64) (n uint64) {
		for id := range b {
			n += b[id] - a[id]
		}
		return n
	}
	r0 := rowsOf(getReport(t, c.URL, "all"))
	run("before hot replication")
	rep1 := getReport(t, c.URL, "all")
	r1 := rowsOf(rep1)
	before := imbalance(r0, r1)
	if served(r0, r1) == 0 {
		t.Fatal("the expert nodes served no rows for the workload")
	}
	// The controller acts on the last minute's load every second: wait
	// until the placement has been stable for 3 s with every node ready.
	deadline := time.Now().Add(30 * time.Second)
	var epoch int64
	stableSince := time.Now()
	for {
		rep := getReport(t, c.URL, "all")
		ready := true
		for _, n := range rep.Nodes {
			ready = ready && n.Health == "ready"
		}
		if rep.Placement.Epoch != epoch || !ready {
			epoch, stableSince = rep.Placement.Epoch, time.Now()
		}
		if epoch > 1 && time.Since(stableSince) > 3*time.Second {
			extra := 0
			for _, on := range rep.Placement.Units {
				extra += len(on) - 1
			}
			t.Logf("placement settled at epoch %d with %d hot replicas", epoch, extra)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("placement did not settle with hot replicas in 30 s (epoch %d); node imbalance was %.2f", epoch, before)
		}
		time.Sleep(200 * time.Millisecond)
	}
	run("after hot replication")
	r2 := rowsOf(getReport(t, c.URL, "all"))
	after := imbalance(r1, r2)
	if served(r1, r2) == 0 {
		t.Fatal("the expert nodes served no rows for the second workload")
	}
	t.Logf("rows per expert node, skewed workload: imbalance (max/mean) %.2f before hot replication, %.2f after", before, after)
	if after >= before {
		t.Errorf("node load imbalance did not fall: %.2f → %.2f", before, after)
	}
}

// TestPlacementDrainCommand drains a node remotely, as `switchyard
// placement drain` does, under load: its units move away with zero errors
// and the node leaves; show and history report it.
func TestPlacementDrainCommand(t *testing.T) {
	bg, _ := background(t)
	c := start(t, Config{})
	cli, err := etcdclient.New([]string{c.Etcd}, c.TLS.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	store := placement.NewStore(cli, "default")
	if err := placementtool.Drain(t.Context(), store, "node-9"); err == nil || !strings.Contains(err.Error(), "node-1, node-2, node-3") {
		t.Errorf("draining an unknown node: %v", err)
	}
	done := make(chan struct{})
	var errs []error
	bg.Go(func() {
		_, errs = workload(t, c.URL, 8, 48)
		close(done)
	})
	if err := placementtool.Drain(t.Context(), store, "node-1"); err != nil {
		t.Fatal(err)
	}
	<-done
	for i, err := range errs {
		if err != nil {
			t.Errorf("stream %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		nodes, _ := placement.List[placement.Node](t.Context(), store, store.NodesPrefix())
		if _, ok := nodes["node-1"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node-1 did not leave within 20 s of the drain")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var show, hist strings.Builder
	if err := placementtool.Show(t.Context(), store, &show); err != nil {
		t.Fatal(err)
	}
	if err := placementtool.History(t.Context(), store, &hist, 50); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(show.String(), "node-1") || !strings.Contains(hist.String(), "dropped from draining node-1") ||
		!strings.Contains(hist.String(), "initial placement") {
		t.Errorf("show:\n%s\nhistory:\n%s", show.String(), hist.String())
	}
}
