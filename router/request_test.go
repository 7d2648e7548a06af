package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// These tests drive the HTTP API as a client does and look at both ends:
// what reaches the coordinator (the request decoded and checked), and
// what the client gets (refusals, and answers shaped as OpenAI's API
// reference shows them). The coordinator is a fake that records each
// request and answers from a script: a real one cannot show what it was
// sent, nor send chosen log-probabilities or fail on demand. Expected
// values are written here from the OpenAI API reference's field
// definitions and bounds, not taken from the router.

// rqCoordinator records every request and answers each with its script,
// then ends the stream with err (nil: a clean end).
type rqCoordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	script []*pb.GenerateResponse
	err    error
	mu     sync.Mutex
	calls  []*pb.GenerateRequest
}

func (c *rqCoordinator) Generate(req *pb.GenerateRequest, stream pb.CoordinatorService_GenerateServer) error {
	c.mu.Lock()
	c.calls = append(c.calls, proto.Clone(req).(*pb.GenerateRequest))
	c.mu.Unlock()
	for _, m := range c.script {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return c.err
}

// sent returns how many requests reached the coordinator and the last.
func (c *rqCoordinator) sent() (int, *pb.GenerateRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return 0, nil
	}
	return len(c.calls), c.calls[len(c.calls)-1]
}

// rqModel is the model the API serves in these tests.
var rqModel = placement.ModelInfo{Name: "m", Vocab: 1000, Layers: 1, Context: 64, ChatTemplate: "gguf"}

// rqAPI serves the HTTP API over one fake coordinator on loopback.
func rqAPI(t *testing.T, fake *rqCoordinator) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, fake)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	info := rqModel
	r := &Router{cfg: Config{}, log: slog.New(slog.DiscardHandler), coords: map[string]*coordConn{}, metrics: newMetrics(prometheus.NewRegistry()),
		model: &info}
	t.Cleanup(r.closeConns)
	r.setCoordinators(map[string]placement.Coordinator{"c1": {ID: "c1", Addr: lis.Addr().String()}})
	api := httptest.NewServer(r.Handler())
	t.Cleanup(api.Close)
	return api.URL
}

// rqPost posts body and returns the status, headers and body.
func rqPost(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b.Bytes()
}

// rqDone is a one-token answer.
var rqDone = &pb.GenerateResponse{Deltas: textDelta("ok"), Tokens: []*pb.Token{{Id: 1, Piece: []byte("ok")}},
	FinishReason: pb.FinishReason_FINISH_REASON_STOP, Usage: &pb.Usage{PromptTokens: 2, CompletionTokens: 1}}

// rqEndpoints are the two generation endpoints, with the body fragment
// that makes a minimal valid request of each.
var rqEndpoints = []struct{ path, base string }{
	{"/v1/completions", `"prompt": "hi"`},
	{"/v1/chat/completions", `"messages": [{"role": "user", "content": "hi"}]`},
}

