// Package serve holds the server plumbing the gRPC roles share: a
// graceful stop with a deadline, a /metrics endpoint and a plaintext
// health port.
package serve

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// StopGracefully drains srv, forcing it to stop after 5 seconds.
func StopGracefully(srv *grpc.Server) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
}

// Metrics serves g on addr at /metrics until stop is called.
func Metrics(addr string, g prometheus.Gatherer) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)
	return func() { srv.Close() }, nil
}

// Health serves hs, plaintext, on addr until stop is called: a port for
// Kubernetes' gRPC probes, which cannot present client certificates.
func Health(addr string, hs *health.Server) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health listen: %w", err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	return srv.Stop, nil
}

// Endpoint is where a gRPC role listens and how others reach it.
type Endpoint struct {
	Listener net.Listener
	Addr     string // advertised host:port
	// Gossip binds where the listener does and advertises the host others
	// dial (which may be a DNS name, as in Docker Compose or Kubernetes).
	BindHost, AdvertiseHost string
}

// Listen uses lis, or listens on listen when lis is nil; advertise ("" for
// the listener's address) is what others dial.
func Listen(lis net.Listener, listen, advertise string) (*Endpoint, error) {
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", listen); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	e := &Endpoint{Listener: lis, Addr: advertise}
	if e.Addr == "" {
		e.Addr = lis.Addr().String()
	}
	e.BindHost, _, _ = net.SplitHostPort(lis.Addr().String())
	e.AdvertiseHost, _, _ = net.SplitHostPort(e.Addr)
	return e, nil
}
