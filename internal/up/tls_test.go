package up

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/internal/tlsconfig"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// TestMutualTLS checks up's default mutual TLS: clients without a
// certificate of the cluster's CA are refused by expert nodes and etcd,
// and an expert node with a certificate from another CA cannot join.
func TestMutualTLS(t *testing.T) {
	bin := binary(t)
	cache := t.TempDir()
	c := start(t, Config{CacheDir: cache})
	if c.TLS == nil {
		t.Fatal("up did not turn TLS on by default")
	}
	cli, err := etcdclient.New([]string{c.Etcd}, c.TLS.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	store := placement.NewStore(cli, "default")
	nodes, err := placement.List[placement.Node](t.Context(), store, store.NodesPrefix())
	if err != nil || len(nodes) != 3 {
		t.Fatalf("with the cluster's certificate: %d nodes, %v", len(nodes), err)
	}
	addr := nodes["node-1"].Addr

	// Clients without a certificate, or with one from another CA.
	other, err := tlsconfig.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _ := other.Issue("intruder", nil)
	foreign, _ := tls.X509KeyPair(certPEM, keyPEM)
	for name, conf := range map[string]*tls.Config{
		"no certificate":      {RootCAs: c.TLS.Client.RootCAs, MinVersion: tls.VersionTLS13},
		"foreign certificate": {RootCAs: c.TLS.Client.RootCAs, Certificates: []tls.Certificate{foreign}, MinVersion: tls.VersionTLS13},
	} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err = pb.NewExpertServiceClient(conn).Info(ctx, &pb.InfoRequest{})
		cancel()
		conn.Close()
		if err == nil {
			t.Errorf("expert node accepted a client with %s", name)
		}
		ecli, err := etcdclient.New([]string{c.Etcd}, conf)
		if err != nil {
			continue // refused at once: fine
		}
		ctx, cancel = context.WithTimeout(t.Context(), 2*time.Second)
		_, err = ecli.Get(ctx, "x")
		cancel()
		ecli.Close()
		if err == nil {
			t.Errorf("etcd accepted a client with %s", name)
		}
	}

	// An expert node whose certificate another CA signed cannot join.
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	caFile := write("other-ca.pem", other.CertPEM)
	certFile, keyFile := write("node.pem", certPEM), write("node-key.pem", keyPEM)
	cmd := exec.Command(bin, "expert-node", "--etcd", c.Etcd, "--listen", "127.0.0.1:0", "--model", filepath.Join(cache, "demo-moe-q8_0.gguf"),
		"--node-id", "intruder", "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile, "--register-timeout", "3s")
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		if cmd.ProcessState.Success() || !strings.Contains(string(out), "cannot register in etcd") {
			t.Errorf("the intruder node: exit %v: %s", cmd.ProcessState, out)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	nodes, _ = placement.List[placement.Node](t.Context(), store, store.NodesPrefix())
	if _, ok := nodes["intruder"]; ok || len(nodes) != 3 {
		t.Errorf("a node with a foreign certificate registered: %v", nodes)
	}
	if !strings.HasPrefix(c.Etcd, "https://") {
		t.Errorf("etcd endpoint %s is not TLS", c.Etcd)
	}
}
