package router

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// maxBody bounds a request body.
const maxBody = 4 << 20

// Handler returns the HTTP API.
func (r *Router) Handler() http.Handler {
	mux := http.NewServeMux()
	allow := map[string][]string{} // path → its methods, for 405 answers
	handle := func(method, path string, h http.Handler) {
		mux.Handle(method+" "+path, h)
		allow[path] = append(allow[path], method)
	}
	m := r.metrics
	handle("POST", "/v1/completions", m.count("completions", r.completions))
	handle("POST", "/v1/chat/completions", m.count("chat_completions", r.chatCompletions))
	handle("POST", "/v1/messages", m.count("messages", r.messages))
	handle("GET", "/v1/models", m.count("models", r.models))
	handle("GET", "/v1/models/{id}", m.count("models", r.modelByID))
	handle("GET", "/v1/routing/stats", m.count("routing_stats", r.routingStats))
	handle("GET", "/metrics", promhttp.HandlerFor(r.cfg.Gatherer, promhttp.HandlerOpts{}))
	handle("GET", "/dashboard", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(dashboardHTML)
	}))
	handle("GET", "/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
	handle("GET", "/readyz", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.modelInfo() == nil || !r.ready(req.Context()) {
			http.Error(w, "not ready: no coordinator can serve every expert unit yet\n", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	}))
	// Requests to no route, or with a method the route does not take, are
	// counted under one endpoint label, "unknown", so that probes and
	// mistyped URLs show without unbounding the label set.
	mux.HandleFunc("/", m.count("unknown", func(w http.ResponseWriter, req *http.Request) {
		if methods := allow[req.URL.Path]; methods != nil {
			w.Header().Set("Allow", strings.Join(methods, ", "))
			writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", fmt.Sprintf("%s %s is not allowed (use %s)", req.Method, req.URL.Path, strings.Join(methods, " or ")))
			return
		}
		writeError(w, http.StatusNotFound, "invalid_request_error", "", fmt.Sprintf("no route for %s %s", req.Method, req.URL.Path))
	}))
	return mux
}

// apiError is OpenAI's error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, code int, typ, param, msg string) {
	var e apiError
	e.Error.Message, e.Error.Type = msg, typ
	if param != "" {
		e.Error.Param = &param
	}
	if code == http.StatusNotFound && param == "model" {
		c := "model_not_found"
		e.Error.Code = &c
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(e)
}

// writeRPCError maps a coordinator's gRPC error to an HTTP error.
func writeRPCError(w http.ResponseWriter, err error) {
	st, _ := status.FromError(err)
	code, typ := http.StatusInternalServerError, "server_error"
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		code, typ = http.StatusBadRequest, "invalid_request_error"
	case codes.NotFound:
		code, typ = http.StatusNotFound, "invalid_request_error"
	case codes.Unavailable:
		code, typ = http.StatusServiceUnavailable, "service_unavailable"
	case codes.DeadlineExceeded:
		code, typ = http.StatusGatewayTimeout, "timeout"
	case codes.ResourceExhausted:
		code, typ = http.StatusTooManyRequests, "rate_limit_exceeded"
	case codes.Canceled:
		// Never 499: that is a client's code. A request the router could
		// not finish is a server-side outage; the client may try again.
		code, typ = http.StatusServiceUnavailable, "service_unavailable"
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, code, typ, "", st.Message())
}

// writeJSON writes v as the answer, without HTML escaping (OpenAI's
// answers carry '<' and '&' as they are).
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// marshal is json.Marshal without HTML escaping, for server-sent events.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func badRequest(w http.ResponseWriter, param, format string, a ...any) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", param, fmt.Sprintf(format, a...))
}

// refuse answers a refused request.
func refuse(w http.ResponseWriter, e *requestError) {
	writeError(w, e.status, e.typ, e.param, e.msg)
}

// readBody reads a request body of at most maxBody bytes.
func readBody(w http.ResponseWriter, req *http.Request) ([]byte, *requestError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, badParam("", "the request body is over the limit of %d bytes", maxBody)
	case err != nil:
		return nil, badParam("", "reading the request body: %v", err)
	}
	return body, nil
}

