package router

import (
	"bufio"
	"encoding/json"
	"errors"
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

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// scriptedCoordinator answers every Generate with the same messages and
// records the requests. A fake: no real coordinator writes reasoning or
// tool-call deltas until the parser of issue 27 is wired in, and the
// router's rendering of them must be ready before.
type scriptedCoordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	script []*pb.GenerateResponse
	mu     sync.Mutex
	calls  []*pb.GenerateRequest
}

func (c *scriptedCoordinator) Generate(req *pb.GenerateRequest, stream pb.CoordinatorService_GenerateServer) error {
	c.mu.Lock()
	c.calls = append(c.calls, proto.Clone(req).(*pb.GenerateRequest))
	c.mu.Unlock()
	for _, m := range c.script {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (c *scriptedCoordinator) last() *pb.GenerateRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return nil
	}
	return c.calls[len(c.calls)-1]
}

// scriptedAPI serves the HTTP API over one scripted coordinator on
// loopback, for a model of context 64.
func scriptedAPI(t *testing.T, script ...*pb.GenerateResponse) (*scriptedCoordinator, string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &scriptedCoordinator{script: script}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, fake)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	r := &Router{cfg: Config{}, log: slog.New(slog.DiscardHandler), coords: map[string]*coordConn{}, metrics: newMetrics(prometheus.NewRegistry()),
		model: &placement.ModelInfo{Name: "m", Vocab: 1000, Layers: 1, Context: 64, ChatTemplate: "gguf"}}
	t.Cleanup(r.closeConns)
	r.setCoordinators(map[string]placement.Coordinator{"c1": {ID: "c1", Addr: lis.Addr().String()}})
	api := httptest.NewServer(r.Handler())
	t.Cleanup(api.Close)
	return fake, api.URL
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

var hello = &pb.GenerateResponse{Deltas: textDelta("hello"), Tokens: []*pb.Token{{Id: 1}}, FinishReason: pb.FinishReason_FINISH_REASON_STOP,
	Usage: &pb.Usage{PromptTokens: 3, CompletionTokens: 1}}

