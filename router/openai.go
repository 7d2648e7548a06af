package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	handle("GET", "/v1/models", m.count("models", r.models))
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
	json.NewEncoder(w).Encode(e)
}

func badRequest(w http.ResponseWriter, param, format string, a ...any) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", param, fmt.Sprintf(format, a...))
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

// common holds the fields completions and chat completions share.
type common struct {
	Model             string             `json:"model"`
	MaxTokens         *int64             `json:"max_tokens"`
	Temperature       *float64           `json:"temperature"`
	TopP              *float64           `json:"top_p"`
	TopK              *int64             `json:"top_k"`
	MinP              *float64           `json:"min_p"`
	Seed              *int64             `json:"seed"`
	Stop              json.RawMessage    `json:"stop"`
	Stream            bool               `json:"stream"`
	StreamOptions     *streamOptions     `json:"stream_options"`
	PresencePenalty   *float64           `json:"presence_penalty"`
	FrequencyPenalty  *float64           `json:"frequency_penalty"`
	RepetitionPenalty *float64           `json:"repetition_penalty"`
	LogitBias         map[string]float64 `json:"logit_bias"`
	N                 *int64             `json:"n"`
	ReturnTokenIDs    bool               `json:"return_token_ids"`
	ReturnRouting     bool               `json:"return_routing"`
	// CachePrompt false computes the whole prompt even when the
	// coordinator has its prefix cached (llama.cpp server's field).
	CachePrompt *bool `json:"cache_prompt"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type completionRequest struct {
	common
	Prompt   json.RawMessage `json:"prompt"`
	Logprobs *int64          `json:"logprobs"`
	Echo     bool            `json:"echo"`
}

type chatRequest struct {
	common
	Messages            []chatMessage `json:"messages"`
	MaxCompletionTokens *int64        `json:"max_completion_tokens"`
	Logprobs            bool          `json:"logprobs"`
	TopLogprobs         *int64        `json:"top_logprobs"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// decode reads a JSON body into v, answering 400 itself on failure.
func decode(w http.ResponseWriter, req *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		badRequest(w, "", "reading the request body: %v", err)
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		badRequest(w, "", "malformed JSON body: %v", err)
		return false
	}
	return true
}

// build turns the shared fields into a GenerateRequest, or answers 400/404.
func (r *Router) build(w http.ResponseWriter, c *common) (*pb.GenerateRequest, bool) {
	info := r.modelInfo()
	if info == nil {
		writeError(w, http.StatusServiceUnavailable, "service_unavailable", "", "no model is being served yet")
		return nil, false
	}
	if c.Model != "" && c.Model != info.Name {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model", fmt.Sprintf("the model %q does not exist; this server serves %q", c.Model, info.Name))
		return nil, false
	}
	if c.N != nil && *c.N != 1 {
		badRequest(w, "n", "n = %d is not supported (only 1)", *c.N)
		return nil, false
	}
	g := &pb.GenerateRequest{Sampling: &pb.SamplingParams{Temperature: 1, TopP: 1}, ReturnRouting: c.ReturnRouting,
		NoPromptCache: c.CachePrompt != nil && !*c.CachePrompt}
	sp := g.Sampling
	if c.MaxTokens != nil {
		if *c.MaxTokens < 1 || *c.MaxTokens > math.MaxInt32 {
			badRequest(w, "max_tokens", "max_tokens = %d, want at least 1", *c.MaxTokens)
			return nil, false
		}
		g.MaxTokens = uint32(*c.MaxTokens)
	}
	f32 := func(name string, v *float64, dst *float32, lo, hi float64, loOpen bool) bool {
		if v == nil {
			return true
		}
		if math.IsNaN(*v) || *v < lo || *v > hi || (loOpen && *v == lo) {
			open := "["
			if loOpen {
				open = "("
			}
			badRequest(w, name, "%s = %g, want a value in %s%g, %g]", name, *v, open, lo, hi)
			return false
		}
		*dst = float32(*v)
		return true
	}
	if !f32("temperature", c.Temperature, &sp.Temperature, 0, 2, false) ||
		!f32("top_p", c.TopP, &sp.TopP, 0, 1, true) ||
		!f32("min_p", c.MinP, &sp.MinP, 0, 1, false) ||
		!f32("presence_penalty", c.PresencePenalty, &sp.PresencePenalty, -2, 2, false) ||
		!f32("frequency_penalty", c.FrequencyPenalty, &sp.FrequencyPenalty, -2, 2, false) ||
		!f32("repetition_penalty", c.RepetitionPenalty, &sp.RepetitionPenalty, 0, 10, true) {
		return nil, false
	}
	if c.TopK != nil {
		if *c.TopK < 0 || *c.TopK > math.MaxInt32 {
			badRequest(w, "top_k", "top_k = %d, want ≥ 0", *c.TopK)
			return nil, false
		}
		sp.TopK = uint32(*c.TopK)
	}
	if c.Seed != nil {
		sp.Seed = uint64(*c.Seed)
	} else {
		sp.Seed = mrand.Uint64()
	}
	for k, v := range c.LogitBias {
		id, err := strconv.ParseInt(k, 10, 32)
		if err != nil || id < 0 || id >= int64(info.Vocab) {
			badRequest(w, "logit_bias", "logit_bias key %q is not a token ID below %d", k, info.Vocab)
			return nil, false
		}
		if v < -100 || v > 100 {
			badRequest(w, "logit_bias", "logit_bias %g for token %s is outside [-100, 100]", v, k)
			return nil, false
		}
		if sp.LogitBias == nil {
			sp.LogitBias = map[int32]float32{}
		}
		sp.LogitBias[int32(id)] = float32(v)
	}
	if len(c.Stop) > 0 && string(c.Stop) != "null" {
		var one string
		var many []string
		if json.Unmarshal(c.Stop, &one) == nil {
			many = []string{one}
		} else if json.Unmarshal(c.Stop, &many) != nil {
			badRequest(w, "stop", "stop must be a string or an array of strings")
			return nil, false
		}
		if len(many) > 4 {
			badRequest(w, "stop", "at most 4 stop sequences, got %d", len(many))
			return nil, false
		}
		g.Stop = many
	}
	return g, true
}