// served is the model being served, or an answer saying there is none.
func (r *Router) served(w http.ResponseWriter) *placement.ModelInfo {
	info := r.modelInfo()
	if info == nil {
		writeError(w, http.StatusServiceUnavailable, "service_unavailable", "", "no model is being served yet")
	}
	return info
}

func (r *Router) completions(w http.ResponseWriter, req *http.Request) {
	info := r.served(w)
	if info == nil {
		return
	}
	body, e := readBody(w, req)
	if e != nil {
		refuse(w, e)
		return
	}
	g, cr, e := parseCompletion(body, info)
	if e != nil {
		refuse(w, e)
		return
	}
	logprobs := -1
	if cr.Logprobs != nil {
		logprobs = int(*cr.Logprobs)
	}
	r.run(w, req, g, &cr.common, kindCompletion, logprobs)
}

func (r *Router) chatCompletions(w http.ResponseWriter, req *http.Request) {
	info := r.served(w)
	if info == nil {
		return
	}
	body, e := readBody(w, req)
	if e != nil {
		refuse(w, e)
		return
	}
	g, cr, e := parseChat(body, info)
	if e != nil {
		refuse(w, e)
		return
	}
	g.KeepReasoning = r.cfg.ReasoningFormat == chat.ReasoningNone
	logprobs := -1
	if g.Logprobs {
		logprobs = int(g.TopLogprobs)
	}
	r.run(w, req, g, &cr.common, kindChat, logprobs)
}

// modelEntry is a model in OpenAI's shape, with the context length and
// chat template added.
type modelEntry struct {
	ID           string `json:"id"`
	Object       string `json:"object"`
	Created      int64  `json:"created"`
	OwnedBy      string `json:"owned_by"`
	Context      int    `json:"context_length"`
	ChatTemplate string `json:"chat_template"`
}

func entryOf(info *placement.ModelInfo) modelEntry {
	return modelEntry{ID: info.Name, Object: "model", OwnedBy: "switchyard", Context: info.Context, ChatTemplate: info.ChatTemplate}
}

// modelByID answers GET /v1/models/{id}.
func (r *Router) modelByID(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	info := r.modelInfo()
	if info == nil || info.Name != id {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model", fmt.Sprintf("the model %q does not exist", id))
		return
	}
	writeJSON(w, entryOf(info))
}

func (r *Router) models(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{Object: "list", Data: []modelEntry{}}
	if info := r.modelInfo(); info != nil {
		out.Data = append(out.Data, entryOf(info))
	}
	writeJSON(w, out)
}

type kind int

const (
	kindCompletion kind = iota
	kindChat
)

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// exchange is a request's messages from the coordinators, counted in the
// router's metrics as they come.
type exchange struct {
	r             *Router
	gs            *genStream
	first         *pb.GenerateResponse // the first message, until next returns it
	last          time.Time            // when the last token came
	promptCounted bool
}

// open sends g (its RequestId set) to a coordinator and waits for its
// first message, so that errors found before generation starts get a
// proper HTTP status; it names the chat template used in w's headers. The
// caller closes the exchange.
func (r *Router) open(w http.ResponseWriter, req *http.Request, g *pb.GenerateRequest) (*exchange, error) {
	r.metrics.inFlight.Inc()
	start := time.Now()
	gs := &genStream{r: r, ctx: req.Context(), req: g, tried: map[string]bool{}}
	gs.key, gs.keyed = affinityKey(g)
	x := &exchange{r: r, gs: gs}
	first, err := gs.recv()
	if err != nil {
		x.close()
		return nil, err
	}
	r.metrics.ttft.Observe(time.Since(start).Seconds())
	x.first, x.last = first, time.Now()
	if t := first.ChatTemplate; t != "" {
		w.Header().Set("X-Switchyard-Chat-Template", t)
	}
	return x, nil
}

func (x *exchange) close() {
	x.gs.close()
	x.r.metrics.inFlight.Dec()
}

// next returns the next message, io.EOF after the last.
func (x *exchange) next() (*pb.GenerateResponse, error) {
	m := x.first
	if m != nil {
		x.first = nil
	} else {
		var err error
		if m, err = x.gs.recv(); err != nil {
			return nil, err
		}
		if len(m.Tokens) > 0 {
			now := time.Now()
			x.r.metrics.itl.Observe(now.Sub(x.last).Seconds())
			x.last = now
		}
	}
	if m.Usage != nil {
		if !x.promptCounted { // every choice reports the one prompt
			x.r.metrics.tokens.WithLabelValues("prompt").Add(float64(m.Usage.PromptTokens))
			x.promptCounted = true
		}
		x.r.metrics.tokens.WithLabelValues("completion").Add(float64(m.Usage.CompletionTokens))
	}
	return m, nil
}