// TestSamplingFieldsDecoded: each OpenAI field both endpoints share
// reaches the coordinator as the value the client sent, and a request
// that sets none gets the API's defaults (temperature 1, top_p 1, n 1, no
// max_tokens: the rest of the context, no stop, no bias).
func TestSamplingFieldsDecoded(t *testing.T) {
	fake := &rqCoordinator{script: []*pb.GenerateResponse{rqDone}}
	url := rqAPI(t, fake)
	cases := []struct {
		name, fields string
		check        func(g *pb.GenerateRequest) bool
	}{
		{"defaults", ``, func(g *pb.GenerateRequest) bool {
			s := g.Sampling
			return s.Temperature == 1 && s.TopP == 1 && s.TopK == 0 && s.MinP == 0 && s.PresencePenalty == 0 && s.FrequencyPenalty == 0 &&
				s.RepetitionPenalty == 0 && s.LogitBias == nil && g.N == 1 && g.MaxTokens == 0 && g.Stop == nil &&
				!g.Logprobs && g.TopLogprobs == 0 && !g.ReturnRouting && !g.NoPromptCache
		}},
		{"model named", `"model": "m"`, func(g *pb.GenerateRequest) bool { return true }},
		{"temperature", `"temperature": 0.25`, func(g *pb.GenerateRequest) bool { return g.Sampling.Temperature == 0.25 }},
		{"temperature 0 (greedy)", `"temperature": 0`, func(g *pb.GenerateRequest) bool { return g.Sampling.Temperature == 0 }},
		{"top_p", `"top_p": 0.5`, func(g *pb.GenerateRequest) bool { return g.Sampling.TopP == 0.5 }},
		{"top_k", `"top_k": 40`, func(g *pb.GenerateRequest) bool { return g.Sampling.TopK == 40 }},
		{"min_p", `"min_p": 0.125`, func(g *pb.GenerateRequest) bool { return g.Sampling.MinP == 0.125 }},
		{"presence_penalty", `"presence_penalty": -1.5`, func(g *pb.GenerateRequest) bool { return g.Sampling.PresencePenalty == -1.5 }},
		{"frequency_penalty", `"frequency_penalty": 0.75`, func(g *pb.GenerateRequest) bool { return g.Sampling.FrequencyPenalty == 0.75 }},
		{"repetition_penalty", `"repetition_penalty": 1.25`, func(g *pb.GenerateRequest) bool { return g.Sampling.RepetitionPenalty == 1.25 }},
		{"seed", `"seed": 42`, func(g *pb.GenerateRequest) bool { return g.Sampling.Seed == 42 }},
		{"max_tokens", `"max_tokens": 5`, func(g *pb.GenerateRequest) bool { return g.MaxTokens == 5 }},
		{"n", `"n": 2`, func(g *pb.GenerateRequest) bool { return g.N == 2 }},
		{"stop, a string", `"stop": "END"`, func(g *pb.GenerateRequest) bool { return slices.Equal(g.Stop, []string{"END"}) }},
		{"stop, an array", `"stop": ["a", "\n\n"]`, func(g *pb.GenerateRequest) bool { return slices.Equal(g.Stop, []string{"a", "\n\n"}) }},
		{"stop null", `"stop": null`, func(g *pb.GenerateRequest) bool { return g.Stop == nil }},
		{"logit_bias", `"logit_bias": {"7": -100, "999": 100, "0": 2.5}`, func(g *pb.GenerateRequest) bool {
			return maps.Equal(g.Sampling.LogitBias, map[int32]float32{7: -100, 999: 100, 0: 2.5})
		}},
		{"return_routing", `"return_routing": true`, func(g *pb.GenerateRequest) bool { return g.ReturnRouting }},
		{"cache_prompt false", `"cache_prompt": false`, func(g *pb.GenerateRequest) bool { return g.NoPromptCache }},
		{"cache_prompt true", `"cache_prompt": true`, func(g *pb.GenerateRequest) bool { return !g.NoPromptCache }},
		{"stream", `"stream": true, "stream_options": {"include_usage": true}`, func(g *pb.GenerateRequest) bool { return true }},
		{"ignored fields", `"user": "u1", "store": false, "metadata": {"k": "v"}, "service_tier": "auto"`, func(g *pb.GenerateRequest) bool { return true }},
	}
	for _, ep := range rqEndpoints {
		for _, c := range cases {
			t.Run(ep.path+"/"+c.name, func(t *testing.T) {
				body := "{" + ep.base
				if c.fields != "" {
					body += ", " + c.fields
				}
				body += "}"
				before, _ := fake.sent()
				code, _, out := rqPost(t, url+ep.path, body)
				n, g := fake.sent()
				if code != 200 || n != before+1 {
					t.Fatalf("%s: status %d, %d requests reached the coordinator; want 200 and one: %s", body, code, n-before, out)
				}
				if !c.check(g) {
					t.Errorf("%s: the coordinator got %v", body, g)
				}
			})
		}
	}
}

