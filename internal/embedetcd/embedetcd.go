// Package embedetcd runs an etcd server inside the process, on loopback
// ports of its own choosing: the store `switchyard up` and the tests use.
package embedetcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Server is a running embedded etcd.
type Server struct {
	e                    *embed.Etcd
	Endpoint             string // client URL, http://127.0.0.1:PORT
	dir                  string
	clientPort, peerPort int
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs etcd with its data in dir and waits until it serves. A
// clientPort of 0 picks a free port.
func Start(ctx context.Context, dir string, clientPort int) (*Server, error) {
	var err error
	if clientPort == 0 {
		if clientPort, err = freePort(); err != nil {
			return nil, fmt.Errorf("embedetcd: %w", err)
		}
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("embedetcd: %w", err)
	}
	s := &Server{dir: dir, clientPort: clientPort, peerPort: peerPort}
	return s, s.start(ctx)
}

// start runs etcd on the server's ports and directory.
func (s *Server) start(ctx context.Context) error {
	clientPort, peerPort, dir := s.clientPort, s.peerPort, s.dir
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "switchyard"
	cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
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
