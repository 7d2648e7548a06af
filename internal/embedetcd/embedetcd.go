// Package embedetcd runs an etcd server inside the process, on loopback
// ports of its own choosing: the store `switchyard up` and the tests use.
package embedetcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// Server is a running embedded etcd.
type Server struct {
	e                    *embed.Etcd
	Endpoint             string // client URL, http(s)://HOST:PORT
	dir, host            string
	clientPort, peerPort int
	tls                  *TLSFiles
}

// TLSFiles makes the client port require TLS with certificates signed by
// CA (PEM files).
type TLSFiles struct{ Cert, Key, CA string }

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs etcd with its data in dir, listening on host ("" means
// 127.0.0.1), and waits until it serves. A clientPort of 0 picks a free
// port.
func Start(ctx context.Context, dir, host string, clientPort int, tlsFiles *TLSFiles) (*Server, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	var err error
	if clientPort == 0 {
		if clientPort, err = freePort(host); err != nil {
			return nil, fmt.Errorf("embedetcd: %w", err)
		}
	}
	peerPort, err := freePort(host)
	if err != nil {
		return nil, fmt.Errorf("embedetcd: %w", err)
	}
	s := &Server{dir: dir, host: host, clientPort: clientPort, peerPort: peerPort, tls: tlsFiles}
	return s, s.start(ctx)
}

// start runs etcd on the server's ports and directory.
func (s *Server) start(ctx context.Context) error {
	clientPort, peerPort, dir := s.clientPort, s.peerPort, s.dir
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "switchyard"
	cu := url.URL{Scheme: "http", Host: net.JoinHostPort(s.host, fmt.Sprint(clientPort))}
	if s.tls != nil {
		cu.Scheme = "https"
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: s.tls.Cert, KeyFile: s.tls.Key, TrustedCAFile: s.tls.CA, ClientCertAuth: true}
	}
	pu := url.URL{Scheme: "http", Host: net.JoinHostPort(s.host, fmt.Sprint(peerPort))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"/dev/null"}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("embedetcd: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("embedetcd: not ready after 30s")
	case <-ctx.Done():
		e.Close()
		return ctx.Err()
	}
	s.e, s.Endpoint = e, cu.String()
	return nil
}

// Close stops the server; Restart brings it back with the same data.
func (s *Server) Close() {
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

// Restart starts a closed server again on the same ports and data.
func (s *Server) Restart(ctx context.Context) error { return s.start(ctx) }

// RestartEmpty starts a closed server again on the same ports with its
// data removed, as a disaster recovery would: a new etcd with nothing in it.
func (s *Server) RestartEmpty(ctx context.Context) error {
	if s.e != nil {
		return fmt.Errorf("embedetcd: restart empty: the server is running")
	}
	// etcd keeps everything under member/; other files in the directory
	// (the TLS files up writes there) stay.
	if err := os.RemoveAll(filepath.Join(s.dir, "member")); err != nil {
		return fmt.Errorf("embedetcd: restart empty: %w", err)
	}
	return s.start(ctx)
}