// drain passes every message to add, up to the last, and returns the
// error that ended the exchange early, if one did.
func (x *exchange) drain(add func(*pb.GenerateResponse)) error {
	for {
		m, err := x.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		add(m)
	}
}

// run sends the request to a coordinator and writes the answer, streamed
// or whole. logprobs < 0 means none were asked for.
func (r *Router) run(w http.ResponseWriter, req *http.Request, g *pb.GenerateRequest, c *common, k kind, logprobs int) {
	prefix := "cmpl-"
	if k == kindChat {
		prefix = "chatcmpl-"
	}
	g.RequestId = newID(prefix)
	x, err := r.open(w, req, g)
	if err != nil {
		writeRPCError(w, err)
		return
	}
	defer x.close()
	info := r.modelInfo()
	out := &response{id: g.RequestId, created: time.Now().Unix(), model: info.Name, kind: k, logprobs: logprobs, tokenIDs: c.ReturnTokenIDs,
		routing: c.ReturnRouting, layers: info.Layers, moeLayer: info.MoELayer}
	if c.Stream {
		out.stream(w, x.next, c.StreamOptions != nil && c.StreamOptions.IncludeUsage)
		return
	}
	if err := x.drain(func(m *pb.GenerateResponse) { out.add(m) }); err != nil {
		writeRPCError(w, err)
		return
	}
	writeJSON(w, out.whole())
}

// stream writes server-sent events: a chunk per coordinator message, an
// optional usage chunk, then [DONE].
func (o *response) stream(w http.ResponseWriter, next func() (*pb.GenerateResponse, error), includeUsage bool) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(v any) {
		fmt.Fprintf(w, "data: %s\n\n", marshal(v))
		if flusher != nil {
			flusher.Flush()
		}
	}
	for {
		m, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// Headers are gone: report the error in the stream, as OpenAI does.
			st, _ := status.FromError(err)
			var e apiError
			e.Error.Message, e.Error.Type = st.Message(), "server_error"
			send(e)
			break
		}
		send(o.chunk(m))
	}
	if includeUsage && o.usage() != nil {
		send(o.usageChunk())
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

// genStream is one request's stream of messages from the coordinators.
// When the stream to the coordinator serving it breaks (the coordinator
// died, or its connection was closed), the request is sent again with the
// choices not yet finished and the tokens each had received (resumed) to
// another coordinator, or to the same one once every one was tried, and
// the stream continues where it was: the client sees no gap beyond
// latency. After retryWindow of trying it fails with 503 and the reason.
type genStream struct {
	r     *Router
	ctx   context.Context
	req   *pb.GenerateRequest
	tried map[string]bool
	key   uint64 // affinityKey of req, when keyed
	keyed bool

	coord    *coordConn
	stream   pb.CoordinatorService_GenerateClient
	lastErr  error              // why the last stream broke
	cause    error              // why the stream first broke (since the last message)
	brokeAt  time.Time          // when
	got      map[uint32][]int32 // tokens received so far, per choice
	finished map[uint32]bool    // choices whose last message came
	resumed  bool
	base     map[uint32]int // tokens of each choice received before the current coordinator
}

// Retrying a broken stream: for at most retryWindow after it first broke,
// waiting retryPause between rounds over every coordinator. (Variables
// for the tests.)
var (
	retryWindow = 20 * time.Second
	retryPause  = 250 * time.Millisecond
)

func (s *genStream) close() {
	if s.coord != nil {
		s.coord.inFlight.Add(-1)
		s.coord = nil
	}
}

// resumable reports whether err means the coordinator is gone (rather
// than that the request itself failed).
func resumable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted:
		return true
	case codes.Internal, codes.Unknown:
		return strings.Contains(err.Error(), "transport") || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection")
	}
	return false
}

// broken reports whether err broke the stream rather than ended the
// request: the coordinator is gone, or the stream was cancelled while the
// client is still there (the router closes a coordinator's connection
// when its registration lapses, as it does when etcd was away).
func (s *genStream) broken(err error) bool {
	return s.ctx.Err() == nil && (resumable(err) || status.Code(err) == codes.Canceled)
}

