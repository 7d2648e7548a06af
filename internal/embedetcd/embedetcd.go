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
	e        *embed.Etcd
	Endpoint string // client URL, http://127.0.0.1:PORT
	dir      string
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
		return nil, fmt.Errorf("embedetcd: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedetcd: not ready after 30s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Server{e: e, Endpoint: cu.String(), dir: dir}, nil
}

// Close stops the server.
func (s *Server) Close() { s.e.Close() }