func (r *Router) completions(w http.ResponseWriter, req *http.Request) {
	var cr completionRequest
	if !decode(w, req, &cr) {
		return
	}
	g, ok := r.build(w, &cr.common)
	if !ok {
		return
	}
	if cr.Echo {
		badRequest(w, "echo", "echo is not supported")
		return
	}
	var s string
	var ids []int32
	var strs []string
	switch {
	case len(cr.Prompt) == 0 || string(cr.Prompt) == "null":
		badRequest(w, "prompt", "prompt is required")
		return
	case json.Unmarshal(cr.Prompt, &s) == nil:
		g.Prompt = s
	case json.Unmarshal(cr.Prompt, &ids) == nil:
		g.PromptTokens = ids
	case json.Unmarshal(cr.Prompt, &strs) == nil && len(strs) == 1:
		g.Prompt = strs[0]
	default:
		badRequest(w, "prompt", "prompt must be a string, an array of token IDs, or an array of one string")
		return
	}
	if g.Prompt == "" && len(g.PromptTokens) == 0 {
		badRequest(w, "prompt", "prompt is empty")
		return
	}
	logprobs := -1
	if cr.Logprobs != nil {
		if *cr.Logprobs < 0 || *cr.Logprobs > 5 {
			badRequest(w, "logprobs", "logprobs = %d, want 0 to 5", *cr.Logprobs)
			return
		}
		logprobs = int(*cr.Logprobs)
		g.TopLogprobs, g.Logprobs = uint32(logprobs), true
	}
	r.run(w, req, g, &cr.common, kindCompletion, logprobs)
}