// TestChatRequestFields: every request field the server reads, refuses or
// ignores, with the answer a client gets. A refusal is a 400 naming the
// field, in plain words (no Go type or struct names).
func TestChatRequestFields(t *testing.T) {
	fake, url := scriptedAPI(t, hello)
	const user = `"messages": [{"role": "user", "content": "hi"}]`
	cases := []struct {
		name, body string
		code       int
		param, msg string // of a refusal
	}{
		{"plain", `{` + user + `}`, 200, "", ""},
		// Refused: what this server cannot produce or read.
		{"audio output", `{` + user + `, "audio": {"voice": "alloy", "format": "wav"}}`, 400, "audio", "audio output is not supported"},
		{"audio modality", `{` + user + `, "modalities": ["text", "audio"]}`, 400, "modalities", `the modality "audio" is not supported`},
		{"prediction", `{` + user + `, "prediction": {"type": "content", "content": "x"}}`, 400, "prediction", "predicted output is not supported"},
		{"web search", `{` + user + `, "web_search_options": {}}`, 400, "web_search_options", "web search is not supported"},
		{"image part", `{"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]}]}`, 400, "messages[0].content[1]", "is an image: this model reads text only"},
		{"audio part", `{"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}`, 400, "messages[0].content[0]", "is audio"},
		{"assistant audio", `{"messages": [{"role": "assistant", "content": "x", "audio": {"id": "a"}}, {"role": "user", "content": "hi"}]}`, 400, "messages[0].audio", "audio is not supported"},
		{"deprecated functions", `{` + user + `, "functions": [{"name": "f"}]}`, 400, "functions", "send tools"},
		{"deprecated function role", `{"messages": [{"role": "function", "name": "f", "content": "1"}]}`, 400, "messages[0].role", "send tool messages"},
		{"tools", `{` + user + `, "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}`, 200, "", ""},
		{"text format", `{` + user + `, "response_format": {"type": "text"}}`, 200, "", ""},
		// Constrained output: shapes the router checks (the coordinator
		// compiles the grammar).
		{"json mode", `{` + user + `, "response_format": {"type": "json_object"}}`, 200, "", ""},
		{"json schema", `{` + user + `, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": true}}}`, 200, "", ""},
		{"gbnf", `{` + user + `, "grammar": "root ::= \"yes\" | \"no\""}`, 200, "", ""},
		{"unknown format", `{` + user + `, "response_format": {"type": "yaml"}}`, 400, "response_format", `response_format type "yaml", want text, json_object or json_schema`},
		{"json schema without one", `{` + user + `, "response_format": {"type": "json_schema"}}`, 400, "response_format.json_schema", "needs json_schema"},
		{"json schema not an object", `{` + user + `, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}}}`, 400, "response_format.json_schema.schema", "must be a JSON schema object"},
		{"forced call and format", `{` + user + `, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required", "response_format": {"type": "json_object"}}`, 400, "tool_choice", "both constrain the output"},
		{"forced call and grammar", `{` + user + `, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "f"}}, "grammar": "root ::= \"a\""}`, 400, "grammar", "both constrain the output"},
		{"format and grammar", `{` + user + `, "grammar": "root ::= \"a\"", "response_format": {"type": "json_object"}}`, 400, "response_format", "both constrain the output"},
		{"text modality", `{` + user + `, "modalities": ["text"]}`, 200, "", ""},
		// Tools are checked before they are refused.
		{"tool_choice without tools", `{` + user + `, "tool_choice": "auto"}`, 400, "tool_choice", "only allowed when tools are given"},
		{"bad tool name", `{` + user + `, "tools": [{"type": "function", "function": {"name": "get weather"}}]}`, 400, "tools[0].function.name", "letters, digits"},
		{"named choice not a tool", `{` + user + `, "tools": [{"type": "function", "function": {"name": "a"}}], "tool_choice": {"type": "function", "function": {"name": "b"}}}`, 400, "tool_choice", `"b", which is not among the tools`},
		// Accepted and ignored.
		{"ignored fields", `{` + user + `, "store": true, "metadata": {"k": "v"}, "user": "u1", "service_tier": "auto", "parallel_tool_calls": false}`, 200, "", ""},
		// Wrong types, in plain words.
		{"max_tokens a string", `{` + user + `, "max_tokens": "many"}`, 400, "max_tokens", "max_tokens must be an integer, not a string"},
		{"max_tokens a fraction", `{` + user + `, "max_tokens": 1.5}`, 400, "max_tokens", "max_tokens must be an integer, not 1.5"},
		{"role a number", `{"messages": [{"role": 1, "content": "hi"}]}`, 400, "messages.role", "messages.role must be a string, not a number"},
		{"store a string", `{` + user + `, "store": "yes"}`, 400, "store", "store must be true or false, not a string"},
		{"messages an object", `{"messages": {}}`, 400, "messages", "messages must be an array, not an object"},
		{"not JSON", `{"messages": [`, 400, "", "the body is not valid JSON"},
		{"not an object", `[1]`, 400, "", "the body must be a JSON object, not an array"},
		// The context and n.
		{"max_tokens past the context", `{` + user + `, "max_tokens": 64}`, 400, "max_tokens", "max_tokens = 64, but this model's maximum context length is 64 tokens"},
		{"n past 128", `{` + user + `, "n": 129}`, 400, "n", "n = 129, want 1 to 128"},
		{"n 3", `{` + user + `, "n": 3}`, 200, "", ""},
		// Messages.
		{"developer", `{"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]}`, 200, "", ""},
		{"tool round trip", `{"messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "18 C"}]}]}`, 200, "", ""},
		{"tool result without its call", `{"messages": [{"role": "tool", "content": "18"}]}`, 400, "messages[0].tool_call_id", "without tool_call_id"},
		{"null content", `{"messages": [{"role": "user", "content": null}]}`, 400, "messages[0].content", "only an assistant message with tool_calls may leave it out"},
		{"tool calls on a user", `{"messages": [{"role": "user", "content": "x", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}`, 400, "messages[0].tool_calls", "only an assistant message"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := post(t, url+"/v1/chat/completions", c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %s", code, c.code, body)
			}
			if c.code == 200 {
				return
			}
			var e apiError
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatal(err)
			}
			param := ""
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			if param != c.param || !strings.Contains(e.Error.Message, c.msg) || e.Error.Type != "invalid_request_error" {
				t.Errorf("got param %q, %q (%s), want param %q and a message with %q", param, e.Error.Message, e.Error.Type, c.param, c.msg)
			}
			for _, goWord := range []string{"Go ", "struct", "int64", "float64", "[]router", "json:"} {
				if strings.Contains(e.Error.Message, goWord) {
					t.Errorf("the message %q speaks Go (%q)", e.Error.Message, goWord)
				}
			}
		})
	}

	// What reached the coordinator, typed.
	post(t, url+"/v1/chat/completions", `{"messages": [{"role": "developer", "content": "Be brief."},
	  {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
	  {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
	  {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "2"}],
	  "n": 3, "reasoning_effort": "low", "enable_thinking": false, "chat_template_kwargs": {"custom": {"a": [1, 2]}}}`)
	g := fake.last()
	if g == nil {
		t.Fatal("no request reached the coordinator")
	}
	m := g.Messages
	if len(m) != 4 || m[0].Role != "system" || len(m[1].Parts) != 2 || m[1].Parts[1].GetText() != "b" ||
		!m[2].ContentNull || m[2].ToolCalls[0].Arguments != `{"x": 1}` || m[3].ToolCallId != "c1" || m[3].Name != "f" {
		t.Errorf("messages: %v", m)
	}
	if g.N != 3 || g.ReasoningEffort != "low" || g.EnableThinking == nil || *g.EnableThinking || g.ChatTemplateKwargs["custom"] != `{"a": [1, 2]}` {
		t.Errorf("n %d, reasoning_effort %q, enable_thinking %v, kwargs %v", g.N, g.ReasoningEffort, g.EnableThinking, g.ChatTemplateKwargs)
	}
}

