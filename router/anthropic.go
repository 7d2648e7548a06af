package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Anthropic's Messages API, POST /v1/messages, as llama.cpp's server and
// vLLM serve it: the request is read into the same GenerateRequest a chat
// completion makes, and the coordinator's typed deltas (text, reasoning,
// tool calls) become content blocks, whole or as Anthropic's events.

// messagesRequest is a Messages API request.
type messagesRequest struct {
	Model         string             `json:"model"`
	MaxTokens     *int64             `json:"max_tokens"`
	System        json.RawMessage    `json:"system"`
	Messages      []anthropicMessage `json:"messages"`
	StopSequences []string           `json:"stop_sequences"`
	Stream        bool               `json:"stream"`
	Temperature   *float64           `json:"temperature"`
	TopP          *float64           `json:"top_p"`
	TopK          *int64             `json:"top_k"`
	Tools         []anthropicTool    `json:"tools"`
	ToolChoice    *struct {
		Type string `json:"type"`
		Name string `json:"name"`
		// Accepted: one call or several is the model's choice.
		DisableParallelToolUse bool `json:"disable_parallel_tool_use"`
	} `json:"tool_choice"`
	Thinking *struct {
		Type string `json:"type"`
		// Accepted, not enforced: the template turns thinking on or off,
		// and max_tokens bounds the whole reply.
		BudgetTokens int64 `json:"budget_tokens"`
	} `json:"thinking"`
	// Accepted and ignored, as common's Metadata and User are.
	Metadata map[string]json.RawMessage `json:"metadata"`
	// This server's additions, as on chat completions.
	Seed        *int64  `json:"seed"`
	CachePrompt *bool   `json:"cache_prompt"`
	Grammar     *string `json:"grammar"`
}

type anthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// anthropicBlock is a content block of any type; which fields count
// depends on Type.
type anthropicBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`          // tool_use
	Name      string          `json:"name"`        // tool_use
	Input     json.RawMessage `json:"input"`       // tool_use
	ToolUseID string          `json:"tool_use_id"` // tool_result
	Content   json.RawMessage `json:"content"`     // tool_result: a string or text blocks
	IsError   bool            `json:"is_error"`    // tool_result
	Thinking  string          `json:"thinking"`    // thinking
}

type anthropicTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// parseMessages reads a Messages API request into a GenerateRequest.
func (r *Router) parseMessages(body []byte) (*pb.GenerateRequest, *messagesRequest, *requestError) {
	var mr messagesRequest
	if err := decodeJSON(body, &mr); err != nil {
		return nil, nil, err
	}
	info := r.modelInfo()
	if mr.MaxTokens == nil {
		return nil, nil, badParam("max_tokens", "max_tokens is required")
	}
	if mr.Temperature != nil && (*mr.Temperature < 0 || *mr.Temperature > 1) {
		return nil, nil, badParam("temperature", "temperature = %g, want a value in [0, 1]", *mr.Temperature)
	}
	if len(mr.StopSequences) > maxStop {
		return nil, nil, badParam("stop_sequences", "at most %d stop_sequences, got %d", maxStop, len(mr.StopSequences))
	}
	c := common{Model: mr.Model, MaxTokens: mr.MaxTokens, Temperature: mr.Temperature, TopP: mr.TopP, TopK: mr.TopK, Seed: mr.Seed,
		CachePrompt: mr.CachePrompt, Grammar: mr.Grammar}
	if len(mr.StopSequences) > 0 {
		c.Stop, _ = json.Marshal(mr.StopSequences)
	}
	g, e := build(info, &c)
	if e != nil {
		return nil, nil, e
	}
	if !isNull(mr.System) {
		parts, e := anthropicText("system", mr.System)
		if e != nil {
			return nil, nil, e
		}
		g.Messages = append(g.Messages, &pb.ChatMessage{Role: "system", Parts: parts})
	}
	if len(mr.Messages) == 0 {
		return nil, nil, badParam("messages", "messages is required and must not be empty")
	}
	for i, m := range mr.Messages {
		ms, e := anthropicTurn(fmt.Sprintf("messages[%d]", i), m)
		if e != nil {
			return nil, nil, e
		}
		g.Messages = append(g.Messages, ms...)
	}
	if e := anthropicTools(&mr, g); e != nil {
		return nil, nil, e
	}
	if t := mr.Thinking; t != nil {
		switch t.Type {
		case "enabled":
			g.EnableThinking = new(true)
		case "disabled":
			g.EnableThinking = new(false)
		case "adaptive": // the model's choice: the template's default
		default:
			return nil, nil, badParam("thinking.type", "thinking.type %q, want enabled, disabled or adaptive", t.Type)
		}
	}
	g.KeepReasoning = r.cfg.ReasoningFormat == chat.ReasoningNone
	return g, &mr, nil
}

// anthropicText reads a system prompt or a tool result's content: a
// string or an array of text blocks.
func anthropicText(at string, raw json.RawMessage) ([]*pb.ContentPart, *requestError) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []*pb.ContentPart{{Part: &pb.ContentPart_Text{Text: s}}}, nil
	}
	var blocks []anthropicBlock
	if json.Unmarshal(raw, &blocks) != nil {
		return nil, badParam(at, "%s must be a string or an array of text blocks", at)
	}
	var parts []*pb.ContentPart
	for j, b := range blocks {
		if b.Type != "text" {
			return nil, blockRefused(fmt.Sprintf("%s[%d]", at, j), b.Type)
		}
		parts = append(parts, &pb.ContentPart{Part: &pb.ContentPart_Text{Text: b.Text}})
	}
	return parts, nil
}

func blockRefused(at, typ string) *requestError {
	switch typ {
	case "image", "document":
		return badParam(at, "%s is a %s block: this model reads text only", at, typ)
	}
	return badParam(at+".type", "%s has the type %q, which is not supported here", at, typ)
}

// anthropicTurn reads one message into the chat messages it stands for:
// a user turn's tool_result blocks become tool messages (in order, around
// its text), an assistant turn's thinking, text and tool_use blocks one
// assistant message.
func anthropicTurn(at string, m anthropicMessage) ([]*pb.ChatMessage, *requestError) {
	if m.Role != "user" && m.Role != "assistant" {
		return nil, badParam(at+".role", "%s has the role %q; want user or assistant (the system prompt is the top-level system field)", at, m.Role)
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return []*pb.ChatMessage{{Role: m.Role, Parts: []*pb.ContentPart{{Part: &pb.ContentPart_Text{Text: s}}}}}, nil
	}
	var blocks []anthropicBlock
	if json.Unmarshal(m.Content, &blocks) != nil {
		return nil, badParam(at+".content", "%s.content must be a string or an array of content blocks", at)
	}
	if m.Role == "assistant" {
		pm := &pb.ChatMessage{Role: "assistant"}
		for j, b := range blocks {
			bat := fmt.Sprintf("%s.content[%d]", at, j)
			switch b.Type {
			case "text":
				pm.Parts = append(pm.Parts, &pb.ContentPart{Part: &pb.ContentPart_Text{Text: b.Text}})
			case "thinking":
				pm.ReasoningContent += b.Thinking
			case "redacted_thinking": // another server's, unreadable here
			case "tool_use":
				if !toolName.MatchString(b.Name) {
					return nil, badParam(bat+".name", "%s.name %q must be 1 to 64 letters, digits, underscores or dashes", bat, b.Name)
				}
				args := "{}"
				if !isNull(b.Input) {
					var obj map[string]json.RawMessage
					if json.Unmarshal(b.Input, &obj) != nil {
						return nil, badParam(bat+".input", "%s.input must be a JSON object", bat)
					}
					args = string(b.Input)
				}
				pm.ToolCalls = append(pm.ToolCalls, &pb.ToolCall{Id: b.ID, Name: b.Name, Arguments: args})
			default:
				return nil, blockRefused(bat, b.Type)
			}
		}
		pm.ContentNull = len(pm.Parts) == 0 && len(pm.ToolCalls) > 0
		return []*pb.ChatMessage{pm}, nil
	}
	var out []*pb.ChatMessage
	var user *pb.ChatMessage
	for j, b := range blocks {
		bat := fmt.Sprintf("%s.content[%d]", at, j)
		switch b.Type {
		case "text":
			if user == nil {
				user = &pb.ChatMessage{Role: "user"}
				out = append(out, user)
			}
			user.Parts = append(user.Parts, &pb.ContentPart{Part: &pb.ContentPart_Text{Text: b.Text}})
		case "tool_result":
			if b.ToolUseID == "" {
				return nil, badParam(bat+".tool_use_id", "%s is a tool_result without tool_use_id", bat)
			}
			parts := []*pb.ContentPart{{Part: &pb.ContentPart_Text{Text: ""}}}
			if !isNull(b.Content) {
				var e *requestError
				if parts, e = anthropicText(bat+".content", b.Content); e != nil {
					return nil, e
				}
			}
			if b.IsError && len(parts) > 0 {
				// The templates have no error flag: the model reads it.
				if t, ok := parts[0].Part.(*pb.ContentPart_Text); ok {
					t.Text = "Error: " + t.Text
				}
			}
			out, user = append(out, &pb.ChatMessage{Role: "tool", ToolCallId: b.ToolUseID, Parts: parts}), nil
		default:
			return nil, blockRefused(bat, b.Type)
		}
	}
	if len(out) == 0 {
		return nil, badParam(at+".content", "%s has no content blocks", at)
	}
	return out, nil
}

// anthropicTools reads tools and tool_choice.
func anthropicTools(mr *messagesRequest, g *pb.GenerateRequest) *requestError {
	names := map[string]bool{}
	for i, t := range mr.Tools {
		at := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "custom" {
			return badParam(at+".type", "%s is a %q tool; this server runs no tools of its own, only client tools (name, description, input_schema)", at, t.Type)
		}
		if !toolName.MatchString(t.Name) {
			return badParam(at+".name", "%s.name %q must be 1 to 64 letters, digits, underscores or dashes", at, t.Name)
		}
		if names[t.Name] {
			return badParam(at+".name", "two tools are named %q", t.Name)
		}
		names[t.Name] = true
		var obj map[string]json.RawMessage
		if json.Unmarshal(t.InputSchema, &obj) != nil {
			return badParam(at+".input_schema", "%s.input_schema must be a JSON schema object", at)
		}
		g.Tools = append(g.Tools, &pb.Tool{Name: t.Name, Description: t.Description, Parameters: string(t.InputSchema)})
	}
	tc := mr.ToolChoice
	if tc == nil {
		return nil
	}
	if len(mr.Tools) == 0 && tc.Type != "none" {
		return badParam("tool_choice", "tool_choice %q needs tools", tc.Type)
	}
	switch tc.Type {
	case "auto":
	case "none":
		g.ToolChoice = pb.ToolChoice_TOOL_CHOICE_NONE
	case "any":
		g.ToolChoice = pb.ToolChoice_TOOL_CHOICE_REQUIRED
	case "tool":
		if !names[tc.Name] {
			return badParam("tool_choice.name", "tool_choice names the tool %q, which is not among the tools", tc.Name)
		}
		g.ToolChoice, g.ToolChoiceFunction = pb.ToolChoice_TOOL_CHOICE_FUNCTION, tc.Name
	default:
		return badParam("tool_choice.type", "tool_choice.type %q, want auto, any, tool or none", tc.Type)
	}
	if (g.ToolChoice == pb.ToolChoice_TOOL_CHOICE_REQUIRED || g.ToolChoice == pb.ToolChoice_TOOL_CHOICE_FUNCTION) && g.Constraint != nil {
		return badParam("grammar", "a forced tool_choice and grammar both constrain the output; send one")
	}
	return nil
}

// messages answers POST /v1/messages.
func (r *Router) messages(w http.ResponseWriter, req *http.Request) {
	if r.modelInfo() == nil {
		writeAnthropicError(w, http.StatusServiceUnavailable, "overloaded_error", "no model is being served yet")
		return
	}
	body, e := readBody(w, req)
	if e == nil {
		var g *pb.GenerateRequest
		var mr *messagesRequest
		if g, mr, e = r.parseMessages(body); e == nil {
			r.runMessages(w, req, g, mr.Stream)
			return
		}
	}
	typ := "invalid_request_error"
	if e.status == http.StatusNotFound {
		typ = "not_found_error"
	}
	writeAnthropicError(w, e.status, typ, e.msg)
}

func (r *Router) runMessages(w http.ResponseWriter, req *http.Request, g *pb.GenerateRequest, stream bool) {
	g.RequestId = newID("msg_")
	x, err := r.open(w, req, g)
	if err != nil {
		writeAnthropicRPCError(w, err)
		return
	}
	defer x.close()
	out := &anthropicReply{id: g.RequestId, model: r.modelInfo().Name}
	if stream {
		out.stream(w, x.next)
		return
	}
	if err := x.drain(func(m *pb.GenerateResponse) { out.add(m, nil) }); err != nil {
		writeAnthropicRPCError(w, err)
		return
	}
	out.closeBlock(nil)
	writeJSON(w, out.message())
}

// anthropicReply builds a reply's content blocks from the coordinator's
// deltas: a run of reasoning is a thinking block, a run of text a text
// block, each call a tool_use block.
type anthropicReply struct {
	id, model    string
	blocks       []anthropicOutBlock
	open         bool   // the last block is open
	args         []byte // the open tool_use block's arguments so far
	usage        anthropicUsage
	stopReason   string
	stopSequence *string
}

// anthropicOutBlock is a block of the answer; Input is the tool_use's
// arguments, written as the JSON they are.
type anthropicOutBlock struct {
	Type      string           `json:"type"`
	Text      *string          `json:"text,omitempty"`
	Thinking  *string          `json:"thinking,omitempty"`
	Signature *string          `json:"signature,omitempty"`
	ID        string           `json:"id,omitempty"`
	Name      string           `json:"name,omitempty"`
	Input     *json.RawMessage `json:"input,omitempty"`
}

type anthropicUsage struct {
	InputTokens              uint32 `json:"input_tokens"`
	OutputTokens             uint32 `json:"output_tokens"`
	CacheCreationInputTokens uint32 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     uint32 `json:"cache_read_input_tokens"`
}

type anthropicMessageOut struct {
	ID           string              `json:"id"`
	Type         string              `json:"type"` // message
	Role         string              `json:"role"` // assistant
	Model        string              `json:"model"`
	Content      []anthropicOutBlock `json:"content"`
	StopReason   *string             `json:"stop_reason"`
	StopSequence *string             `json:"stop_sequence"`
	Usage        anthropicUsage      `json:"usage"`
}

// event is one server-sent event: its type and its data.
type event struct {
	typ  string
	data any
}

func (o *anthropicReply) message() anthropicMessageOut {
	m := anthropicMessageOut{ID: o.id, Type: "message", Role: "assistant", Model: o.model, Content: o.blocks, StopSequence: o.stopSequence, Usage: o.usage}
	if m.Content == nil {
		m.Content = []anthropicOutBlock{}
	}
	if o.stopReason != "" {
		m.StopReason = &o.stopReason
	}
	return m
}

// setUsage takes the coordinator's counts: Anthropic's input_tokens are
// those computed, the prefix cache's are cache_read_input_tokens.
func (o *anthropicReply) setUsage(u *pb.Usage) {
	o.usage.InputTokens = u.PromptTokens - min(u.CachedTokens, u.PromptTokens)
	o.usage.CacheReadInputTokens = u.CachedTokens
	o.usage.OutputTokens = u.CompletionTokens
}

// add folds a message into the blocks, appending the events that say so
// to evs when streaming (evs non-nil).
func (o *anthropicReply) add(m *pb.GenerateResponse, evs *[]event) {
	if m.PromptUsage != nil {
		o.setUsage(m.PromptUsage)
	}
	for _, d := range m.Deltas {
		switch x := d.Delta.(type) {
		case *pb.Delta_Text:
			o.appendText("text", x.Text, evs)
		case *pb.Delta_Reasoning:
			o.appendText("thinking", x.Reasoning, evs)
		case *pb.Delta_ToolCall:
			o.closeBlock(evs)
			empty := json.RawMessage("{}")
			b := anthropicOutBlock{Type: "tool_use", ID: x.ToolCall.Id, Name: x.ToolCall.Name, Input: &empty}
			o.openBlock(b, evs)
		case *pb.Delta_ToolCallArguments:
			if !o.open || o.blocks[len(o.blocks)-1].Type != "tool_use" {
				continue
			}
			o.args = append(o.args, x.ToolCallArguments.Fragment...)
			o.emit(evs, "content_block_delta", map[string]any{"type": "content_block_delta", "index": len(o.blocks) - 1,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": x.ToolCallArguments.Fragment}})
		}
	}
	if m.Usage != nil {
		o.setUsage(m.Usage)
	}
	switch m.FinishReason {
	case pb.FinishReason_FINISH_REASON_STOP:
		o.stopReason = "end_turn"
		if m.StopSequence != "" {
			o.stopReason, o.stopSequence = "stop_sequence", &m.StopSequence
		}
	case pb.FinishReason_FINISH_REASON_LENGTH:
		o.stopReason = "max_tokens"
	case pb.FinishReason_FINISH_REASON_TOOL_CALLS:
		o.stopReason = "tool_use"
	}
}

// appendText adds text to the open block of type typ (text or thinking),
// opening one first when the open block is another.
func (o *anthropicReply) appendText(typ, text string, evs *[]event) {
	if text == "" {
		return
	}
	if !o.open || o.blocks[len(o.blocks)-1].Type != typ {
		o.closeBlock(evs)
		empty, b := "", anthropicOutBlock{Type: typ}
		if typ == "text" {
			b.Text = &empty
		} else {
			// No signature: the reasoning is this server's, sent back as is.
			sig := ""
			b.Thinking, b.Signature = &empty, &sig
		}
		o.openBlock(b, evs)
	}
	b := &o.blocks[len(o.blocks)-1]
	delta := map[string]any{"type": "text_delta", "text": text}
	if typ == "text" {
		*b.Text += text
	} else {
		*b.Thinking += text
		delta = map[string]any{"type": "thinking_delta", "thinking": text}
	}
	o.emit(evs, "content_block_delta", map[string]any{"type": "content_block_delta", "index": len(o.blocks) - 1, "delta": delta})
}

func (o *anthropicReply) openBlock(b anthropicOutBlock, evs *[]event) {
	start := b // the start event shows the block empty
	if b.Text != nil {
		start.Text = new("")
	}
	o.blocks, o.open, o.args = append(o.blocks, b), true, nil
	o.emit(evs, "content_block_start", map[string]any{"type": "content_block_start", "index": len(o.blocks) - 1, "content_block": start})
}

// closeBlock ends the open block, if any: a tool_use block takes its
// arguments as its input.
func (o *anthropicReply) closeBlock(evs *[]event) {
	if !o.open {
		return
	}
	o.open = false
	b := &o.blocks[len(o.blocks)-1]
	if b.Type == "tool_use" && len(o.args) > 0 {
		in := json.RawMessage(o.args)
		if !json.Valid(in) {
			in = json.RawMessage("{}") // never: the parser checked the call
		}
		b.Input = &in
	}
	o.emit(evs, "content_block_stop", map[string]any{"type": "content_block_stop", "index": len(o.blocks) - 1})
}

func (o *anthropicReply) emit(evs *[]event, typ string, data any) {
	if evs != nil {
		*evs = append(*evs, event{typ, data})
	}
}

// stream writes Anthropic's events: message_start, each block's
// content_block_start, deltas and content_block_stop, then message_delta
// (stop reason and usage) and message_stop; an error after the start is an
// error event.
func (o *anthropicReply) stream(w http.ResponseWriter, next func() (*pb.GenerateResponse, error)) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(evs []event) {
		for _, e := range evs {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.typ, marshal(e.data))
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	var evs []event
	started := false
	for {
		m, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			st, _ := status.FromError(err)
			send([]event{{"error", anthropicErrorBody("api_error", st.Message())}})
			return
		}
		if !started {
			// The first message carries the prompt's usage.
			if m.PromptUsage != nil {
				o.setUsage(m.PromptUsage)
			}
			start := o.message()
			start.StopReason, start.Content = nil, []anthropicOutBlock{}
			evs = append(evs, event{"message_start", map[string]any{"type": "message_start", "message": start}})
			started = true
		}
		o.add(m, &evs)
		send(evs)
		evs = evs[:0]
	}
	o.closeBlock(&evs)
	var reason *string
	if o.stopReason != "" {
		reason = &o.stopReason
	}
	evs = append(evs,
		event{"message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": reason, "stop_sequence": o.stopSequence}, "usage": o.usage}},
		event{"message_stop", map[string]any{"type": "message_stop"}})
	send(evs)
}

// anthropicErrorBody is Anthropic's error shape.
func anthropicErrorBody(typ, msg string) any {
	return map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}}
}

func writeAnthropicError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(marshal(anthropicErrorBody(typ, msg)))
}

// writeAnthropicRPCError maps a coordinator's error to Anthropic's codes:
// those OpenAI's API answers 503 (no replica, no room in the KV cache) are
// 529 overloaded_error, which Anthropic's clients retry.
func writeAnthropicRPCError(w http.ResponseWriter, err error) {
	st, _ := status.FromError(err)
	code, typ := http.StatusInternalServerError, "api_error"
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		code, typ = http.StatusBadRequest, "invalid_request_error"
	case codes.NotFound:
		code, typ = http.StatusNotFound, "not_found_error"
	case codes.Unavailable, codes.Canceled:
		code, typ = 529, "overloaded_error"
		w.Header().Set("Retry-After", "1")
	case codes.DeadlineExceeded:
		code, typ = http.StatusGatewayTimeout, "timeout_error"
	case codes.ResourceExhausted:
		code, typ = http.StatusTooManyRequests, "rate_limit_error"
	}
	writeAnthropicError(w, code, typ, st.Message())
}
