package router

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/switchyard-llm/switchyard/internal/embedetcd"
	"github.com/switchyard-llm/switchyard/internal/etcdclient"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// heldCoordinator answers Generate with one token, then holds the stream
// until release is closed (and finishes it) or the caller goes away: a
// generation that cannot end by itself, which a real coordinator cannot be
// made to do on demand.
type heldCoordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	release chan struct{}
	started chan struct{} // one value per Generate call
}

func (h *heldCoordinator) Generate(req *pb.GenerateRequest, st pb.CoordinatorService_GenerateServer) error {
	if req.Prompt == "ready?" {
		return st.Send(&pb.GenerateResponse{Deltas: textDelta("yes"), FinishReason: pb.FinishReason_FINISH_REASON_STOP})
	}
	h.started <- struct{}{}
	if req.Prompt != "hold before the first token" {
		if err := st.Send(&pb.GenerateResponse{Tokens: []*pb.Token{{Id: 1, Piece: []byte("one")}}, Deltas: textDelta("one")}); err != nil {
			return err
		}
	}
	select {
	case <-h.release:
		return st.Send(&pb.GenerateResponse{Tokens: []*pb.Token{{Id: 2, Piece: []byte(" two")}}, Deltas: textDelta(" two"),
			FinishReason: pb.FinishReason_FINISH_REASON_LENGTH, Usage: &pb.Usage{PromptTokens: 1, CompletionTokens: 2}})
	case <-st.Context().Done():
		return st.Context().Err()
	}
}

// shutdownRig is a router in front of a heldCoordinator, found through a
// real (embedded) etcd.
type shutdownRig struct {
	url, addr string
	coord     *heldCoordinator
	stop      context.CancelFunc
	done      chan error // Run's error
	once      sync.Once
	err       error
}

// wait returns Run's error once it returned.
func (r *shutdownRig) wait() error {
	r.once.Do(func() { r.err = <-r.done })
	return r.err
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func startShutdownRig(t *testing.T, grace time.Duration) *shutdownRig {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	etcd, err := embedetcd.Start(t.Context(), t.TempDir(), "127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcdclient.New([]string{etcd.Endpoint}, nil)
	if err != nil {
		t.Fatal(err)
	}
	coord := &heldCoordinator{release: make(chan struct{}), started: make(chan struct{}, 8)}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, coord)
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(glis)
	store := placement.NewStore(cli, "default")
	if err := store.Put(t.Context(), store.Coordinator("c1"), placement.Coordinator{ID: "c1", Addr: glis.Addr().String()}, 0); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(t.Context(), store.Model(), placement.ModelInfo{Name: "held", Layers: 1, Experts: 2, ExpertsUsed: 1, Vocab: 8, Context: 64}, 0); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Etcd: []string{etcd.Endpoint}, Listener: lis, ShutdownGrace: grace, Logger: testLogger(t)})
	}()
	rig := &shutdownRig{url: "http://" + lis.Addr().String(), addr: lis.Addr().String(), coord: coord, stop: stop, done: done}
	t.Cleanup(func() {
		stop()
		rig.wait()
		srv.Stop()
		cli.Close()
		etcd.Close()
		// Every goroutine the router, its clients and the servers here
		// started has ended (a few moments' slack for their exits).
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines outlive the router, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
		}
	})
	// Ready when the router knows the model and reaches the coordinator.
	for i := 0; ; i++ {
		resp, err := http.Post(rig.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "ready?"}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 200 {
			t.Fatal("the router never reached the coordinator")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return rig
}

// openStream starts a streamed completion and returns its events' reader
// once the first token arrived.
func (r *shutdownRig) openStream(t *testing.T) (*bufio.Scanner, func()) {
	t.Helper()
	resp, err := http.Post(r.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "go", "stream": true, "max_tokens": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	<-r.coord.started
	sc := bufio.NewScanner(resp.Body)
	if ev := nextEvent(sc); !strings.Contains(ev, `"text":"one"`) {
		t.Fatalf("first event %q, want the first token", ev)
	}
	return sc, func() { resp.Body.Close() }
}

func nextEvent(sc *bufio.Scanner) string {
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			return line
		}
	}
	return ""
}

// refused reports whether a new connection to the router is refused.
func (r *shutdownRig) refused(t *testing.T) bool {
	for range 100 {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			return true
		}
		c.Close()
		time.Sleep(20 * time.Millisecond) // the listener closes as Shutdown begins
	}
	return false
}

// TestShutdownLetsRequestsFinish: once stopped, the router takes no new
// connection, and a stream that finishes within the grace finishes as
// usual.
func TestShutdownLetsRequestsFinish(t *testing.T) {
	rig := startShutdownRig(t, time.Minute)
	sc, done := rig.openStream(t)
	defer done()
	rig.stop()
	if !rig.refused(t) {
		t.Error("the router still accepts connections after its stop")
	}
	close(rig.coord.release)
	var events []string
	for ev := nextEvent(sc); ev != ""; ev = nextEvent(sc) {
		events = append(events, ev)
	}
	if len(events) != 2 || !strings.Contains(events[0], `"finish_reason":"length"`) || events[1] != "[DONE]" {
		t.Errorf("events after the stop: %q, want the last token with finish_reason length, then [DONE]", events)
	}
	if err := rig.wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestShutdownEndsRequestsAfterGrace: streams and whole responses still
// running when the grace runs out end with "server shutting down", not a
// bare context error.
func TestShutdownEndsRequestsAfterGrace(t *testing.T) {
	rig := startShutdownRig(t, 300*time.Millisecond)
	sc, done := rig.openStream(t)
	defer done()
	whole := make(chan string, 1)
	go func() {
		resp, err := http.Post(rig.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "hold before the first token"}`))
		if err != nil {
			whole <- err.Error()
			return
		}
		defer resp.Body.Close()
		var e apiError
		json.NewDecoder(resp.Body).Decode(&e)
		whole <- fmt.Sprintf("%d %s", resp.StatusCode, e.Error.Message)
	}()
	<-rig.coord.started
	rig.stop()
	var events []string
	for ev := nextEvent(sc); ev != ""; ev = nextEvent(sc) {
		events = append(events, ev)
	}
	if len(events) != 2 || !strings.Contains(events[0], `"message":"server shutting down"`) || events[1] != "[DONE]" {
		t.Errorf("events after the grace: %q, want a 'server shutting down' error, then [DONE]", events)
	}
	if got, want := <-whole, "503 server shutting down"; got != want {
		t.Errorf("a request waiting for its first token got %q, want %q", got, want)
	}
	if err := rig.wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
}