func (r *Router) chatCompletions(w http.ResponseWriter, req *http.Request) {
	var cr chatRequest
	if !decode(w, req, &cr) {
		return
	}
	if cr.MaxCompletionTokens != nil {
		cr.MaxTokens = cr.MaxCompletionTokens
	}
	g, ok := r.build(w, &cr.common)
	if !ok {
		return
	}
	if len(cr.Messages) == 0 {
		badRequest(w, "messages", "messages is required and must not be empty")
		return
	}
	for i, m := range cr.Messages {
		text, err := messageText(m.Content)
		if err != nil {
			badRequest(w, fmt.Sprintf("messages[%d].content", i), "%v", err)
			return
		}
		g.Messages = append(g.Messages, &pb.ChatMessage{Role: m.Role, Content: text})
	}
	logprobs := -1
	if cr.Logprobs {
		logprobs = 0
		if cr.TopLogprobs != nil {
			if *cr.TopLogprobs < 0 || *cr.TopLogprobs > 20 {
				badRequest(w, "top_logprobs", "top_logprobs = %d, want 0 to 20", *cr.TopLogprobs)
				return
			}
			logprobs = int(*cr.TopLogprobs)
		}
		g.TopLogprobs, g.Logprobs = uint32(logprobs), true
	}
	r.run(w, req, g, &cr.common, kindChat, logprobs)
}

// messageText accepts a string or an array of text parts.
func messageText(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or an array of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part of type %q is not supported (only text)", p.Type)
		}
		sb.WriteString(p.Text)
	}
	return sb.String(), nil
}

