package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/switchyard-llm/switchyard/pkg/placement"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Limits on a request, beyond the body size (maxBody).
const (
	// maxChoices is OpenAI's limit on n.
	maxChoices = 128
	// maxStop is OpenAI's limit on stop sequences.
	maxStop = 4
	// maxTemplateKwargs bounds chat_template_kwargs.
	maxTemplateKwargs = 64
)

// requestError is a request the API refuses: the HTTP status, OpenAI's
// error type, the parameter at fault ("" for none) and what is wrong, in
// plain words.
type requestError struct {
	status      int
	typ, param  string
	msg         string
	notFoundCod bool // code model_not_found
}

func (e *requestError) Error() string { return e.msg }

// badParam refuses a request for its parameter param.
func badParam(param, format string, a ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, msg: fmt.Sprintf(format, a...)}
}

// unsupported refuses a field the server does not serve, naming it.
func unsupported(param, what string) *requestError {
	return badParam(param, "%s is not supported by this server (the request field %q)", what, param)
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
	// Grammar constrains the output to a GBNF grammar (llama.cpp server's
	// field); the coordinator compiles it.
	Grammar *string `json:"grammar"`
	// Accepted and ignored (decoded only so that a value of the wrong type
	// is refused, as OpenAI does): storage, tags, end-user IDs and tiers
	// mean nothing to a self-hosted server.
	Store       *bool             `json:"store"`
	Metadata    map[string]string `json:"metadata"`
	User        *string           `json:"user"`
	ServiceTier *string           `json:"service_tier"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type completionRequest struct {
	common
	Prompt   json.RawMessage `json:"prompt"`
	Logprobs *int64          `json:"logprobs"`
	// Refused when they would change the answer.
	Echo   bool    `json:"echo"`
	Suffix *string `json:"suffix"`
	BestOf *int64  `json:"best_of"`
}

type chatRequest struct {
	common
	Messages            []chatMessage   `json:"messages"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Logprobs            bool            `json:"logprobs"`
	TopLogprobs         *int64          `json:"top_logprobs"`
	Tools               []toolParam     `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	ResponseFormat      *responseFormat `json:"response_format"`
	// Chat template variables: OpenAI's reasoning_effort, and, as vLLM and
	// llama.cpp's server take them, enable_thinking and
	// chat_template_kwargs.
	ReasoningEffort    *string                    `json:"reasoning_effort"`
	EnableThinking     *bool                      `json:"enable_thinking"`
	ChatTemplateKwargs map[string]json.RawMessage `json:"chat_template_kwargs"`
	// Refused when set: output this server cannot produce.
	Modalities       []string        `json:"modalities"`
	Audio            json.RawMessage `json:"audio"`
	Prediction       json.RawMessage `json:"prediction"`
	WebSearchOptions json.RawMessage `json:"web_search_options"`
	Functions        json.RawMessage `json:"functions"`
	FunctionCall     json.RawMessage `json:"function_call"`
}

type chatMessage struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	Name             string          `json:"name"`
	ToolCalls        []toolCallParam `json:"tool_calls"`
	ToolCallID       string          `json:"tool_call_id"`
	ReasoningContent string          `json:"reasoning_content"`
	Audio            json.RawMessage `json:"audio"`
	FunctionCall     json.RawMessage `json:"function_call"`
}

type toolCallParam struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type toolParam struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

type responseFormat struct {
	Type       string            `json:"type"`
	JSONSchema *jsonSchemaFormat `json:"json_schema"`
}

// jsonSchemaFormat is response_format's json_schema. The output is
// constrained to the schema whatever strict says (as vLLM does): strict
// false asks for no less.
type jsonSchemaFormat struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Strict      *bool           `json:"strict"`
}

// isNull reports whether a raw field is absent or null.
func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// decodeJSON reads a JSON body into v, refusing it in plain words: a
// value of the wrong type is named by its field and the type wanted, never
// by the Go struct that reads it.
func decodeJSON(body []byte, v any) *requestError {
	err := json.Unmarshal(body, v)
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		field := strings.ReplaceAll(te.Field, "common.", "") // the shared fields' Go struct
		if field == "" {
			return badParam("", "the body must be a JSON object, not %s", jsonKind(te.Value))
		}
		return badParam(field, "%s must be %s, not %s", field, typeWord(te.Type), jsonKind(te.Value))
	case errors.As(err, &se):
		return badParam("", "the body is not valid JSON (at byte %d): %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return badParam("", "the body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names what encoding/json found: "string", "number 1.5", …
func jsonKind(v string) string {
	switch {
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ")
	case v == "string":
		return "a string"
	case v == "number":
		return "a number"
	case v == "bool":
		return "true or false"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	}
	return v
}

// typeWord names a Go type in JSON's words.
func typeWord(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// build turns the shared fields into a GenerateRequest for the model info
// describes (a nameless info takes any model name).
func build(info *placement.ModelInfo, c *common) (*pb.GenerateRequest, *requestError) {
	if c.Model != "" && info.Name != "" && c.Model != info.Name {
		return nil, &requestError{status: http.StatusNotFound, typ: "invalid_request_error", param: "model", notFoundCod: true,
			msg: fmt.Sprintf("the model %q does not exist; this server serves %q", c.Model, info.Name)}
	}
	g := &pb.GenerateRequest{Sampling: &pb.SamplingParams{Temperature: 1, TopP: 1}, ReturnRouting: c.ReturnRouting,
		NoPromptCache: c.CachePrompt != nil && !*c.CachePrompt, N: 1}
	if c.N != nil {
		if *c.N < 1 || *c.N > maxChoices {
			return nil, badParam("n", "n = %d, want 1 to %d", *c.N, maxChoices)
		}
		g.N = uint32(*c.N)
	}
	sp := g.Sampling
	if c.MaxTokens != nil {
		if *c.MaxTokens < 1 || *c.MaxTokens > math.MaxInt32 {
			return nil, badParam("max_tokens", "max_tokens = %d, want at least 1", *c.MaxTokens)
		}
		if *c.MaxTokens >= int64(info.Context) {
			return nil, badParam("max_tokens", "max_tokens = %d, but this model's maximum context length is %d tokens, prompt included", *c.MaxTokens, info.Context)
		}
		g.MaxTokens = uint32(*c.MaxTokens)
	}
	f32 := func(name string, v *float64, dst *float32, lo, hi float64, loOpen bool) *requestError {
		if v == nil {
			return nil
		}
		if math.IsNaN(*v) || *v < lo || *v > hi || (loOpen && *v == lo) {
			open := "["
			if loOpen {
				open = "("
			}
			return badParam(name, "%s = %g, want a value in %s%g, %g]", name, *v, open, lo, hi)
		}
		*dst = float32(*v)
		return nil
	}
	for _, e := range []*requestError{
		f32("temperature", c.Temperature, &sp.Temperature, 0, 2, false),
		f32("top_p", c.TopP, &sp.TopP, 0, 1, true),
		f32("min_p", c.MinP, &sp.MinP, 0, 1, false),
		f32("presence_penalty", c.PresencePenalty, &sp.PresencePenalty, -2, 2, false),
		f32("frequency_penalty", c.FrequencyPenalty, &sp.FrequencyPenalty, -2, 2, false),
		f32("repetition_penalty", c.RepetitionPenalty, &sp.RepetitionPenalty, 0, 10, true),
	} {
		if e != nil {
			return nil, e
		}
	}
	if c.TopK != nil {
		if *c.TopK < 0 || *c.TopK > math.MaxInt32 {
			return nil, badParam("top_k", "top_k = %d, want ≥ 0", *c.TopK)
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
			return nil, badParam("logit_bias", "logit_bias key %q is not a token ID below %d", k, info.Vocab)
		}
		if v < -100 || v > 100 {
			return nil, badParam("logit_bias", "logit_bias %g for token %s is outside [-100, 100]", v, k)
		}
		if sp.LogitBias == nil {
			sp.LogitBias = map[int32]float32{}
		}
		sp.LogitBias[int32(id)] = float32(v)
	}
	if !isNull(c.Stop) {
		var one string
		var many []string
		if json.Unmarshal(c.Stop, &one) == nil {
			many = []string{one}
		} else if json.Unmarshal(c.Stop, &many) != nil {
			return nil, badParam("stop", "stop must be a string or an array of strings")
		}
		if len(many) > maxStop {
			return nil, badParam("stop", "at most %d stop sequences, got %d", maxStop, len(many))
		}
		g.Stop = many
	}
	if c.Grammar != nil && *c.Grammar != "" {
		g.Constraint = &pb.GenerateRequest_Grammar{Grammar: *c.Grammar}
	}
	return g, nil
}

// parseCompletion reads a completions request.
func parseCompletion(body []byte, info *placement.ModelInfo) (*pb.GenerateRequest, *completionRequest, *requestError) {
	var cr completionRequest
	if err := decodeJSON(body, &cr); err != nil {
		return nil, nil, err
	}
	g, err := build(info, &cr.common)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case cr.Echo:
		return nil, nil, unsupported("echo", "echoing the prompt")
	case cr.Suffix != nil && *cr.Suffix != "":
		return nil, nil, unsupported("suffix", "a suffix (fill in the middle)")
	case cr.BestOf != nil && *cr.BestOf != 1:
		return nil, nil, unsupported("best_of", "choosing the best of several completions")
	}
	var s string
	var ids []int32
	var strs []string
	switch {
	case isNull(cr.Prompt):
		return nil, nil, badParam("prompt", "prompt is required")
	case json.Unmarshal(cr.Prompt, &s) == nil:
		g.Prompt = s
	case json.Unmarshal(cr.Prompt, &ids) == nil:
		g.PromptTokens = ids
	case json.Unmarshal(cr.Prompt, &strs) == nil && len(strs) == 1:
		g.Prompt = strs[0]
	default:
		return nil, nil, badParam("prompt", "prompt must be a string, an array of token IDs, or an array of one string")
	}
	if g.Prompt == "" && len(g.PromptTokens) == 0 {
		return nil, nil, badParam("prompt", "prompt is empty")
	}
	if cr.Logprobs != nil {
		if *cr.Logprobs < 0 || *cr.Logprobs > 5 {
			return nil, nil, badParam("logprobs", "logprobs = %d, want 0 to 5", *cr.Logprobs)
		}
		g.TopLogprobs, g.Logprobs = uint32(*cr.Logprobs), true
	}
	return g, &cr, nil
}

// toolName is OpenAI's rule for function names.
var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// ParseChat reads an OpenAI chat completions request for the model info
// describes into the request a coordinator takes, or says in plain words
// what is wrong with it. `switchyard model chat-template` renders what it
// returns; the API refuses, beyond it, what it cannot yet serve
// (notYetServed).
func ParseChat(body []byte, info placement.ModelInfo) (*pb.GenerateRequest, error) {
	g, _, err := parseChat(body, &info)
	if err != nil {
		return nil, err
	}
	return g, nil
}

func parseChat(body []byte, info *placement.ModelInfo) (*pb.GenerateRequest, *chatRequest, *requestError) {
	var cr chatRequest
	if err := decodeJSON(body, &cr); err != nil {
		return nil, nil, err
	}
	if cr.MaxCompletionTokens != nil {
		cr.MaxTokens = cr.MaxCompletionTokens
	}
	g, err := build(info, &cr.common)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !isNull(cr.Audio):
		return nil, nil, unsupported("audio", "audio output")
	case !isNull(cr.Prediction):
		return nil, nil, unsupported("prediction", "predicted output")
	case !isNull(cr.WebSearchOptions):
		return nil, nil, unsupported("web_search_options", "web search")
	case !isNull(cr.Functions):
		return nil, nil, badParam("functions", "functions is the deprecated form of tools; send tools")
	case !isNull(cr.FunctionCall):
		return nil, nil, badParam("function_call", "function_call is the deprecated form of tool_choice; send tool_choice")
	}
	for _, m := range cr.Modalities {
		if m != "text" {
			return nil, nil, badParam("modalities", "the modality %q is not supported by this server (the request field \"modalities\"): it writes text only", m)
		}
	}
	if len(cr.Messages) == 0 {
		return nil, nil, badParam("messages", "messages is required and must not be empty")
	}
	for i, m := range cr.Messages {
		pm, err := chatMessageOf(i, m)
		if err != nil {
			return nil, nil, err
		}
		g.Messages = append(g.Messages, pm)
	}
	if err := toolsOf(&cr, g); err != nil {
		return nil, nil, err
	}
	if cr.ReasoningEffort != nil {
		g.ReasoningEffort = *cr.ReasoningEffort
	}
	g.EnableThinking = cr.EnableThinking
	if len(cr.ChatTemplateKwargs) > maxTemplateKwargs {
		return nil, nil, badParam("chat_template_kwargs", "%d chat_template_kwargs (limit %d)", len(cr.ChatTemplateKwargs), maxTemplateKwargs)
	}
	for k, v := range cr.ChatTemplateKwargs {
		if g.ChatTemplateKwargs == nil {
			g.ChatTemplateKwargs = map[string]string{}
		}
		g.ChatTemplateKwargs[k] = string(v)
	}
	if err := responseFormatOf(&cr, g); err != nil {
		return nil, nil, err
	}
	if cr.Logprobs {
		g.Logprobs = true
		if cr.TopLogprobs != nil {
			if *cr.TopLogprobs < 0 || *cr.TopLogprobs > 20 {
				return nil, nil, badParam("top_logprobs", "top_logprobs = %d, want 0 to 20", *cr.TopLogprobs)
			}
			g.TopLogprobs = uint32(*cr.TopLogprobs)
		}
	}
	return g, &cr, nil
}

// responseFormatOf checks response_format and sets the constraint it
// asks for. The schema is compiled by the coordinator, which refuses one
// it cannot serve (naming the construct): it holds the vocabulary the
// grammar masks and caches what it compiles, so the router does not
// compile every schema a second time.
func responseFormatOf(cr *chatRequest, g *pb.GenerateRequest) *requestError {
	forced := g.ToolChoice == pb.ToolChoice_TOOL_CHOICE_REQUIRED || g.ToolChoice == pb.ToolChoice_TOOL_CHOICE_FUNCTION
	rf := cr.ResponseFormat
	if rf == nil {
		if forced && g.Constraint != nil {
			return badParam("grammar", "a forced tool_choice and grammar both constrain the output; send one")
		}
		return nil
	}
	if rf.Type != "text" && g.Constraint != nil {
		return badParam("response_format", "response_format %q and grammar both constrain the output; send one", rf.Type)
	}
	switch rf.Type {
	case "text":
	case "json_object":
		g.Constraint = &pb.GenerateRequest_JsonObject{JsonObject: true}
	case "json_schema":
		if rf.JSONSchema == nil {
			return badParam("response_format.json_schema", "response_format json_schema needs json_schema: {\"name\": …, \"schema\": {…}}")
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(rf.JSONSchema.Schema, &obj) != nil {
			return badParam("response_format.json_schema.schema", "response_format.json_schema.schema must be a JSON schema object")
		}
		g.Constraint = &pb.GenerateRequest_JsonSchema{JsonSchema: string(rf.JSONSchema.Schema)}
	default:
		return badParam("response_format", "response_format type %q, want text, json_object or json_schema", rf.Type)
	}
	if forced && g.Constraint != nil {
		return badParam("tool_choice", "a forced tool_choice and response_format or grammar both constrain the output; send one")
	}
	return nil
}

// chatMessageOf checks message i and types it.
func chatMessageOf(i int, m chatMessage) (*pb.ChatMessage, *requestError) {
	at := fmt.Sprintf("messages[%d]", i)
	pm := &pb.ChatMessage{Role: m.Role}
	switch m.Role {
	case "system", "user", "assistant", "tool":
	case "developer":
		pm.Role = "system" // OpenAI's newer name for it
	case "function":
		return nil, badParam(at+".role", "%s: the role \"function\" is the deprecated form of \"tool\"; send tool messages", at)
	default:
		return nil, badParam(at+".role", "%s has the role %q; want system, developer, user, assistant or tool", at, m.Role)
	}
	if !isNull(m.Audio) {
		return nil, unsupported(at+".audio", "audio")
	}
	if !isNull(m.FunctionCall) {
		return nil, badParam(at+".function_call", "%s: function_call is the deprecated form of tool_calls; send tool_calls", at)
	}
	parts, null, err := contentOf(at, m.Content)
	if err != nil {
		return nil, err
	}
	pm.Parts, pm.ContentNull = parts, null
	if null && (m.Role != "assistant" || len(m.ToolCalls) == 0) {
		return nil, badParam(at+".content", "%s has no content; only an assistant message with tool_calls may leave it out", at)
	}
	if len(m.ToolCalls) > 0 && m.Role != "assistant" {
		return nil, badParam(at+".tool_calls", "%s has tool_calls, which only an assistant message may have", at)
	}
	for j, tc := range m.ToolCalls {
		tat := fmt.Sprintf("%s.tool_calls[%d]", at, j)
		if tc.Type != "" && tc.Type != "function" {
			return nil, badParam(tat+".type", "%s has the type %q; want function", tat, tc.Type)
		}
		if tc.Function.Name == "" {
			return nil, badParam(tat+".function.name", "%s has no function name", tat)
		}
		// OpenAI sends the arguments as JSON text; an object is taken too.
		args := string(tc.Function.Arguments)
		var s string
		if json.Unmarshal(tc.Function.Arguments, &s) == nil {
			args = s
		} else if !strings.HasPrefix(strings.TrimSpace(args), "{") {
			return nil, badParam(tat+".function.arguments", "%s.function.arguments must be a string of JSON", tat)
		}
		pm.ToolCalls = append(pm.ToolCalls, &pb.ToolCall{Id: tc.ID, Name: tc.Function.Name, Arguments: args})
	}
	switch {
	case m.Role == "tool" && m.ToolCallID == "":
		return nil, badParam(at+".tool_call_id", "%s is a tool result without tool_call_id", at)
	case m.Role != "tool" && m.ToolCallID != "":
		return nil, badParam(at+".tool_call_id", "%s has tool_call_id, which only a tool message may have", at)
	}
	pm.ToolCallId = m.ToolCallID
	if m.Role == "tool" {
		pm.Name = m.Name // a participant's name on other roles is not shown to templates
	}
	if m.ReasoningContent != "" && m.Role == "assistant" {
		pm.ReasoningContent = m.ReasoningContent
	}
	return pm, nil
}

// contentOf reads a content: a string, an array of text parts, or null.
func contentOf(at string, raw json.RawMessage) ([]*pb.ContentPart, bool, *requestError) {
	if isNull(raw) {
		return nil, true, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []*pb.ContentPart{{Part: &pb.ContentPart_Text{Text: s}}}, false, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return nil, false, badParam(at+".content", "%s.content must be a string, an array of text parts, or null", at)
	}
	var out []*pb.ContentPart
	for j, p := range parts {
		pat := fmt.Sprintf("%s.content[%d]", at, j)
		switch p.Type {
		case "text":
			if p.Text == nil {
				return nil, false, badParam(pat+".text", "%s is a text part without text", pat)
			}
			out = append(out, &pb.ContentPart{Part: &pb.ContentPart_Text{Text: *p.Text}})
		case "image_url", "input_image":
			return nil, false, badParam(pat, "%s is an image: this model reads text only", pat)
		case "input_audio":
			return nil, false, badParam(pat, "%s is audio: this model reads text only", pat)
		case "file":
			return nil, false, badParam(pat, "%s is a file: this model reads text only", pat)
		default:
			return nil, false, badParam(pat+".type", "%s has the type %q; only text parts are supported", pat, p.Type)
		}
	}
	return out, false, nil
}

// toolsOf checks tools and tool_choice and types them.
func toolsOf(cr *chatRequest, g *pb.GenerateRequest) *requestError {
	names := map[string]bool{}
	for i, t := range cr.Tools {
		at := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" || t.Function == nil {
			return badParam(at, "%s must be {\"type\": \"function\", \"function\": {…}}; other tool types are not supported", at)
		}
		f := t.Function
		if !toolName.MatchString(f.Name) {
			return badParam(at+".function.name", "%s.function.name %q must be 1 to 64 letters, digits, underscores or dashes", at, f.Name)
		}
		if names[f.Name] {
			return badParam(at+".function.name", "two tools are named %q", f.Name)
		}
		names[f.Name] = true
		pt := &pb.Tool{Name: f.Name, Description: f.Description}
		if !isNull(f.Parameters) {
			var obj map[string]json.RawMessage
			if json.Unmarshal(f.Parameters, &obj) != nil {
				return badParam(at+".function.parameters", "%s.function.parameters must be a JSON schema object", at)
			}
			pt.Parameters = string(f.Parameters)
		}
		g.Tools = append(g.Tools, pt)
	}
	if isNull(cr.ToolChoice) {
		return nil
	}
	if len(cr.Tools) == 0 {
		return badParam("tool_choice", "tool_choice is only allowed when tools are given")
	}
	var mode string
	if json.Unmarshal(cr.ToolChoice, &mode) == nil {
		switch mode {
		case "auto":
		case "none":
			g.ToolChoice = pb.ToolChoice_TOOL_CHOICE_NONE
		case "required":
			g.ToolChoice = pb.ToolChoice_TOOL_CHOICE_REQUIRED
		default:
			return badParam("tool_choice", "tool_choice %q, want auto, none, required or a named function", mode)
		}
		return nil
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(cr.ToolChoice, &named) != nil || named.Type != "function" {
		return badParam("tool_choice", "tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}")
	}
	if !names[named.Function.Name] {
		return badParam("tool_choice", "tool_choice names the function %q, which is not among the tools", named.Function.Name)
	}
	g.ToolChoice, g.ToolChoiceFunction = pb.ToolChoice_TOOL_CHOICE_FUNCTION, named.Function.Name
	return nil
}