// TestEndpointFieldsDecoded: the fields of one endpoint: the forms of a
// completions prompt, completions' logprobs (an integer: how many
// alternatives), and chat's max_completion_tokens (which replaces
// max_tokens) and logprobs (a boolean) with top_logprobs.
func TestEndpointFieldsDecoded(t *testing.T) {
	fake := &rqCoordinator{script: []*pb.GenerateResponse{rqDone}}
	url := rqAPI(t, fake)
	cases := []struct {
		path, body string
		check      func(g *pb.GenerateRequest) bool
	}{
		{"/v1/completions", `{"prompt": "Once upon"}`, func(g *pb.GenerateRequest) bool { return g.Prompt == "Once upon" && g.PromptTokens == nil }},
		{"/v1/completions", `{"prompt": [510, 17, 300]}`, func(g *pb.GenerateRequest) bool {
			return g.Prompt == "" && slices.Equal(g.PromptTokens, []int32{510, 17, 300})
		}},
		{"/v1/completions", `{"prompt": ["one string"]}`, func(g *pb.GenerateRequest) bool { return g.Prompt == "one string" }},
		{"/v1/completions", `{"prompt": "x", "logprobs": 0}`, func(g *pb.GenerateRequest) bool { return g.Logprobs && g.TopLogprobs == 0 }},
		{"/v1/completions", `{"prompt": "x", "logprobs": 5}`, func(g *pb.GenerateRequest) bool { return g.Logprobs && g.TopLogprobs == 5 }},
		{"/v1/completions", `{"prompt": "x", "echo": false}`, func(g *pb.GenerateRequest) bool { return true }},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 9}`, func(g *pb.GenerateRequest) bool { return g.MaxTokens == 9 }},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "max_completion_tokens": 9}`, func(g *pb.GenerateRequest) bool { return g.MaxTokens == 9 }},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "logprobs": true}`, func(g *pb.GenerateRequest) bool { return g.Logprobs && g.TopLogprobs == 0 }},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 20}`, func(g *pb.GenerateRequest) bool {
			return g.Logprobs && g.TopLogprobs == 20
		}},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "logprobs": false}`, func(g *pb.GenerateRequest) bool { return !g.Logprobs }},
		{"/v1/chat/completions", `{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello.", "reasoning_content": "greet"}, {"role": "user", "content": "bye"}]}`,
			func(g *pb.GenerateRequest) bool {
				m := g.Messages
				return len(m) == 4 && m[0].Role == "system" && m[0].Parts[0].GetText() == "Be brief." && m[2].Role == "assistant" &&
					m[2].ReasoningContent == "greet" && m[3].Parts[0].GetText() == "bye"
			}},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.body, func(t *testing.T) {
			before, _ := fake.sent()
			code, _, out := rqPost(t, url+c.path, c.body)
			n, g := fake.sent()
			if code != 200 || n != before+1 {
				t.Fatalf("status %d, %d requests reached the coordinator; want 200 and one: %s", code, n-before, out)
			}
			if !c.check(g) {
				t.Errorf("the coordinator got %v", g)
			}
		})
	}
}

