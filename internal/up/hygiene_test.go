package up

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hygieneLog sends logs to t.Log.
func hygieneLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, nil))
}

type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// procState reads a process's state letter and parent from /proc; ok is
// false when there is no such process.
func procState(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// alive reports whether pid runs (a zombie has ended: it waits only to be
// reaped by whoever inherited it).
func alive(pid int) bool {
	st, _, ok := procState(pid)
	return ok && st != 'Z'
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procState(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// waitFile waits until the file at path matches re and returns the match.
func waitFile(t *testing.T, path string, re *regexp.Regexp, limit time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(path)
		if m := re.FindStringSubmatch(string(b)); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never matched %s:\n%s", path, re, string(b))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKilledUpLeavesNothing: kill -9 of `up --processes` takes its expert
// nodes and coordinator with it, and the next start removes the etcd data
// directory it left. The gossip key is on no command line.
func TestKilledUpLeavesNothing(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	stdout, stderr := filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	out, err := os.Create(stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command(bin, "up", "--processes", "--expert-nodes", "2", "--listen", "127.0.0.1:0", "--cache-dir", filepath.Join(dir, "cache"))
	cmd.Stdout, cmd.Stderr = out, errf
	cmd.Env = append(os.Environ(), "SWITCHYARD_LOG=info")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	parent := cmd.Process.Pid
	var children []int
	t.Cleanup(func() {
		// Whatever the outcome, nothing this test started outlives it.
		for _, pid := range append(children, parent) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		cmd.Wait()
	})
	waitFile(t, stdout, regexp.MustCompile(`ready: (http://\S+)`), 2*time.Minute)
	dataDir := waitFile(t, stderr, regexp.MustCompile(`embedded etcd serving.* data=(\S+)`), time.Second)[1]
	children = childrenOf(t, parent)
	if len(children) != 3 {
		t.Fatalf("up has %d child processes, want 3 (2 expert nodes and a coordinator)", len(children))
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "gossip.key"))
	if err != nil || len(key) == 0 {
		t.Fatalf("gossip key file: %v", err)
	}
	for _, pid := range children {
		argv, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if bytes.Contains(argv, key) {
			t.Errorf("process %d has the gossip key on its command line: %q", pid, argv)
		}
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []int
		for _, pid := range children {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after kill -9 of up, its processes %v still run", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("kill -9 of up (pid %d): its %d processes %v are gone", parent, len(children), children)

	if _, err := os.Stat(dataDir); err != nil {
		t.Fatalf("the killed run's etcd directory: %v, want it left behind", err)
	}
	sweepEtcdDirs(hygieneLog(t)) // what the next start does first
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s outlives the next start's sweep: %v", dataDir, err)
	}
}

// TestSweepSparesLiveRuns: a directory whose run is alive (its lock held)
// or that is being made (no owner file yet) is not swept.
func TestSweepSparesLiveRuns(t *testing.T) {
	log := hygieneLog(t)
	live, lock, err := etcdDataDir(log)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	making, err := os.MkdirTemp("", etcdDirPattern)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(making)
	sweepEtcdDirs(log)
	for _, d := range []string{live, making} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was swept: %v", d, err)
		}
	}
	lock.Close() // as if its process died
	sweepEtcdDirs(log)
	if _, err := os.Stat(live); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s outlives its run's lock: %v", live, err)
	}
}

// TestDrainWithEtcdStopped: SIGTERM makes an expert node drain; with etcd
// gone it cannot, and it exits within --drain-timeout plus 5 s all the
// same.
func TestDrainWithEtcdStopped(t *testing.T) {
	bin := binary(t)
	const drain = 3 * time.Second
	c := start(t, Config{Processes: true, Binary: bin, ExpertNodes: 2, Insecure: true, DrainTimeout: drain})
	c.StopEtcd()
	began := time.Now()
	if err := c.DrainNode(0, drain+5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("with etcd stopped, an expert node told to drain (--drain-timeout %v) exited %v after SIGTERM", drain, time.Since(began).Round(10*time.Millisecond))
	if err := c.StartEtcd(t.Context()); err != nil { // for a quick teardown
		t.Fatal(err)
	}
}

// TestCloseLetsStreamsFinish: stopping up (Ctrl-C) stops the router
// first; a running stream finishes within the shutdown grace, with its
// last token and [DONE], instead of a "context canceled" from the layers.
func TestCloseLetsStreamsFinish(t *testing.T) {
	c, err := Start(t.Context(), Config{Listen: "127.0.0.1:0", CacheDir: t.TempDir(), Insecure: true, ShutdownGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The cluster is closed while the stream runs (or at the end, if the
	// stream never started), and the test waits for Close.
	var closed chan error
	closeAsync := func() {
		if closed == nil {
			closed = make(chan error, 1)
			go func() { closed <- c.Close() }()
		}
	}
	defer func() {
		closeAsync()
		if err := <-closed; err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	resp, err := http.Post(c.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "The list type", "max_tokens": 48, "temperature": 0, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var events []string
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, data)
			if len(events) == 1 {
				closeAsync() // after the first token
			}
		}
	}
	if len(events) < 2 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %q, want a stream ending with [DONE]", events)
	}
	var last struct {
		Choices []struct {
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Error *struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(events[len(events)-2]), &last); err != nil || last.Error != nil || len(last.Choices) == 0 ||
		last.Choices[0].FinishReason == nil || *last.Choices[0].FinishReason != "length" {
		t.Errorf("last event %s, want the last token with finish_reason length", events[len(events)-2])
	}
}