// TestConstraintsReachCoordinator: response_format and grammar reach the
// coordinator as the constraint they ask for, the schema's text as sent.
func TestConstraintsReachCoordinator(t *testing.T) {
	fake, url := scriptedAPI(t, hello)
	const user = `"messages": [{"role": "user", "content": "hi"}]`
	const schema = `{"type": "object", "properties": {"a": {"type": "integer"}}}`
	for _, c := range []struct {
		endpoint, body string
		want           string // the constraint, printed
	}{
		{"chat", `{` + user + `}`, "<nil>"},
		{"chat", `{` + user + `, "response_format": {"type": "text"}}`, "<nil>"},
		{"chat", `{` + user + `, "response_format": {"type": "json_object"}}`, "json_object:true"},
		{"chat", `{` + user + `, "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true, "schema": ` + schema + `}}}`, "json_schema:" + schema},
		{"chat", `{` + user + `, "grammar": "root ::= [a-z]+"}`, "grammar:root ::= [a-z]+"},
		{"completions", `{"prompt": "x", "grammar": "root ::= [a-z]+"}`, "grammar:root ::= [a-z]+"},
	} {
		path := "/v1/chat/completions"
		if c.endpoint == "completions" {
			path = "/v1/completions"
		}
		if code, body := post(t, url+path, c.body); code != 200 {
			t.Fatalf("%s: status %d: %s", c.body, code, body)
		}
		got := "<nil>"
		switch x := fake.last().Constraint.(type) {
		case *pb.GenerateRequest_JsonObject:
			got = fmt.Sprintf("json_object:%v", x.JsonObject)
		case *pb.GenerateRequest_JsonSchema:
			got = "json_schema:" + x.JsonSchema
		case *pb.GenerateRequest_Grammar:
			got = "grammar:" + x.Grammar
		}
		if got != c.want {
			t.Errorf("%s: got constraint %s, want %s", c.body, got, c.want)
		}
	}
}