// TestFieldBounds: every bounded field at its bounds (accepted) and just
// past them (refused with 400, OpenAI's invalid_request_error, the field
// as param and the reason in words), on both endpoints; a refused request
// never reaches a coordinator. The bounds are the OpenAI API reference's
// (temperature 0–2, top_p up to 1, penalties −2–2, logit_bias −100–100,
// up to 4 stop sequences, n ≥ 1, completions logprobs 0–5, chat
// top_logprobs 0–20), those of the extensions vLLM defines (top_k ≥ 0,
// min_p 0–1, repetition_penalty > 0), max_tokens under the model's
// context (64 here) and n up to 128, token IDs under the vocabulary
// (1000 here).
func TestFieldBounds(t *testing.T) {
	fake := &rqCoordinator{script: []*pb.GenerateResponse{rqDone}}
	url := rqAPI(t, fake)
	type bound struct {
		fields string
		ok     bool
		param  string
		msg    string // in the refusal
	}
	shared := []bound{
		{`"temperature": 0`, true, "", ""},
		{`"temperature": 2`, true, "", ""},
		{`"temperature": -0.01`, false, "temperature", "temperature = -0.01, want a value in [0, 2]"},
		{`"temperature": 2.01`, false, "temperature", "temperature = 2.01"},
		{`"top_p": 1`, true, "", ""},
		{`"top_p": 0.001`, true, "", ""},
		{`"top_p": 0`, false, "top_p", "top_p = 0, want a value in (0, 1]"},
		{`"top_p": 1.01`, false, "top_p", "top_p = 1.01"},
		{`"top_k": 0`, true, "", ""},
		{`"top_k": -1`, false, "top_k", "top_k = -1"},
		{`"min_p": 0`, true, "", ""},
		{`"min_p": 1`, true, "", ""},
		{`"min_p": -0.1`, false, "min_p", "min_p = -0.1"},
		{`"min_p": 1.5`, false, "min_p", "min_p = 1.5"},
		{`"presence_penalty": -2`, true, "", ""},
		{`"presence_penalty": 2`, true, "", ""},
		{`"presence_penalty": 2.5`, false, "presence_penalty", "presence_penalty = 2.5, want a value in [-2, 2]"},
		{`"frequency_penalty": -2`, true, "", ""},
		{`"frequency_penalty": -2.5`, false, "frequency_penalty", "frequency_penalty = -2.5"},
		{`"repetition_penalty": 10`, true, "", ""},
		{`"repetition_penalty": 0`, false, "repetition_penalty", "repetition_penalty = 0"},
		{`"repetition_penalty": 10.5`, false, "repetition_penalty", "repetition_penalty = 10.5"},
		{`"max_tokens": 1`, true, "", ""},
		{`"max_tokens": 63`, true, "", ""},
		{`"max_tokens": 0`, false, "max_tokens", "max_tokens = 0, want at least 1"},
		{`"max_tokens": -1`, false, "max_tokens", "max_tokens = -1"},
		{`"max_tokens": 64`, false, "max_tokens", "maximum context length is 64 tokens"},
		{`"n": 1`, true, "", ""},
		{`"n": 128`, true, "", ""},
		{`"n": 0`, false, "n", "n = 0, want 1 to 128"},
		{`"n": 129`, false, "n", "n = 129"},
		{`"logit_bias": {"999": -100}`, true, "", ""},
		{`"logit_bias": {"0": 100}`, true, "", ""},
		{`"logit_bias": {"1000": 1}`, false, "logit_bias", `logit_bias key "1000" is not a token ID below 1000`},
		{`"logit_bias": {"-1": 1}`, false, "logit_bias", `key "-1"`},
		{`"logit_bias": {"hello": 1}`, false, "logit_bias", `key "hello"`},
		{`"logit_bias": {"5": 100.5}`, false, "logit_bias", "outside [-100, 100]"},
		{`"stop": ["a", "b", "c", "d"]`, true, "", ""},
		{`"stop": ["a", "b", "c", "d", "e"]`, false, "stop", "at most 4 stop sequences, got 5"},
		{`"stop": 5`, false, "stop", "stop must be a string or an array of strings"},
		{`"model": "gpt-9"`, false, "model", `the model "gpt-9" does not exist; this server serves "m"`},
		{`"seed": "x"`, false, "seed", "seed must be an integer, not a string"},
		{`"temperature": "hot"`, false, "temperature", "temperature must be a number, not a string"},
		{`"stream": 1`, false, "stream", "stream must be true or false"},
		{`"logit_bias": [1]`, false, "logit_bias", "logit_bias must be an object, not an array"},
	}
	completion := []bound{
		{`"logprobs": 5`, true, "", ""},
		{`"logprobs": 6`, false, "logprobs", "logprobs = 6, want 0 to 5"},
		{`"logprobs": -1`, false, "logprobs", "logprobs = -1"},
		{`"echo": true`, false, "echo", "echoing the prompt is not supported"},
	}
	chat := []bound{
		{`"logprobs": true, "top_logprobs": 0`, true, "", ""},
		{`"logprobs": true, "top_logprobs": 20`, true, "", ""},
		{`"logprobs": true, "top_logprobs": 21`, false, "top_logprobs", "top_logprobs = 21, want 0 to 20"},
		{`"logprobs": true, "top_logprobs": -1`, false, "top_logprobs", "top_logprobs = -1"},
		{`"max_completion_tokens": 0`, false, "max_tokens", "max_tokens = 0"},
		{`"max_completion_tokens": 64`, false, "max_tokens", "maximum context length is 64 tokens"},
	}
	prompts := []struct {
		body string
		msg  string
	}{
		{`{}`, "prompt is required"},
		{`{"prompt": null}`, "prompt is required"},
		{`{"prompt": ""}`, "prompt is empty"},
		{`{"prompt": []}`, "prompt is empty"},
		{`{"prompt": ["a", "b"]}`, "prompt must be a string, an array of token IDs, or an array of one string"},
		{`{"prompt": {"text": "a"}}`, "prompt must be a string"},
	}
	check := func(t *testing.T, path, body string, b bound) {
		t.Helper()
		before, _ := fake.sent()
		code, _, out := rqPost(t, url+path, body)
		after, _ := fake.sent()
		if b.ok {
			if code != 200 || after != before+1 {
				t.Errorf("%s: status %d, %d requests reached the coordinator; want 200: %s", body, code, after-before, out)
			}
			return
		}
		var e apiError
		json.Unmarshal(out, &e)
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		wantCode := 400
		if b.param == "model" {
			wantCode = 404
		}
		if code != wantCode || e.Error.Type != "invalid_request_error" || param != b.param || !strings.Contains(e.Error.Message, b.msg) {
			t.Errorf("%s: %d %s param %q %q; want %d invalid_request_error param %q with %q", body, code, e.Error.Type, param, e.Error.Message, wantCode, b.param, b.msg)
		}
		if b.param == "model" && (e.Error.Code == nil || *e.Error.Code != "model_not_found") {
			t.Errorf("%s: code %v, want model_not_found", body, e.Error.Code)
		}
		if after != before {
			t.Errorf("%s: refused, yet it reached the coordinator", body)
		}
	}
	for _, ep := range rqEndpoints {
		for _, b := range shared {
			check(t, ep.path, "{"+ep.base+", "+b.fields+"}", b)
		}
	}
	for _, b := range completion {
		check(t, "/v1/completions", "{"+rqEndpoints[0].base+", "+b.fields+"}", b)
	}
	for _, b := range chat {
		check(t, "/v1/chat/completions", "{"+rqEndpoints[1].base+", "+b.fields+"}", b)
	}
	for _, p := range prompts {
		check(t, "/v1/completions", p.body, bound{param: "prompt", msg: p.msg})
	}
	// The body: at most 4 MiB, JSON, an object.
	big := `{"prompt": "` + strings.Repeat("a", maxBody) + `"}`
	for _, c := range []struct{ body, msg string }{
		{big, "the request body is over the limit of 4194304 bytes"},
		{`{"prompt": "a",`, "the body is not valid JSON"},
		{`"a prompt"`, "the body must be a JSON object, not a string"},
	} {
		check(t, "/v1/completions", c.body, bound{msg: c.msg})
	}
}

