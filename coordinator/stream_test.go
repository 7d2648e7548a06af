package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/switchyard-llm/switchyard/internal/tlsconfig"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// echoNode answers each call with its activations, or, while hang is set,
// reads calls and never answers: a stalled node, which a real one cannot
// be made into on demand.
type echoNode struct {
	pb.UnimplementedExpertServiceServer
	opened atomic.Int32
	hang   atomic.Bool
	short  atomic.Int32 // answer this many calls one byte short
	served atomic.Int32
}

func (e *echoNode) ForwardStream(s pb.ExpertService_ForwardStreamServer) error {
	e.opened.Add(1)
	// Reused call after call, as the node's are.
	var in pb.ForwardStreamRequest
	var resp pb.ForwardResponse
	for {
		if err := s.RecvMsg(&in); err != nil {
			return nil
		}
		if e.hang.Load() {
			continue
		}
		e.served.Add(1)
		resp.Outputs = echo(resp.Outputs[:0], in.Request)
		if e.short.Load() > 0 && e.short.Add(-1) >= 0 {
			resp.Outputs = resp.Outputs[1:]
		}
		if err := s.Send(&pb.ForwardStreamResponse{CallId: in.CallId, Response: &resp}); err != nil {
			return err
		}
	}
}

// echo appends to dst the answer of experts that return their input: each
// pair's row is the activations of its row (all activations, if the
// request has no pairs).
func echo(dst []byte, req *pb.ForwardRequest) []byte {
	if len(req.GetPairRows()) == 0 {
		return append(dst, req.GetActivations()...)
	}
	row := int(req.RowSize) * 4
	for _, r := range req.PairRows {
		dst = append(dst, req.Activations[int(r)*row:int(r+1)*row]...)
	}
	return dst
}

func serveEcho(t testing.TB) (*echoNode, *grpc.Server, *nodeStream) {
	return serveEchoTLS(t, nil)
}

// serveEchoTLS is serveEcho with mutual TLS, or in plaintext if tp is nil.
func serveEchoTLS(t testing.TB, tp *tlsconfig.Pair) (*echoNode, *grpc.Server, *nodeStream) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoNode{}
	srv := grpc.NewServer(append(pb.ServerOptions(), tp.ServerOption())...)
	pb.RegisterExpertServiceServer(srv, e)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append(pb.DialOptions(), tp.DialOption())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return e, srv, newNodeStream(pb.NewExpertServiceClient(conn))
}

// testDispatcher is a dispatcher for a one-layer model of the given
// experts, k a row of E values, with no nodes yet.
func testDispatcher(E, k, experts int, unitWait time.Duration) *dispatcher {
	stats := routingstats.New(1, experts, k, nil)
	return newDispatcher(nil, nil, "sha256:x", model.Hyper{Embd: E, ExpertsUsed: k, Layers: 1, Experts: experts}, pb.Encoding_ENCODING_F32, 10*time.Second, unitWait, nil, stats,
		newMetrics(prometheus.NewRegistry(), stats, false), slog.New(slog.DiscardHandler))
}

// addNode connects d to node id over s, ready with units.
func addNode(t testing.TB, d *dispatcher, id string, s *nodeStream, units ...string) {
	down, fail := context.WithCancel(context.Background())
	t.Cleanup(fail)
	d.conns[id] = &nodeConn{stream: s, down: down, fail: fail}
	d.ready[id] = map[string]bool{}
	for _, u := range units {
		d.ready[id][u] = true
	}
}

func call(t *testing.T, s *nodeStream, payload string, wait time.Duration) streamResult {
	t.Helper()
	c, err := start(t.Context(), s, payload)
	if err != nil {
		return streamResult{err: err}
	}
	return c.wait(t.Context(), context.Background(), time.Now().Add(wait))
}

// start starts a call carrying payload as its activations.
func start(ctx context.Context, s *nodeStream, payload string) (*streamCall, error) {
	c := new(streamCall)
	req := &pb.ForwardStreamRequest{Request: &pb.ForwardRequest{Activations: []byte(payload)}}
	return c, s.start(ctx, time.Now().Add(time.Minute), c, req)
}