// TestCompletionRequestFields: the legacy completions fields that would
// change the answer are refused, never ignored.
func TestCompletionRequestFields(t *testing.T) {
	_, url := scriptedAPI(t, hello)
	for _, c := range []struct{ body, param, msg string }{
		{`{"prompt": "x"}`, "", ""},
		{`{"prompt": "x", "echo": true}`, "echo", "echoing the prompt is not supported"},
		{`{"prompt": "x", "suffix": "}"}`, "suffix", "a suffix (fill in the middle) is not supported"},
		{`{"prompt": "x", "best_of": 2}`, "best_of", "best of several completions is not supported"},
		{`{"prompt": "x", "best_of": 1, "suffix": "", "n": 2, "user": "u"}`, "", ""},
		{`{"prompt": 5}`, "prompt", "prompt must be a string, an array of token IDs, or an array of one string"},
	} {
		code, body := post(t, url+"/v1/completions", c.body)
		if c.param == "" {
			if code != 200 {
				t.Errorf("%s: %d %s", c.body, code, body)
			}
			continue
		}
		var e apiError
		json.Unmarshal([]byte(body), &e)
		if code != 400 || e.Error.Param == nil || *e.Error.Param != c.param || !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("%s: %d %s, want a 400 for %s saying %q", c.body, code, body, c.param, c.msg)
		}
	}
}