// rqScript is a two-token answer whose pieces, log-probabilities and
// alternatives are chosen: "He" (−0.5; alternatives He −0.5, Hi −1.25),
// then "llo" (−0.25; llo −0.25), ending for length; usage 3 prompt tokens
// (1 of them cached) and 2 completion tokens.
var rqScript = []*pb.GenerateResponse{
	{Deltas: textDelta("He"), Tokens: []*pb.Token{{Id: 100, Piece: []byte("He"), Logprob: -0.5,
		Top: []*pb.TokenLogprob{{Piece: []byte("He"), Logprob: -0.5}, {Piece: []byte("Hi"), Logprob: -1.25}}}}},
	{Deltas: textDelta("llo"), Tokens: []*pb.Token{{Id: 101, Piece: []byte("llo"), Logprob: -0.25,
		Top: []*pb.TokenLogprob{{Piece: []byte("llo"), Logprob: -0.25}}}},
		FinishReason: pb.FinishReason_FINISH_REASON_LENGTH, Usage: &pb.Usage{PromptTokens: 3, CompletionTokens: 2, CachedTokens: 1}},
}

// rqDecode reads JSON into generic values, numbers as float64.
func rqDecode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// rqEvents splits a server-sent event stream into its data payloads, and
// checks it ends with [DONE].
func rqEvents(t *testing.T, body []byte) [][]byte {
	t.Helper()
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	done := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("a line that is not data: %q", line)
		}
		if done {
			t.Fatalf("data after [DONE]: %q", data)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		out = append(out, []byte(data))
	}
	if !done {
		t.Fatalf("the stream does not end with [DONE]:\n%s", body)
	}
	return out
}