// Calls in flight together each get their own answer, whatever order
// they are awaited in.
func TestStreamCallsInFlight(t *testing.T) {
	e, _, s := serveEcho(t)
	var calls []*streamCall
	for _, p := range []string{"a", "bb", "ccc"} {
		c, err := start(t.Context(), s, p)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	for i, want := range map[int]string{2: "ccc", 0: "a", 1: "bb"} {
		r := calls[i].wait(t.Context(), context.Background(), time.Now().Add(10*time.Second))
		if r.err != nil || string(r.resp.Outputs) != want {
			t.Errorf("call %d: %q, %v; want %q", i, r.resp.GetOutputs(), r.err, want)
		}
	}
	if n := e.opened.Load(); n != 1 {
		t.Errorf("%d streams opened, want 1", n)
	}
}

// A node that stops answering fails the call at its deadline and the
// stream is replaced: the next call opens a new one and is answered.
func TestStreamStalledNode(t *testing.T) {
	e, _, s := serveEcho(t)
	if r := call(t, s, "x", 10*time.Second); r.err != nil {
		t.Fatal(r.err)
	}
	e.hang.Store(true)
	r := call(t, s, "y", 200*time.Millisecond)
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("stalled call: %v, want a deadline error", r.err)
	}
	e.hang.Store(false)
	if r := call(t, s, "z", 10*time.Second); r.err != nil || string(r.resp.Outputs) != "z" {
		t.Fatalf("call after the stall: %q, %v", r.resp.GetOutputs(), r.err)
	}
	if n := e.opened.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2 (the stalled one replaced)", n)
	}
}

// A caller that gives up gets its context's error; the stream stays.
func TestStreamCallerGivesUp(t *testing.T) {
	e, _, s := serveEcho(t)
	e.hang.Store(true)
	c, err := start(t.Context(), s, "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if r := c.wait(ctx, context.Background(), time.Now().Add(time.Minute)); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the caller's deadline", r.err)
	}
	e.hang.Store(false)
	if r := call(t, s, "y", 10*time.Second); r.err != nil || string(r.resp.Outputs) != "y" {
		t.Fatalf("next call: %q, %v", r.resp.GetOutputs(), r.err)
	}
	if n := e.opened.Load(); n != 1 {
		t.Errorf("%d streams opened, want 1", n)
	}
}

// Calls waiting when the node goes away fail at once, and so does a call
// to a node that is gone.
func TestStreamNodeGone(t *testing.T) {
	e, srv, s := serveEcho(t)
	e.hang.Store(true)
	c, err := start(t.Context(), s, "x")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan streamResult)
	go func() { done <- c.wait(t.Context(), context.Background(), time.Now().Add(time.Minute)) }()
	srv.Stop()
	select {
	case r := <-done:
		if r.err == nil {
			t.Fatal("call to a stopped node succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("call to a stopped node still waiting after 30 s")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if c, err := start(ctx, s, ""); err == nil {
		if r := c.wait(ctx, context.Background(), time.Now().Add(5*time.Second)); r.err == nil {
			t.Fatal("call after the node stopped succeeded")
		}
	}
}

// A node that answers with a malformed response is suspected and its pairs
// are resent to the other replica: the outputs are still right.
func TestDispatchResendsBadAnswers(t *testing.T) {
	const E, k = 4, 2
	good, _, gs := serveEcho(t)
	bad, _, bs := serveEcho(t)
	bad.short.Store(math.MaxInt32)
	d := testDispatcher(E, k, 2, time.Second)
	for id, s := range map[string]*nodeStream{"good": gs, "bad": bs} {
		addNode(t, d, id, s, "0/0", "0/1")
	}
	d.pmap = placement.Map{Units: map[string][]string{"0/0": {"good", "bad"}, "0/1": {"bad", "good"}}}
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	experts := []int32{0, 1, 1, 0}
	for range 4 { // the replicas alternate: every round reaches the bad node
		d.suspects = map[string]time.Time{}
		out := make([]float32, len(experts)*E)
		if err := d.Forward(t.Context(), 0, x, 2, experts, out); err != nil {
			t.Fatal(err)
		}
		for s := range experts {
			row := s / k
			if !slices.Equal(out[s*E:(s+1)*E], x[row*E:(row+1)*E]) {
				t.Fatalf("pair %d: %v, want row %d %v", s, out[s*E:(s+1)*E], row, x[row*E:(row+1)*E])
			}
		}
	}
	if bad.served.Load() == 0 || good.served.Load() == 0 {
		t.Errorf("bad node served %d calls, good %d: want both used", bad.served.Load(), good.served.Load())
	}
}

// When every replica of a unit fails a call (a node that had just dropped
// the unit, say), the call is not failed: once the nodes are no longer
// suspected, they are tried again.
func TestDispatchRetriesWhenEveryReplicaFailed(t *testing.T) {
	const E, k = 4, 1
	d := testDispatcher(E, k, 1, 5*time.Second)
	d.suspectFor = 50 * time.Millisecond
	var nodes []*echoNode
	for _, id := range []string{"a", "b"} {
		e, _, s := serveEcho(t)
		e.short.Store(1)
		nodes = append(nodes, e)
		addNode(t, d, id, s, "0/0")
	}
	d.pmap = placement.Map{Units: map[string][]string{"0/0": {"a", "b"}}}
	x := []float32{1, 2, 3, 4}
	out := make([]float32, E)
	if err := d.Forward(t.Context(), 0, x, 1, []int32{0}, out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out, x) {
		t.Fatalf("out %v, want %v", out, x)
	}
	if a, b := nodes[0].served.Load(), nodes[1].served.Load(); a+b != 3 {
		t.Errorf("nodes served %d and %d calls: want both failed ones and one more", a, b)
	}
}

// BenchmarkDispatch is one layer's dispatch of a decode step (one token,
// its two experts on two nodes, 1024-wide rows) over real gRPC streams to
// echo nodes in this process: allocs/op counts the coordinator's side,
// gRPC's on both sides and the echo nodes'.
func BenchmarkDispatch(b *testing.B) {
	const E, k = 1024, 2
	d := testDispatcher(E, k, 2, time.Second)
	for i, id := range []string{"a", "b"} {
		_, _, s := serveEcho(b)
		addNode(b, d, id, s, fmt.Sprintf("0/%d", i))
	}
	d.pmap = placement.Map{Units: map[string][]string{"0/0": {"a"}, "0/1": {"b"}}}
	x := make([]float32, E)
	for i := range x {
		x[i] = float32(i)
	}
	experts := []int32{0, 1}
	out := make([]float32, k*E)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Forward(b.Context(), 0, x, 1, experts, out); err != nil {
			b.Fatal(err)
		}
	}
	if !slices.Equal(out[E:], x) {
		b.Fatalf("pair 1: got %v…, want the row", out[E:E+4])
	}
}