// TestTypedDeltas: reasoning, tool-call and text deltas of several choices
// come out in OpenAI's shapes, whole and streamed, as the official Go SDK
// reads them (its accumulator joins streamed tool calls); usage counts the
// prompt once and every choice's tokens; JSON is not HTML-escaped. (The
// SDK has no field for reasoning_content: it is read from the raw JSON.)
func TestTypedDeltas(t *testing.T) {
	reasoning := func(s string) []*pb.Delta { return []*pb.Delta{{Delta: &pb.Delta_Reasoning{Reasoning: s}}} }
	script := []*pb.GenerateResponse{
		{Index: 0, ChatTemplate: "gguf", Deltas: reasoning("The user wants <b> & more."), Tokens: []*pb.Token{{Id: 1}}},
		{Index: 1, Deltas: []*pb.Delta{{Delta: &pb.Delta_ToolCall{ToolCall: &pb.ToolCallStart{Index: 0, Id: "call_abc", Name: "get_weather"}}},
			{Delta: &pb.Delta_ToolCallArguments{ToolCallArguments: &pb.ToolCallArguments{Index: 0, Fragment: `{"city":`}}}}, Tokens: []*pb.Token{{Id: 2}}},
		{Index: 0, Deltas: textDelta("Hi <b> & you"), Tokens: []*pb.Token{{Id: 3}}},
		{Index: 1, Deltas: []*pb.Delta{{Delta: &pb.Delta_ToolCallArguments{ToolCallArguments: &pb.ToolCallArguments{Index: 0, Fragment: ` "Paris"}`}}}},
			Tokens: []*pb.Token{{Id: 4}}, FinishReason: pb.FinishReason_FINISH_REASON_TOOL_CALLS, Usage: &pb.Usage{PromptTokens: 10, CompletionTokens: 2}},
		{Index: 0, Tokens: []*pb.Token{{Id: 5}}, FinishReason: pb.FinishReason_FINISH_REASON_STOP, Usage: &pb.Usage{PromptTokens: 10, CompletionTokens: 3, CachedTokens: 8}},
	}
	_, url := scriptedAPI(t, script...)
	client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "m", N: openai.Int(2),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")}}

	check := func(t *testing.T, cc openai.ChatCompletion) {
		t.Helper()
		if len(cc.Choices) != 2 {
			t.Fatalf("%d choices, want 2", len(cc.Choices))
		}
		c0, c1 := cc.Choices[0], cc.Choices[1]
		if c0.Index != 0 || c0.Message.Content != "Hi <b> & you" || c0.FinishReason != "stop" || len(c0.Message.ToolCalls) != 0 {
			t.Errorf("choice 0: %+v", c0)
		}
		if c1.Index != 1 || c1.FinishReason != "tool_calls" || len(c1.Message.ToolCalls) != 1 {
			t.Fatalf("choice 1: %+v", c1)
		}
		call := c1.Message.ToolCalls[0]
		if call.ID != "call_abc" || call.Function.Name != "get_weather" || call.Function.Arguments != `{"city": "Paris"}` {
			t.Errorf("tool call %+v", call)
		}
		if u := cc.Usage; u.PromptTokens != 10 || u.CompletionTokens != 5 || u.TotalTokens != 15 || u.PromptTokensDetails.CachedTokens != 8 {
			t.Errorf("usage %+v", u)
		}
	}
	t.Run("whole", func(t *testing.T) {
		cc, err := client.Chat.Completions.New(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		check(t, *cc)
		var rc struct {
			ReasoningContent string `json:"reasoning_content"`
		}
		json.Unmarshal([]byte(cc.Choices[0].Message.RawJSON()), &rc)
		if rc.ReasoningContent != "The user wants <b> & more." {
			t.Errorf("reasoning_content %q", rc.ReasoningContent)
		}
		if raw := cc.RawJSON(); strings.Contains(raw, `\u003c`) || strings.Contains(raw, `\u0026`) || !strings.Contains(raw, `"content":null`) {
			t.Errorf("want no HTML escaping and content null beside tool calls: %s", raw)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(t.Context(), params, option.WithJSONSet("stream_options", map[string]any{"include_usage": true}))
		var acc openai.ChatCompletionAccumulator
		var reasoning strings.Builder
		for stream.Next() {
			ch := stream.Current()
			acc.AddChunk(ch)
			for _, c := range ch.Choices {
				var d struct {
					ReasoningContent string `json:"reasoning_content"`
				}
				json.Unmarshal([]byte(c.Delta.RawJSON()), &d)
				reasoning.WriteString(d.ReasoningContent)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		check(t, acc.ChatCompletion)
		if reasoning.String() != "The user wants <b> & more." {
			t.Errorf("streamed reasoning %q", reasoning.String())
		}
	})
}

// TestModelByID: GET /v1/models/{id} answers the model served, and 404
// with model_not_found for any other, as the SDK reads them.
func TestModelByID(t *testing.T) {
	_, url := scriptedAPI(t)
	client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	m, err := client.Models.Get(t.Context(), "m")
	if err != nil || m.ID != "m" || m.Object != "model" || m.OwnedBy != "switchyard" {
		t.Fatalf("got %+v, %v", m, err)
	}
	var ctx struct {
		ContextLength int `json:"context_length"`
	}
	if json.Unmarshal([]byte(m.RawJSON()), &ctx); ctx.ContextLength != 64 {
		t.Errorf("context_length %d, want 64", ctx.ContextLength)
	}
	_, err = client.Models.Get(t.Context(), "gpt-9")
	var apiErr *openai.Error
	if !errorsAs(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
}

func errorsAs(err error, target **openai.Error) bool { return errors.As(err, target) }

// FuzzParseChat reads any body as a chat request: it must return a
// request or a refusal in plain words, never panic. Seeded with requests
// of the shapes agents send.
func FuzzParseChat(f *testing.F) {
	for _, s := range []string{
		`{"messages": [{"role": "user", "content": "hi"}]}`,
		`{"messages": [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]}, {"role": "user", "content": "hi"}], "n": 3, "stream": true, "stream_options": {"include_usage": true}}`,
		`{"messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "18"}]}`,
		`{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], "tool_choice": {"type": "function", "function": {"name": "f"}}}`,
		`{"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"enable_thinking": false}, "reasoning_effort": "low", "logit_bias": {"5": -100}, "stop": ["\n"]}`,
		`{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}`,
	} {
		f.Add([]byte(s))
	}
	info := &placement.ModelInfo{Name: "m", Vocab: 1000, Context: 64}
	f.Fuzz(func(t *testing.T, body []byte) {
		g, _, err := parseChat(body, info)
		switch {
		case err != nil && (err.msg == "" || strings.Contains(err.msg, "Go struct")):
			t.Errorf("refusal %q", err.msg)
		case err == nil && len(g.Messages) == 0:
			t.Errorf("accepted a request without messages")
		}
	})
}

// choicesCoordinator serves n = 3 choices of 3 tokens each; choice 1 ends
// after one. The first call stalls with choices 0 and 2 one token in,
// until its stream is cut; a resume continues the choices it names.
type choicesCoordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	stalled, cut chan struct{}
	mu           sync.Mutex
	calls        []*pb.GenerateRequest
}

func (c *choicesCoordinator) Generate(req *pb.GenerateRequest, stream pb.CoordinatorService_GenerateServer) error {
	c.mu.Lock()
	c.calls = append(c.calls, proto.Clone(req).(*pb.GenerateRequest))
	first := len(c.calls) == 1
	c.mu.Unlock()
	send := func(choice uint32, i int, finish bool, generated uint32) error {
		m := &pb.GenerateResponse{Index: choice, Deltas: textDelta(fmt.Sprintf(" %c%d", 'a'+choice, i)), Tokens: []*pb.Token{{Id: int32(100*(choice+1)) + int32(i)}}}
		if finish {
			m.FinishReason, m.Usage = pb.FinishReason_FINISH_REASON_STOP, &pb.Usage{PromptTokens: 5, CompletionTokens: generated}
		}
		return stream.Send(m)
	}
	if first {
		for _, err := range []error{send(0, 0, false, 0), send(1, 0, true, 1), send(2, 0, false, 0)} {
			if err != nil {
				return err
			}
		}
		close(c.stalled)
		<-stream.Context().Done()
		close(c.cut)
		return stream.Context().Err()
	}
	for _, rc := range req.Resumed {
		for i := len(rc.Tokens); i < 3; i++ {
			if err := send(rc.Index, i, i == 2, uint32(3-len(rc.Tokens))); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestBrokenStreamResumesChoices: a request of several choices whose
// coordinator stream breaks is resumed with the unfinished choices only,
// each with the tokens it had; the answer joins both streams, and usage
// counts every token once.
func TestBrokenStreamResumesChoices(t *testing.T) {
	r, _, url, _ := retryRouter(t) // a router; its coordinator is replaced below
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &choicesCoordinator{stalled: make(chan struct{}), cut: make(chan struct{})}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, fake)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	coords := map[string]placement.Coordinator{"c2": {ID: "c2", Addr: lis.Addr().String()}}
	r.setCoordinators(coords)

	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "x", "n": 3, "max_tokens": 3, "stream": true, "stream_options": {"include_usage": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	texts, finishes := make([]string, 3), make([]string, 3)
	var usage *usageJSON
	next := func() bool {
		for events.Scan() {
			line, ok := strings.CutPrefix(events.Text(), "data: ")
			if !ok {
				continue
			}
			if line == "[DONE]" {
				return false
			}
			var c textCompletion
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			for _, ch := range c.Choices {
				texts[ch.Index] += ch.Text
				if ch.FinishReason != nil {
					finishes[ch.Index] = *ch.FinishReason
				}
			}
			if c.Usage != nil {
				usage = c.Usage
			}
			return true
		}
		return false
	}
	for range 3 { // the client has the first three messages
		if !next() {
			t.Fatal("the stream ended early")
		}
	}
	<-fake.stalled
	r.setCoordinators(map[string]placement.Coordinator{}) // its registration lapsed: the stream is cut
	<-fake.cut
	r.setCoordinators(coords)
	for next() {
	}
	want := []string{" a0 a1 a2", " b0", " c0 c1 c2"}
	for i := range want {
		if texts[i] != want[i] || finishes[i] != "stop" {
			t.Errorf("choice %d: %q (%s), want %q", i, texts[i], finishes[i], want[i])
		}
	}
	if usage == nil || usage.PromptTokens != 5 || usage.CompletionTokens != 7 {
		t.Errorf("usage %+v; want 5 prompt and 7 completion tokens", usage)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.calls) != 2 {
		t.Fatalf("%d calls, want 2", len(fake.calls))
	}
	rs := fake.calls[1].Resumed
	if len(rs) != 2 || rs[0].Index != 0 || !slices.Equal(rs[0].Tokens, []int32{100}) || rs[1].Index != 2 || !slices.Equal(rs[1].Tokens, []int32{300}) {
		t.Errorf("resumed %v, want choices 0 and 2 with their one token each", rs)
	}
}
