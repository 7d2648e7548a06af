package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// stallingCoordinator streams tokens 100, 101, … up to total; the first
// call stalls after three tokens until its stream is cut (a fake: a real
// coordinator cannot be made to stall mid-stream on demand).
type stallingCoordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	total   int
	stalled chan struct{} // closed when the first call stalls
	cut     chan struct{} // closed when the stalled call's stream is cut
	mu      sync.Mutex
	calls   []*pb.GenerateRequest
}

func (c *stallingCoordinator) Generate(req *pb.GenerateRequest, stream pb.CoordinatorService_GenerateServer) error {
	c.mu.Lock()
	c.calls = append(c.calls, proto.Clone(req).(*pb.GenerateRequest)) // the codec reuses req
	first := len(c.calls) == 1
	c.mu.Unlock()
	var resumed []int32
	if len(req.Resumed) > 0 {
		resumed = req.Resumed[0].Tokens
	}
	for i := len(resumed); i < c.total; i++ {
		if first && i == 3 {
			close(c.stalled)
			<-stream.Context().Done()
			close(c.cut)
			return stream.Context().Err()
		}
		m := &pb.GenerateResponse{Deltas: textDelta(fmt.Sprintf(" t%d", i)), Tokens: []*pb.Token{{Id: int32(100 + i)}}}
		if i == c.total-1 {
			m.FinishReason = pb.FinishReason_FINISH_REASON_LENGTH
			m.Usage = &pb.Usage{PromptTokens: 1, CompletionTokens: uint32(c.total - len(resumed))}
		}
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// retryRouter serves the API over one stalling coordinator on loopback.
func retryRouter(t *testing.T) (*Router, *stallingCoordinator, string, string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &stallingCoordinator{total: 8, stalled: make(chan struct{}), cut: make(chan struct{})}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, fake)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	r := &Router{cfg: Config{}, log: slog.New(slog.DiscardHandler), coords: map[string]*coordConn{}, metrics: newMetrics(prometheus.NewRegistry()),
		model: &placement.ModelInfo{Name: "m", Vocab: 1000, Layers: 1, Context: 64}}
	t.Cleanup(r.closeConns)
	r.setCoordinators(map[string]placement.Coordinator{"c1": {ID: "c1", Addr: lis.Addr().String()}})
	api := httptest.NewServer(r.Handler())
	t.Cleanup(api.Close)
	return r, fake, api.URL, lis.Addr().String()
}

type result struct {
	code  int
	retry string
	body  string
}

func complete(url string) chan result {
	out := make(chan result, 1)
	go func() {
		b, _ := json.Marshal(map[string]any{"prompt": "x", "max_tokens": 8, "temperature": 0})
		resp, err := http.Post(url+"/v1/completions", "application/json", bytes.NewReader(b))
		if err != nil {
			out <- result{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		out <- result{resp.StatusCode, resp.Header.Get("Retry-After"), string(body)}
	}()
	return out
}

// The router closes a coordinator's connection when its registration
// lapses (as when etcd was away); a request streaming from it is not
// answered 499 but resumed on the same coordinator once it is back, with
// the tokens already received, and completes.
func TestBrokenStreamRetriedOnSameCoordinator(t *testing.T) {
	r, fake, url, addr := retryRouter(t)
	b, _ := json.Marshal(map[string]any{"prompt": "x", "max_tokens": 8, "temperature": 0, "stream": true})
	resp, err := http.Post(url+"/v1/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	events := bufio.NewScanner(resp.Body)
	var text strings.Builder
	next := func() (string, bool) {
		for events.Scan() {
			line, ok := strings.CutPrefix(events.Text(), "data: ")
			if !ok {
				continue
			}
			if line == "[DONE]" {
				return "", false
			}
			var c struct {
				Choices []struct{ Text string }   `json:"choices"`
				Error   *struct{ Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				t.Fatal(err)
			}
			if c.Error != nil {
				t.Fatalf("error in the stream: %s", c.Error.Message)
			}
			return c.Choices[0].Text, true
		}
		return "", false
	}
	for range 3 { // the client has three tokens
		piece, ok := next()
		if !ok {
			t.Fatal("the stream ended early")
		}
		text.WriteString(piece)
	}
	<-fake.stalled
	r.setCoordinators(map[string]placement.Coordinator{}) // registration lapsed: connection closed
	<-fake.cut                                            // the router's stream is gone
	time.Sleep(2 * retryPause)                            // the outage lasts a round or two of retries
	r.setCoordinators(map[string]placement.Coordinator{"c1": {ID: "c1", Addr: addr}})
	for piece, ok := next(); ok; piece, ok = next() {
		text.WriteString(piece)
	}
	if want := " t0 t1 t2 t3 t4 t5 t6 t7"; text.String() != want {
		t.Errorf("text %q, want %q", text.String(), want)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if n := len(fake.calls); n != 2 {
		t.Fatalf("%d calls to the coordinator, want 2", n)
	}
	if rs := fake.calls[1].Resumed; len(rs) != 1 || rs[0].Index != 0 || !slices.Equal(rs[0].Tokens, []int32{100, 101, 102}) {
		t.Errorf("resumed %v, want choice 0 with the three tokens received", rs)
	}
}

// With no coordinator to resume on within the retry window, the request
// gets 503 with Retry-After and a message that says why — never 499.
func TestBrokenStreamUnavailable(t *testing.T) {
	defer func(w time.Duration) { retryWindow = w }(retryWindow)
	retryWindow = time.Second
	r, fake, url, _ := retryRouter(t)
	res := complete(url)
	<-fake.stalled
	r.setCoordinators(map[string]placement.Coordinator{})
	got := <-res
	if got.code != http.StatusServiceUnavailable || got.retry == "" {
		t.Fatalf("status %d, Retry-After %q, want 503 with Retry-After: %s", got.code, got.retry, got.body)
	}
	for _, want := range []string{"could not be resumed", "no coordinator is available", "connection is closing"} {
		if !strings.Contains(got.body, want) {
			t.Errorf("error %s does not say %q", got.body, want)
		}
	}
}

// textDelta is a message's text, as a coordinator sends it.
func textDelta(s string) []*pb.Delta { return []*pb.Delta{{Delta: &pb.Delta_Text{Text: s}}} }
