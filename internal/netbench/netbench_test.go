package netbench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// binary builds switchyard for the roles' processes.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchyard")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/switchyard").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// leftovers lists the namespaces and links of a cluster numbered id.
func leftovers(t *testing.T, id int) []string {
	t.Helper()
	var found []string
	for _, args := range [][]string{{"netns", "list"}, {"-o", "link", "show"}} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v", args, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			for _, p := range []string{fmt.Sprintf("sy-nb%d-", id), fmt.Sprintf("synb%dh", id), fmt.Sprintf("sybr%d:", id)} {
				if strings.Contains(line, p) {
					found = append(found, strings.TrimSpace(line))
				}
			}
		}
	}
	return found
}

// A two-node cluster in namespaces, its calls through the proxies with a
// round trip added and taken away, serves completions; Close leaves no
// namespace, link or process behind.
func TestNamespacedCluster(t *testing.T) {
	if err := Check(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI runs as root with iproute2: %v", err)
		}
		t.Skip(err)
	}
	bin := binary(t)
	c, err := Start(t.Context(), Config{Binary: bin, ModelPath: "../../testdata/models/tiny-mixtral-f32.gguf", ExpertNodes: 2, LinkRate: "1gbit"})
	if err != nil {
		if strings.Contains(err.Error(), "Operation not permitted") {
			t.Skipf("the kernel refused network namespaces: %v", err)
		}
		t.Fatal(err)
	}
	id := c.id
	defer c.Close()
	if got := leftovers(t, id); len(got) < 4 {
		t.Fatalf("the cluster's namespaces and links: %v", got)
	}
	complete := func() string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"prompt": "hello", "max_tokens": 6, "temperature": 0})
		resp, err := http.Post(c.URL+"/v1/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("completion: %d %s", resp.StatusCode, b)
		}
		var r struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
			t.Fatalf("completion: %v %s", err, b)
		}
		return r.Choices[0].Text
	}
	want := complete()
	for _, rtt := range []string{"2ms", "0"} {
		d := parseRTT(t, rtt)
		if err := c.SetRTT(d); err != nil {
			t.Fatal(err)
		}
		if got := complete(); got != want {
			t.Errorf("RTT %s: completion %q, want %q as without delay", rtt, got, want)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, id); len(got) != 0 {
		t.Errorf("left behind after Close: %v", got)
	}
}

func parseRTT(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "0" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The microsecond latency toxic passes every byte, in order, both ways.
func TestLatencyToxicPassesEverything(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	done := make(chan struct{})
	go func() { // an echo server
		defer close(done)
		conn, err := lis.Accept()
		if err != nil {
			return
		}
		io.Copy(conn, conn)
		conn.Close()
	}()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "echo", "127.0.0.1:0", lis.Addr().String())
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	for _, dir := range []string{"upstream", "downstream"} {
		body := fmt.Sprintf(`{"name":"d_%s","type":"latency_us","stream":%q,"toxicity":1,"attributes":{"latency_us":300}}`, dir, dir)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", p.Listen)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB: many chunks
	go conn.Write(msg)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(conn, got) // toxiproxy ends both ways on a half-close: read all first
	conn.Close()
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("echoed %d bytes (%v), want the %d sent, in order", len(got), err, len(msg))
	}
	<-done
}