// rqSameJSON compares a decoded value with the expected one, written as
// JSON.
func rqSameJSON(t *testing.T, what string, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: the expected JSON: %v", what, err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Errorf("%s:\n got %s\nwant %s", what, g, want)
	}
}

// TestCompletionAnswerShape: a completions answer, whole and streamed, in
// the legacy completions shape: object text_completion, the choice's text,
// finish_reason ("length"; null while streaming goes on), logprobs null
// unless asked for and else tokens, token_logprobs, top_logprobs (maps of
// piece to log-probability) and text_offset (each token's byte offset in
// the text), usage with total_tokens and cached tokens; this server's
// token_ids when asked for. A stream is one chunk per coordinator message,
// a usage chunk with no choices when stream_options asks for it, then
// [DONE].
func TestCompletionAnswerShape(t *testing.T) {
	url := rqAPI(t, &rqCoordinator{script: rqScript})
	code, hdr, out := rqPost(t, url+"/v1/completions", `{"prompt": "x", "max_tokens": 2, "logprobs": 1, "return_token_ids": true}`)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s: %s", code, hdr.Get("Content-Type"), out)
	}
	v := rqDecode(t, out)
	if id, _ := v["id"].(string); !strings.HasPrefix(id, "cmpl-") || v["object"] != "text_completion" || v["model"] != "m" || !(v["created"].(float64) > 0) {
		t.Errorf("header fields: id %v object %v model %v created %v", v["id"], v["object"], v["model"], v["created"])
	}
	rqSameJSON(t, "choices", v["choices"], `[{"text": "Hello", "index": 0, "finish_reason": "length", "token_ids": [100, 101],
		"logprobs": {"tokens": ["He", "llo"], "token_logprobs": [-0.5, -0.25], "top_logprobs": [{"He": -0.5, "Hi": -1.25}, {"llo": -0.25}], "text_offset": [0, 2]}}]`)
	rqSameJSON(t, "usage", v["usage"], `{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1}}`)

	_, _, out = rqPost(t, url+"/v1/completions", `{"prompt": "x"}`)
	rqSameJSON(t, "choices without logprobs", rqDecode(t, out)["choices"], `[{"text": "Hello", "index": 0, "finish_reason": "length", "logprobs": null}]`)

	for _, includeUsage := range []bool{false, true} {
		code, hdr, out = rqPost(t, url+"/v1/completions", fmt.Sprintf(`{"prompt": "x", "stream": true, "logprobs": 0, "stream_options": {"include_usage": %v}}`, includeUsage))
		if code != 200 || hdr.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", code, hdr.Get("Content-Type"))
		}
		evs := rqEvents(t, out)
		want := []string{
			`[{"text": "He", "index": 0, "finish_reason": null, "logprobs": {"tokens": ["He"], "token_logprobs": [-0.5], "top_logprobs": [{"He": -0.5, "Hi": -1.25}], "text_offset": [0]}}]`,
			`[{"text": "llo", "index": 0, "finish_reason": "length", "logprobs": {"tokens": ["llo"], "token_logprobs": [-0.25], "top_logprobs": [{"llo": -0.25}], "text_offset": [2]}}]`,
		}
		if includeUsage {
			want = append(want, `[]`)
		}
		if len(evs) != len(want) {
			t.Fatalf("include_usage %v: %d chunks, want %d:\n%s", includeUsage, len(evs), len(want), out)
		}
		var id any
		for i, ev := range evs {
			c := rqDecode(t, ev)
			rqSameJSON(t, fmt.Sprintf("chunk %d choices", i), c["choices"], want[i])
			if i == 0 {
				id = c["id"]
			}
			if c["id"] != id || c["object"] != "text_completion" {
				t.Errorf("chunk %d: id %v object %v, want the first chunk's id and text_completion", i, c["id"], c["object"])
			}
			_, hasUsage := c["usage"]
			if hasUsage != (includeUsage && i == 2) {
				t.Errorf("chunk %d carries usage: %v", i, hasUsage)
			}
		}
		if includeUsage {
			rqSameJSON(t, "usage chunk", rqDecode(t, evs[2])["usage"], `{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1}}`)
		}
	}
}

