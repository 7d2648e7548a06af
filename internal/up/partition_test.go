package up

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netns is a network namespace joined to this one by a veth pair: a test
// host of our own at NSAddr, reached from here at HostAddr.
type netns struct {
	name, hostIf     string
	HostAddr, NSAddr string
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetns makes the namespace, or says why the kernel refused.
func newNetns(t *testing.T) *netns {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespaces: the ip command (iproute2) is not installed; .ci/run installs it")
		}
		t.Skip("network namespaces: the ip command (iproute2) is not installed (apt-get install iproute2; under CI=true this is a failure)")
	}
	id := os.Getpid() % 200
	n := &netns{name: fmt.Sprintf("sy-part-%d", id), hostIf: fmt.Sprintf("sypa%d", id),
		HostAddr: fmt.Sprintf("10.213.%d.1", id), NSAddr: fmt.Sprintf("10.213.%d.2", id)}
	nsIf := fmt.Sprintf("sypb%d", id)
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", nsIf},
		{"link", "set", nsIf, "netns", n.name},
		{"addr", "add", n.HostAddr + "/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"netns", "exec", n.name, "ip", "addr", "add", n.NSAddr + "/30", "dev", nsIf},
		{"netns", "exec", n.name, "ip", "link", "set", nsIf, "up"},
		{"netns", "exec", n.name, "ip", "link", "set", "lo", "up"},
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.name).Run()
		exec.Command("ip", "link", "del", n.hostIf).Run()
	})
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Skipf("network partition test: the kernel refused network namespaces (%v); the other fault tests still run", err)
		}
	}
	return n
}

// TestPartition cuts an expert node off the network (not killed) while
// streams run: gossip declares it dead, its calls are abandoned and resent
// to other replicas, and every request completes unchanged.
func TestPartition(t *testing.T) {
	bin := binary(t)
	ns := newNetns(t)
	cache := t.TempDir()
	bg, _ := background(t)
	// Plaintext: the ephemeral certificate does not name the namespace's address.
	c := start(t, Config{Host: ns.HostAddr, ExpertNodes: 2, Replicas: 2, Processes: true, Binary: bin, CacheDir: cache, Insecure: true})
	node := exec.Command("ip", "netns", "exec", ns.name, bin, "expert-node", "--etcd", c.Etcd, "--listen", ns.NSAddr+":0",
		"--model", filepath.Join(cache, "demo-moe-q8_0.gguf"), "--node-id", "node-3")
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Process.Signal(syscall.SIGKILL); node.Wait() })
	// The controller moves units to the node that joined.
	deadline := time.Now().Add(30 * time.Second)
	for {
		units := 0
		for _, n := range getReport(t, c.URL, "all").Nodes {
			if n.ID == "node-3" && n.Health == "ready" {
				units = n.Units
			}
		}
		if units >= 8 {
			t.Logf("node-3 (in namespace %s at %s) serves %d units", ns.name, ns.NSAddr, units)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-3 holds %d ready units after 30 s", units)
		}
		time.Sleep(200 * time.Millisecond)
	}
	want, errs := workload(t, c.URL, 16, 48)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("before the partition, stream %d: %v", i, err)
		}
	}
	started := firstTokens(t, c.URL)
	done := make(chan struct{})
	var got []string
	bg.Go(func() {
		got, errs = workload(t, c.URL, 16, 48)
		close(done)
	})
	awaitFirstTokens(t, c.URL, started+16)
	cut := time.Now()
	if err := ipCmd("link", "set", ns.hostIf, "down"); err != nil {
		t.Fatal(err)
	}
	<-done
	t.Logf("workload finished %v after the partition", time.Since(cut).Round(time.Millisecond))
	for i := range got {
		if errs[i] != nil {
			t.Errorf("stream %d failed: %v", i, errs[i])
		} else if got[i] != want[i] {
			t.Errorf("stream %d differs:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	// A fresh request after the cut is served without the partitioned node.
	start := time.Now()
	if _, errs := workload(t, c.URL, 1, 4); errs[0] != nil {
		t.Fatal(errs[0])
	}
	t.Logf("a request sent %v after the cut took %v", start.Sub(cut).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