// retry decides, after the stream broke with err, whether to open it
// again: on a coordinator not yet tried, or, once every one was, on any
// (the same one too) after a pause, until retryWindow has passed.
func (s *genStream) retry(err error) bool {
	s.close()
	s.stream, s.lastErr = nil, err
	if s.brokeAt.IsZero() {
		s.brokeAt, s.cause = time.Now(), err
	}
	if time.Since(s.brokeAt) > retryWindow {
		return false
	}
	if s.r.pickExcept(s.tried) != nil {
		return true
	}
	select {
	case <-s.ctx.Done():
		return false
	case <-time.After(retryPause):
	}
	clear(s.tried)
	return true
}

// failure is the error a request that could not be finished gets: a
// broken stream becomes Unavailable (503 with Retry-After) saying why.
func (s *genStream) failure(err error) error {
	if !s.broken(err) {
		return err
	}
	why := status.Convert(err).Message()
	if s.cause != nil && s.cause != err {
		why += "; it broke with: " + status.Convert(s.cause).Message()
	}
	return status.Errorf(codes.Unavailable, "the stream from the coordinator broke and the request could not be resumed within %v: %s", retryWindow, why)
}

// open sends the request (with what was received so far) to the
// coordinator with the fewest requests in flight not yet tried.
func (s *genStream) open() error {
	s.close()
	coord := s.r.pickFor(s.key, s.keyed, s.tried)
	if coord == nil {
		return status.Error(codes.Unavailable, "no coordinator is available")
	}
	s.tried[coord.id] = true
	coord.inFlight.Add(1)
	s.coord = coord
	req := s.req
	if len(s.got) > 0 || len(s.finished) > 0 {
		req = proto.Clone(s.req).(*pb.GenerateRequest)
		s.base = map[uint32]int{}
		tokens := 0
		for i := range max(1, req.N) {
			if !s.finished[i] {
				req.Resumed = append(req.Resumed, &pb.ResumedChoice{Index: i, Tokens: slices.Clone(s.got[i])})
				s.base[i] = len(s.got[i])
				tokens += len(s.got[i])
			}
		}
		s.resumed = true
		s.r.metrics.resumed.Inc()
		s.r.log.Warn("coordinator stream broke mid-request; resuming", "request", req.RequestId, "on", coord.id, "choices", len(req.Resumed), "tokens", tokens, "why", s.lastErr)
	}
	st, err := coord.client.Generate(s.ctx, req)
	if err != nil {
		return err
	}
	s.stream = st
	return nil
}

// recv returns the next message. A request ended by the router's
// shutdown fails with ErrShuttingDown's message, as Unavailable.
func (s *genStream) recv() (*pb.GenerateResponse, error) {
	m, err := s.next()
	if err != nil && errors.Is(context.Cause(s.ctx), ErrShuttingDown) {
		return nil, status.Error(codes.Unavailable, ErrShuttingDown.Error())
	}
	return m, err
}

func (s *genStream) next() (*pb.GenerateResponse, error) {
	for {
		if s.stream == nil {
			if err := s.open(); err != nil {
				if s.broken(err) && s.retry(err) {
					continue
				}
				return nil, s.failure(err)
			}
		}
		m, err := s.stream.Recv()
		if err == nil {
			s.brokeAt, s.cause = time.Time{}, nil
			if s.got == nil {
				s.got, s.finished = map[uint32][]int32{}, map[uint32]bool{}
			}
			for _, t := range m.Tokens {
				s.got[m.Index] = append(s.got[m.Index], t.Id)
			}
			if m.FinishReason != pb.FinishReason_FINISH_REASON_UNSPECIFIED {
				s.finished[m.Index] = true
			}
			if s.resumed {
				// The first coordinator sent these already; usage counts
				// the tokens it generated too.
				m.ChatTemplate, m.PromptRouting = "", nil
				if m.Usage != nil {
					m.Usage.CompletionTokens += uint32(s.base[m.Index])
				}
			}
			return m, nil
		}
		if err == io.EOF {
			return nil, err
		}
		if !s.broken(err) || !s.retry(err) {
			return nil, s.failure(err)
		}
	}
}