// TestChatAnswerShape: a chat answer, whole and streamed, in the chat
// shape: object chat.completion, the message with role assistant and its
// content, logprobs {content: [{token, logprob, bytes, top_logprobs}]}
// when asked for (bytes are the piece's UTF-8 bytes, which need not be
// whole characters: the token then reads U+FFFD), finish_reason; a stream
// of chat.completion.chunk whose first delta opens the reply with the
// role.
func TestChatAnswerShape(t *testing.T) {
	script := slices.Clone(rqScript)
	script[1] = proto.Clone(script[1]).(*pb.GenerateResponse)
	script[1].Tokens[0].Piece = []byte{'l', 'l', 'o', 0xE2, 0x82} // a character cut in two
	url := rqAPI(t, &rqCoordinator{script: script})
	const msgs = `"messages": [{"role": "user", "content": "hi"}]`
	code, _, out := rqPost(t, url+"/v1/chat/completions", `{`+msgs+`, "logprobs": true, "top_logprobs": 2}`)
	if code != 200 {
		t.Fatalf("%d: %s", code, out)
	}
	v := rqDecode(t, out)
	if id, _ := v["id"].(string); !strings.HasPrefix(id, "chatcmpl-") || v["object"] != "chat.completion" || v["model"] != "m" {
		t.Errorf("header fields: id %v object %v model %v", v["id"], v["object"], v["model"])
	}
	rqSameJSON(t, "choices", v["choices"], `[{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "length",
		"logprobs": {"content": [
			{"token": "He", "logprob": -0.5, "bytes": [72, 101], "top_logprobs": [{"token": "He", "logprob": -0.5, "bytes": [72, 101]}, {"token": "Hi", "logprob": -1.25, "bytes": [72, 105]}]},
			{"token": "llo\ufffd", "logprob": -0.25, "bytes": [108, 108, 111, 226, 130], "top_logprobs": [{"token": "llo", "logprob": -0.25, "bytes": [108, 108, 111]}]}]}}]`)
	rqSameJSON(t, "usage", v["usage"], `{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1}}`)

	_, _, out = rqPost(t, url+"/v1/chat/completions", `{`+msgs+`}`)
	rqSameJSON(t, "choices without logprobs", rqDecode(t, out)["choices"],
		`[{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "length", "logprobs": null}]`)

	_, _, out = rqPost(t, url+"/v1/chat/completions", `{`+msgs+`, "stream": true, "stream_options": {"include_usage": true}}`)
	evs := rqEvents(t, out)
	want := []string{
		`[{"index": 0, "delta": {"role": "assistant", "content": "He"}, "finish_reason": null, "logprobs": null}]`,
		`[{"index": 0, "delta": {"content": "llo"}, "finish_reason": "length", "logprobs": null}]`,
		`[]`,
	}
	if len(evs) != len(want) {
		t.Fatalf("%d chunks, want %d:\n%s", len(evs), len(want), out)
	}
	for i, ev := range evs {
		c := rqDecode(t, ev)
		if c["object"] != "chat.completion.chunk" {
			t.Errorf("chunk %d: object %v", i, c["object"])
		}
		rqSameJSON(t, fmt.Sprintf("chunk %d choices", i), c["choices"], want[i])
	}
	rqSameJSON(t, "usage chunk", rqDecode(t, evs[2])["usage"], `{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1}}`)
}