// BenchmarkTransport puts a decode step's dispatch to one node (one token,
// both its experts there, 1024-wide f32 rows: 4 KiB out, 8 KiB back) beside
// the same bytes echoed over a bare loopback socket, each in plaintext and
// with mutual TLS: what gRPC and the dispatch path cost over the socket,
// measured in one run.
func BenchmarkTransport(b *testing.B) {
	const E, k = 1024, 2
	tp, _, err := tlsconfig.Ephemeral([]string{"127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	for _, sec := range []struct {
		name string
		tp   *tlsconfig.Pair
	}{{"plain", nil}, {"tls", tp}} {
		b.Run("socket/"+sec.name, func(b *testing.B) {
			var server, client func(net.Conn) net.Conn
			if sec.tp != nil {
				server = func(c net.Conn) net.Conn { return tls.Server(c, sec.tp.Server) }
				cfg := sec.tp.ClientConfig().Clone()
				cfg.ServerName = "127.0.0.1"
				client = func(c net.Conn) net.Conn { return tls.Client(c, cfg) }
			}
			c := echoSocket(b, E*4, k*E*4, server, client)
			req, resp := make([]byte, E*4), make([]byte, k*E*4)
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("dispatch/"+sec.name, func(b *testing.B) {
			d := testDispatcher(E, k, k, time.Second)
			_, _, s := serveEchoTLS(b, sec.tp)
			addNode(b, d, "a", s, "0/0", "0/1")
			d.pmap = placement.Map{Units: map[string][]string{"0/0": {"a"}, "0/1": {"a"}}}
			x, out := make([]float32, E), make([]float32, k*E)
			x[E-1] = 1
			for b.Loop() {
				if err := d.Forward(b.Context(), 0, x, 1, []int32{0, 1}, out); err != nil {
					b.Fatal(err)
				}
			}
			if out[2*E-1] != 1 {
				b.Fatal("the second pair's row did not come back")
			}
		})
	}
}

// echoSocket serves, on a loopback TCP socket wrapped by server (nil: as
// is), one connection that answers every in bytes with out bytes, and
// returns the client end, wrapped by client.
func echoSocket(b *testing.B, in, out int, server, client func(net.Conn) net.Conn) net.Conn {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lis.Close() })
	go func() {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if server != nil {
			c = server(c)
		}
		req, resp := make([]byte, in), make([]byte, out)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if client != nil {
		c = client(c)
	}
	return c
}