func (r *Router) models(w http.ResponseWriter, _ *http.Request) {
	type entry struct {
		ID           string `json:"id"`
		Object       string `json:"object"`
		Created      int64  `json:"created"`
		OwnedBy      string `json:"owned_by"`
		Context      int    `json:"context_length"`
		ChatTemplate string `json:"chat_template"`
	}
	out := struct {
		Object string  `json:"object"`
		Data   []entry `json:"data"`
	}{Object: "list", Data: []entry{}}
	if info := r.modelInfo(); info != nil {
		out.Data = append(out.Data, entry{ID: info.Name, Object: "model", OwnedBy: "switchyard", Context: info.Context, ChatTemplate: info.ChatTemplate})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
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

// run sends the request to a coordinator and writes the answer, streamed
// or whole. logprobs < 0 means none were asked for.
func (r *Router) run(w http.ResponseWriter, req *http.Request, g *pb.GenerateRequest, c *common, k kind, logprobs int) {
	r.metrics.inFlight.Inc()
	defer r.metrics.inFlight.Dec()
	start := time.Now()
	prefix := "cmpl-"
	if k == kindChat {
		prefix = "chatcmpl-"
	}
	g.RequestId = newID(prefix)
	gs := &genStream{r: r, ctx: req.Context(), req: g, tried: map[string]bool{}}
	gs.key, gs.keyed = affinityKey(g)
	defer gs.close()
	// Wait for the first message so that errors found before generation
	// starts get a proper HTTP status.
	first, err := gs.recv()
	if err != nil {
		writeRPCError(w, err)
		return
	}
	r.metrics.ttft.Observe(time.Since(start).Seconds())
	last := time.Now()
	if first.ChatTemplate != "" {
		w.Header().Set("X-Switchyard-Chat-Template", first.ChatTemplate)
	}
	info := r.modelInfo()
	out := &response{id: g.RequestId, created: time.Now().Unix(), model: info.Name, kind: k, logprobs: logprobs, tokenIDs: c.ReturnTokenIDs,
		routing: c.ReturnRouting, layers: info.Layers, moeLayer: info.MoELayer}
	next := func() (*pb.GenerateResponse, error) {
		m := first
		if m != nil {
			first = nil
		} else {
			var err error
			if m, err = gs.recv(); err != nil {
				return nil, err
			}
			if len(m.Tokens) > 0 {
				now := time.Now()
				r.metrics.itl.Observe(now.Sub(last).Seconds())
				last = now
			}
		}
		if m.Usage != nil {
			r.metrics.tokens.WithLabelValues("prompt").Add(float64(m.Usage.PromptTokens))
			r.metrics.tokens.WithLabelValues("completion").Add(float64(m.Usage.CompletionTokens))
		}
		return m, nil
	}
	if c.Stream {
		out.stream(w, next, c.StreamOptions != nil && c.StreamOptions.IncludeUsage)
		return
	}
	for {
		m, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeRPCError(w, err)
			return
		}
		out.add(m)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out.whole())
}

// genStream is one request's stream of messages from the coordinators.
// When the stream to the coordinator serving it breaks (the coordinator
// died, or its connection was closed), the request is sent again with the
// tokens already received (resume_tokens) to another coordinator, or to
// the same one once every one was tried, and the stream continues where it
// was: the client sees no gap beyond latency. After retryWindow of trying
// it fails with 503 and the reason.
type genStream struct {
	r     *Router
	ctx   context.Context
	req   *pb.GenerateRequest
	tried map[string]bool
	key   uint64 // affinityKey of req, when keyed
	keyed bool

	coord   *coordConn
	stream  pb.CoordinatorService_GenerateClient
	lastErr error     // why the last stream broke
	cause   error     // why the stream first broke (since the last message)
	brokeAt time.Time // when
	got     []int32   // tokens received so far
	resumed bool
	base    int // tokens received before the current coordinator
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
	if len(s.got) > 0 {
		req = proto.Clone(s.req).(*pb.GenerateRequest)
		req.ResumeTokens = slices.Clone(s.got)
		if req.MaxTokens > 0 {
			req.MaxTokens -= uint32(len(s.got))
		}
		s.resumed, s.base = true, len(s.got)
		s.r.metrics.resumed.Inc()
		s.r.log.Warn("coordinator stream broke mid-request; resuming", "request", req.RequestId, "on", coord.id, "tokens", len(s.got), "why", s.lastErr)
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
			for _, t := range m.Tokens {
				s.got = append(s.got, t.Id)
			}
			if s.resumed {
				// The first coordinator sent these already; usage counts
				// the tokens it generated too.
				m.ChatTemplate, m.PromptRouting = "", nil
				if m.Usage != nil {
					m.Usage.CompletionTokens += uint32(s.base)
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

// response accumulates a completion.
type response struct {
	id       string
	created  int64
	model    string
	kind     kind
	logprobs int
	tokenIDs bool
	routing  bool
	layers   int
	moeLayer func(l int) bool // false: a dense layer, whose slots hold no experts

	text          strings.Builder
	promptRouting []uint32
	k             int
	tokens        []*pb.Token
	finish        pb.FinishReason
	usage         *pb.Usage
	offset        int
}

func (o *response) add(m *pb.GenerateResponse) {
	if m.PromptRouting != nil {
		o.promptRouting, o.k = m.PromptRouting, int(m.ExpertsPerToken)
	}
	o.text.WriteString(m.Text)
	o.tokens = append(o.tokens, m.Tokens...)
	if m.FinishReason != pb.FinishReason_FINISH_REASON_UNSPECIFIED {
		o.finish = m.FinishReason
	}
	if m.Usage != nil {
		o.usage = m.Usage
	}
}

func finishString(f pb.FinishReason) *string {
	var s string
	switch f {
	case pb.FinishReason_FINISH_REASON_STOP:
		s = "stop"
	case pb.FinishReason_FINISH_REASON_LENGTH:
		s = "length"
	default:
		return nil
	}
	return &s
}

type usageJSON struct {
	PromptTokens        uint32               `json:"prompt_tokens"`
	CompletionTokens    uint32               `json:"completion_tokens"`
	TotalTokens         uint32               `json:"total_tokens"`
	PromptTokensDetails *promptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

// promptTokensDetails is OpenAI's: how many prompt tokens were served from
// the prefix cache.
type promptTokensDetails struct {
	CachedTokens uint32 `json:"cached_tokens"`
}

func usageOf(u *pb.Usage) *usageJSON {
	if u == nil {
		return nil
	}
	return &usageJSON{u.PromptTokens, u.CompletionTokens, u.PromptTokens + u.CompletionTokens,
		&promptTokensDetails{CachedTokens: u.CachedTokens}}
}

func pieceString(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

func ints(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// completionLogprobs is the legacy completions logprobs object.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type chatTokenLogprob struct {
	Token       string           `json:"token"`
	Logprob     float32          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []chatTopLogprob `json:"top_logprobs"`
}

type chatTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// logprobsOf renders tokens' log-probabilities in the shape of o.kind.
func (o *response) logprobsOf(tokens []*pb.Token) any {
	if o.logprobs < 0 {
		return nil
	}
	if o.kind == kindChat {
		content := []chatTokenLogprob{}
		for _, t := range tokens {
			e := chatTokenLogprob{Token: pieceString(t.Piece), Logprob: t.Logprob, Bytes: ints(t.Piece), TopLogprobs: []chatTopLogprob{}}
			for _, a := range t.Top {
				e.TopLogprobs = append(e.TopLogprobs, chatTopLogprob{pieceString(a.Piece), a.Logprob, ints(a.Piece)})
			}
			content = append(content, e)
		}
		return map[string]any{"content": content}
	}
	lp := completionLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
	for _, t := range tokens {
		lp.Tokens = append(lp.Tokens, pieceString(t.Piece))
		lp.TokenLogprobs = append(lp.TokenLogprobs, t.Logprob)
		top := map[string]float32{}
		for _, a := range t.Top {
			top[pieceString(a.Piece)] = a.Logprob
		}
		lp.TopLogprobs = append(lp.TopLogprobs, top)
		lp.TextOffset = append(lp.TextOffset, o.offset)
		o.offset += len(t.Piece)
	}
	return lp
}

func tokenIDs(tokens []*pb.Token) []int32 {
	ids := make([]int32, len(tokens))
	for i, t := range tokens {
		ids[i] = t.Id
	}
	return ids
}

func (o *response) choice(text string, tokens []*pb.Token, finish pb.FinishReason, delta bool, firstChunk bool) map[string]any {
	ch := map[string]any{"index": 0, "finish_reason": finishString(finish), "logprobs": o.logprobsOf(tokens)}
	if o.kind == kindChat {
		msg := map[string]any{}
		if !delta || firstChunk {
			msg["role"] = "assistant"
		}
		if !delta || text != "" || firstChunk {
			msg["content"] = text
		}
		if delta {
			ch["delta"] = msg
		} else {
			ch["message"] = msg
		}
	} else {
		ch["text"] = text
	}
	if o.tokenIDs {
		ch["token_ids"] = tokenIDs(tokens)
	}
	if o.routing {
		rt := map[string]any{"tokens": o.shape(tokenRouting(tokens))}
		if o.promptRouting != nil {
			rt["prompt"] = o.shape(o.promptRouting)
			o.promptRouting = nil // sent once
		}
		ch["routing"] = rt
	}
	return ch
}

func tokenRouting(tokens []*pb.Token) []uint32 {
	var out []uint32
	for _, t := range tokens {
		out = append(out, t.Routing...)
	}
	return out
}

// shape turns flat routing (positions × layers × k) into nested lists:
// per position, per layer, the k experts chosen (best first); none for a
// dense layer.
func (o *response) shape(flat []uint32) [][][]uint32 {
	out := [][][]uint32{}
	if o.k == 0 || o.layers == 0 {
		return out
	}
	per := o.layers * o.k
	for p := 0; p+per <= len(flat); p += per {
		pos := make([][]uint32, o.layers)
		for l := range o.layers {
			pos[l] = flat[p+l*o.k : p+(l+1)*o.k]
			if !o.moeLayer(l) {
				pos[l] = []uint32{}
			}
		}
		out = append(out, pos)
	}
	return out
}

func (o *response) object(chunk bool) string {
	switch {
	case o.kind == kindChat && chunk:
		return "chat.completion.chunk"
	case o.kind == kindChat:
		return "chat.completion"
	}
	return "text_completion"
}

func (o *response) whole() map[string]any {
	return map[string]any{
		"id": o.id, "object": o.object(false), "created": o.created, "model": o.model,
		"choices": []any{o.choice(o.text.String(), o.tokens, o.finish, false, false)},
		"usage":   usageOf(o.usage),
	}
}

// stream writes server-sent events: one chunk per coordinator message,
// an optional usage chunk, then [DONE].
func (o *response) stream(w http.ResponseWriter, next func() (*pb.GenerateResponse, error), includeUsage bool) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	first := true
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
		if m.Usage != nil {
			o.usage = m.Usage
		}
		if m.PromptRouting != nil {
			o.promptRouting, o.k = m.PromptRouting, int(m.ExpertsPerToken)
		}
		send(map[string]any{
			"id": o.id, "object": o.object(true), "created": o.created, "model": o.model,
			"choices": []any{o.choice(m.Text, m.Tokens, m.FinishReason, true, first)},
		})
		first = false
	}
	if includeUsage && o.usage != nil {
		send(map[string]any{"id": o.id, "object": o.object(true), "created": o.created, "model": o.model,
			"choices": []any{}, "usage": usageOf(o.usage)})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}