// TestCompletionChoices: n = 2 answered in interleaved messages comes out
// as two choices in index order, usage counting the prompt once and both
// choices' tokens.
func TestCompletionChoices(t *testing.T) {
	url := rqAPI(t, &rqCoordinator{script: []*pb.GenerateResponse{
		{Index: 1, Deltas: textDelta("b1"), Tokens: []*pb.Token{{Id: 5}}},
		{Index: 0, Deltas: textDelta("a1"), Tokens: []*pb.Token{{Id: 6}}},
		{Index: 1, Deltas: textDelta("b2"), Tokens: []*pb.Token{{Id: 7}}, FinishReason: pb.FinishReason_FINISH_REASON_STOP,
			Usage: &pb.Usage{PromptTokens: 4, CompletionTokens: 2}},
		{Index: 0, Tokens: []*pb.Token{{Id: 8}}, FinishReason: pb.FinishReason_FINISH_REASON_LENGTH, Usage: &pb.Usage{PromptTokens: 4, CompletionTokens: 2}},
	}})
	_, _, out := rqPost(t, url+"/v1/completions", `{"prompt": "x", "n": 2, "max_tokens": 2}`)
	v := rqDecode(t, out)
	rqSameJSON(t, "choices", v["choices"], `[{"text": "a1", "index": 0, "finish_reason": "length", "logprobs": null},
		{"text": "b1b2", "index": 1, "finish_reason": "stop", "logprobs": null}]`)
	rqSameJSON(t, "usage", v["usage"], `{"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8, "prompt_tokens_details": {"cached_tokens": 0}}`)
}

// TestCoordinatorErrors: a coordinator's refusal before any token becomes
// the HTTP status and OpenAI error type its gRPC code stands for, with its
// message; a failure after tokens were streamed comes as an error event
// in the stream, then [DONE]; without streaming it is the answer.
func TestCoordinatorErrors(t *testing.T) {
	cases := []struct {
		code   codes.Code
		status int
		typ    string
	}{
		{codes.InvalidArgument, 400, "invalid_request_error"},
		{codes.FailedPrecondition, 400, "invalid_request_error"},
		{codes.OutOfRange, 400, "invalid_request_error"},
		{codes.NotFound, 404, "invalid_request_error"},
		{codes.ResourceExhausted, 429, "rate_limit_exceeded"},
		{codes.DeadlineExceeded, 504, "timeout"},
		{codes.Internal, 500, "server_error"},
	}
	for _, c := range cases {
		t.Run(c.code.String(), func(t *testing.T) {
			url := rqAPI(t, &rqCoordinator{err: status.Error(c.code, "the coordinator says no")})
			for _, ep := range rqEndpoints {
				code, _, out := rqPost(t, url+ep.path, "{"+ep.base+"}")
				var e apiError
				json.Unmarshal(out, &e)
				if code != c.status || e.Error.Type != c.typ || e.Error.Message != "the coordinator says no" {
					t.Errorf("%s: %d %q %q, want %d %s with the coordinator's message", ep.path, code, e.Error.Type, e.Error.Message, c.status, c.typ)
				}
			}
		})
	}
	t.Run("after the first token", func(t *testing.T) {
		url := rqAPI(t, &rqCoordinator{script: rqScript[:1], err: status.Error(codes.InvalidArgument, "stop string too long")})
		code, _, out := rqPost(t, url+"/v1/completions", `{"prompt": "x"}`)
		if code != 400 || !strings.Contains(string(out), "stop string too long") {
			t.Errorf("whole: %d %s, want 400 with the message", code, out)
		}
		code, _, out = rqPost(t, url+"/v1/completions", `{"prompt": "x", "stream": true}`)
		evs := rqEvents(t, out)
		if code != 200 || len(evs) != 2 {
			t.Fatalf("streamed: %d, %d events, want 200 and a chunk then an error:\n%s", code, len(evs), out)
		}
		rqSameJSON(t, "error event", rqDecode(t, evs[1]), `{"error": {"message": "stop string too long", "type": "server_error", "param": null, "code": null}}`)
	})
}
