package up

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/anthropics/anthropic-sdk-go/v2/packages/ssestream"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-llm/switchyard/internal/demomodel"
)

// sseEvent is one server-sent event of Anthropic's stream.
type sseEvent struct {
	typ  string
	data map[string]any
}

// postEvents sends a Messages API request with stream on and reads its
// events as they came over the wire.
func postEvents(t *testing.T, url string, body map[string]any) []sseEvent {
	t.Helper()
	body["stream"] = true
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+"/v1/messages", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var evs []sseEvent
	var typ string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var data map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &data); err != nil {
				t.Fatalf("event %s: %v", typ, err)
			}
			if data["type"] != typ {
				t.Errorf("event %s carries type %v", typ, data["type"])
			}
			evs = append(evs, sseEvent{typ, data})
		}
	}
	return evs
}

// checkSequence checks Anthropic's event grammar: message_start, then for
// each block (indexes 0, 1, …) content_block_start, its deltas of the
// block's kind and content_block_stop, then message_delta and
// message_stop. It returns each block's type.
func checkSequence(evs []sseEvent) ([]string, error) {
	var types []string
	if len(evs) < 3 || evs[0].typ != "message_start" || evs[len(evs)-2].typ != "message_delta" || evs[len(evs)-1].typ != "message_stop" {
		return nil, fmt.Errorf("the stream does not run message_start … message_delta, message_stop: %v", evs)
	}
	deltaOf := map[string]string{"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}
	open := -1
	for _, e := range evs[1 : len(evs)-2] {
		idx := -1
		if f, ok := e.data["index"].(float64); ok {
			idx = int(f)
		}
		switch e.typ {
		case "content_block_start":
			if open >= 0 || idx != len(types) {
				return nil, fmt.Errorf("content_block_start %d while block %d is open, after %d blocks", idx, open, len(types))
			}
			block, _ := e.data["content_block"].(map[string]any)
			typ, _ := block["type"].(string)
			types, open = append(types, typ), idx
		case "content_block_delta":
			d, _ := e.data["delta"].(map[string]any)
			if idx != open || open < 0 || d["type"] != deltaOf[types[open]] {
				return nil, fmt.Errorf("a %v delta for block %d while block %d (%v) is open", d["type"], idx, open, types)
			}
		case "content_block_stop":
			if idx != open || open < 0 {
				return nil, fmt.Errorf("content_block_stop %d while block %d is open", idx, open)
			}
			open = -1
		default:
			return nil, fmt.Errorf("event %s between the blocks", e.typ)
		}
	}
	if open >= 0 {
		return nil, fmt.Errorf("block %d never stopped", open)
	}
	return types, nil
}

// accumulate rebuilds a streamed message with the SDK's accumulator.
func accumulate(t *testing.T, stream *ssestream.Stream[anthropic.MessageStreamEventUnion]) anthropic.Message {
	t.Helper()
	acc := anthropic.Message{}
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	return acc
}

// TestAnthropicMessages drives POST /v1/messages with the official
// Anthropic Go SDK: each answer is checked against the OpenAI chat
// completion of the same conversation (one typed path, so greedy decoding
// gives the same text), and streams against Anthropic's event grammar.
func TestAnthropicMessages(t *testing.T) {
	c := start(t, Config{})
	ctx := t.Context()
	ac := anthropic.NewClient(aoption.WithBaseURL(c.URL), aoption.WithAPIKey("unused"), aoption.WithMaxRetries(0))
	oc := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))

	const system, question = "Answer briefly.", "What does the list type do?"
	reference, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: demomodel.Name,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(system), openai.UserMessage(question)},
		MaxTokens: openai.Int(24), Temperature: openai.Float(0)})
	if err != nil {
		t.Fatal(err)
	}
	want := reference.Choices[0].Message.Content
	// The SDK has no temperature field (Anthropic's newer models take
	// none); the API still does.
	greedy := aoption.WithJSONSet("temperature", 0)
	params := anthropic.MessageNewParams{Model: demomodel.Name, MaxTokens: 24,
		System:   []anthropic.TextBlockParam{{Text: system}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(question))}}

	t.Run("text", func(t *testing.T) {
		msg, err := ac.Messages.New(ctx, params, greedy)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Type != "message" || msg.Role != "assistant" || !strings.HasPrefix(msg.ID, "msg_") || msg.Model != demomodel.Name {
			t.Errorf("message %s: type %q role %q model %q", msg.ID, msg.Type, msg.Role, msg.Model)
		}
		if len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.Content[0].Text != want {
			t.Fatalf("content %+v, want one text block %q", msg.Content, want)
		}
		if msg.StopReason != "max_tokens" || msg.Usage.OutputTokens != 24 ||
			msg.Usage.InputTokens+msg.Usage.CacheReadInputTokens != reference.Usage.PromptTokens {
			t.Errorf("stop %q, usage %+v; want max_tokens, 24 out, %d in", msg.StopReason, msg.Usage, reference.Usage.PromptTokens)
		}

		// Streamed: the SDK's accumulator rebuilds the same message.
		// thinking adaptive leaves it to the template: the same answer.
		adaptive, err := ac.Messages.New(ctx, params, greedy, aoption.WithJSONSet("thinking", map[string]any{"type": "adaptive"}))
		if err != nil || len(adaptive.Content) != 1 || adaptive.Content[0].Text != want {
			t.Errorf("thinking adaptive: %v, %+v; want the same text block", err, adaptive)
		}

		acc := accumulate(t, ac.Messages.NewStreaming(ctx, params, greedy))
		if len(acc.Content) != 1 || acc.Content[0].Text != want || acc.StopReason != "max_tokens" || acc.Usage.OutputTokens != 24 ||
			acc.Usage.InputTokens+acc.Usage.CacheReadInputTokens != reference.Usage.PromptTokens {
			t.Errorf("streamed: content %+v stop %q usage %+v", acc.Content, acc.StopReason, acc.Usage)
		}
	})

	t.Run("stop sequence", func(t *testing.T) {
		words := strings.Fields(want)
		if len(words) < 3 {
			t.Fatalf("reference %q is too short to stop in", want)
		}
		stop := words[2]
		p := params
		p.StopSequences = []string{"\x00never", stop}
		msg, err := ac.Messages.New(ctx, p, greedy)
		if err != nil {
			t.Fatal(err)
		}
		if msg.StopReason != "stop_sequence" || msg.StopSequence != stop || msg.Content[0].Text != want[:strings.Index(want, stop)] {
			t.Errorf("stop %q at %q, text %q; want stop_sequence %q after %q", msg.StopReason, msg.StopSequence, msg.Content[0].Text, stop, want[:strings.Index(want, stop)])
		}
	})

	// A forced call: tool_choice any, the demo model's plain template
	// family, the arguments the grammar allows.
	weather := anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
		Properties: map[string]any{"city": map[string]any{"type": "string"}},
		Required:   []string{"city"}}, "get_weather")
	ask := anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?"))
	t.Run("tool_use", func(t *testing.T) {
		p := anthropic.MessageNewParams{Model: demomodel.Name, MaxTokens: 64,
			Messages: []anthropic.MessageParam{ask}, Tools: []anthropic.ToolUnionParam{weather},
			ToolChoice: anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}}}
		msg, err := ac.Messages.New(ctx, p, greedy)
		if err != nil {
			t.Fatal(err)
		}
		check := func(how string, m anthropic.Message) {
			t.Helper()
			var input struct{ City *string }
			if len(m.Content) != 1 || m.Content[0].Type != "tool_use" || m.Content[0].Name != "get_weather" || m.Content[0].ID == "" ||
				json.Unmarshal(m.Content[0].Input, &input) != nil || input.City == nil || m.StopReason != "tool_use" {
				t.Fatalf("%s: content %+v, stop %q; want one get_weather tool_use with a city, stop tool_use", how, m.Content, m.StopReason)
			}
		}
		check("whole", *msg)
		acc := accumulate(t, ac.Messages.NewStreaming(ctx, p, greedy))
		check("streamed", acc)
		var compact bytes.Buffer
		json.Compact(&compact, acc.Content[0].Input)
		if compact.String() != string(msg.Content[0].Input) {
			t.Errorf("streamed input %s, whole %s", acc.Content[0].Input, msg.Content[0].Input)
		}

		// The call and its result sent back: the same prompt as OpenAI's
		// tool_calls and tool message, so the same greedy answer.
		call := msg.Content[0]
		var input map[string]any
		json.Unmarshal(call.Input, &input)
		next, err := ac.Messages.New(ctx, anthropic.MessageNewParams{Model: demomodel.Name, MaxTokens: 16,
			Tools: []anthropic.ToolUnionParam{weather},
			Messages: []anthropic.MessageParam{ask,
				anthropic.NewAssistantMessage(anthropic.NewToolUseBlock(call.ID, input, call.Name)),
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(call.ID, `{"temp_c": 18}`, false))}}, greedy)
		if err != nil {
			t.Fatal(err)
		}
		// The same schema, keys in the same order: the template shows it.
		fp := openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
			"required": []string{"city"}}
		ref, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: demomodel.Name, MaxTokens: openai.Int(16), Temperature: openai.Float(0),
			Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather", Parameters: fp})},
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?"),
				{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: call.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: call.Name, Arguments: string(call.Input)}}}}}},
				openai.ToolMessage(`{"temp_c": 18}`, call.ID)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(next.Content) == 0 || next.Content[0].Text != ref.Choices[0].Message.Content || next.Usage.InputTokens+next.Usage.CacheReadInputTokens != ref.Usage.PromptTokens {
			t.Errorf("after the tool result: %+v (usage %+v), want the chat completion's %q (%d prompt tokens)",
				next.Content, next.Usage, ref.Choices[0].Message.Content, ref.Usage.PromptTokens)
		}
	})

	// Reasoning, forced through the grammar extension: <think>…</think>
	// is a thinking block, the rest a text block, whole and streamed.
	t.Run("thinking", func(t *testing.T) {
		body := map[string]any{"model": demomodel.Name, "max_tokens": 48, "messages": []map[string]any{{"role": "user", "content": question}},
			"thinking": map[string]any{"type": "enabled", "budget_tokens": 1024},
			"grammar":  `root ::= "<think>Lists hold items.</think>" "A list."`}
		evs := postEvents(t, c.URL, body)
		types, err := checkSequence(evs)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(types, ",") != "thinking,text" {
			t.Errorf("blocks %v, want thinking, text", types)
		}
		var thinking, text strings.Builder
		for _, e := range evs {
			if d, ok := e.data["delta"].(map[string]any); ok && e.typ == "content_block_delta" {
				thinking.WriteString(fmt.Sprint(d["thinking"] /* nil prints <nil> */))
				if s, ok := d["text"].(string); ok {
					text.WriteString(s)
				}
			}
		}
		if got := strings.ReplaceAll(thinking.String(), "<nil>", ""); got != "Lists hold items." || text.String() != "A list." {
			t.Errorf("streamed thinking %q, text %q", got, text.String())
		}
		if d := evs[len(evs)-2].data["delta"].(map[string]any); d["stop_reason"] != "end_turn" {
			t.Errorf("message_delta %v, want stop_reason end_turn", d)
		}

		msg, err := ac.Messages.New(ctx, anthropic.MessageNewParams{Model: demomodel.Name, MaxTokens: 48,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(question))}},
			aoption.WithJSONSet("grammar", body["grammar"]))
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Content) != 2 || msg.Content[0].Type != "thinking" || msg.Content[0].Thinking != "Lists hold items." ||
			msg.Content[1].Text != "A list." || msg.StopReason != "end_turn" {
			t.Errorf("whole: %+v stop %q", msg.Content, msg.StopReason)
		}
	})

	t.Run("tool_use stream events", func(t *testing.T) {
		evs := postEvents(t, c.URL, map[string]any{"model": demomodel.Name, "max_tokens": 64, "temperature": 0,
			"messages":    []map[string]any{{"role": "user", "content": "Weather in Paris?"}},
			"tools":       []map[string]any{{"name": "get_weather", "input_schema": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}}}},
			"tool_choice": map[string]any{"type": "tool", "name": "get_weather"}})
		types, err := checkSequence(evs)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(types, ",") != "tool_use" {
			t.Errorf("blocks %v, want one tool_use", types)
		}
		start := evs[0].data["message"].(map[string]any)
		if u := start["usage"].(map[string]any); u["input_tokens"].(float64) == 0 || start["stop_reason"] != nil {
			t.Errorf("message_start %v: want the prompt's input_tokens and no stop_reason yet", start)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			name string
			body string
			want string
		}{
			{"no max_tokens", `{"messages": [{"role": "user", "content": "hi"}]}`, "max_tokens"},
			{"image", `{"max_tokens": 4, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}`, "text only"},
			{"system role", `{"max_tokens": 4, "messages": [{"role": "system", "content": "hi"}]}`, "system"},
			{"server tool", `{"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}`, "web_search_20250305"},
			{"temperature", `{"max_tokens": 4, "temperature": 1.5, "messages": [{"role": "user", "content": "hi"}]}`, "temperature"},
			{"unknown tool", `{"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "a", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "b"}}`, "names the tool"},
		} {
			var msg anthropic.Message
			err := ac.Post(ctx, "/v1/messages", json.RawMessage(c.body), &msg)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Error(), c.want) || !strings.Contains(apiErr.Error(), "invalid_request_error") {
				t.Errorf("%s: got %v, want a 400 invalid_request_error naming %s", c.name, err, c.want)
			}
		}
	})
}
