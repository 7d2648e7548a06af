package up

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-llm/switchyard/internal/demomodel"
	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/grammar"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// familyReplies are replies in each released template family's format
// (pkg/chat's tests parse the renders of testdata/templates; these are the
// same syntax, written out), each with reasoning where the family writes
// it and two calls where it can write several.
var familyReplies = []struct {
	template  string
	family    chat.Family
	reply     string
	reasoning string
	calls     int  // get_weather(Paris), then get_time(Tōkyō)
	thinking  bool // enable_thinking: the prompt opens <think>, the reply begins inside it
}{
	{"Qwen-Qwen3-0.6B.jinja", chat.FamilyHermes, "<think>\nLet me look it up.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"city\": \"Tōkyō\"}}\n</tool_call>",
		"Let me look it up.", 2, false},
	{"Qwen3-Coder.jinja", chat.FamilyQwen3Coder, "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_time>\n<parameter=city>\nTōkyō\n</parameter>\n</function>\n</tool_call>",
		"", 2, false},
	{"deepseek-ai-DeepSeek-V3.1.jinja", chat.FamilyDeepSeek, "Let me look it up.</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"city\": \"Tōkyō\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
		"Let me look it up.", 2, true},
	{"moonshotai-Kimi-K2.jinja", chat.FamilyKimiK2, "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_call_end|><|tool_call_begin|>functions.get_time:1<|tool_call_argument_begin|>{\"city\": \"Tōkyō\"}<|tool_call_end|><|tool_calls_section_end|>",
		"", 2, false},
	{"openai-gpt-oss-120b.jinja", chat.FamilyHarmony, "<|channel|>analysis<|message|>Let me look it up.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|>",
		"Let me look it up.", 1, false},
	{"mistralai-Mistral-Nemo-Instruct-2407.jinja", chat.FamilyMistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"a1b2c3d4e\"}, {\"name\": \"get_time\", \"arguments\": {\"city\": \"Tōkyō\"}, \"id\": \"f5g6h7i8j\"}]",
		"", 2, false},
	{"meta-llama-Llama-3.1-8B-Instruct.jinja", chat.FamilyLlama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
		"", 1, false},
	{"GLM-4.6.jinja", chat.FamilyGLM, "<think>Let me look it up.</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>\n<tool_call>get_time\n<arg_key>city</arg_key>\n<arg_value>Tōkyō</arg_value>\n</tool_call>",
		"Let me look it up.", 2, false},
}

// TestFamiliesEndToEnd serves the demo model under each released family's
// chat template and has it write that family's reply, forced through the
// grammar extension. The released templates' tool instructions alone run
// past the demo's 256-token context, so it is served with a context of
// 1,024: positions it was never trained on, which matters not at all when
// the grammar writes the reply. The OpenAI Go SDK must receive the calls and the
// reasoning, whole and reassembled from streamed deltas, and Anthropic's
// stream must carry them as well-formed thinking and tool_use blocks.
func TestFamiliesEndToEnd(t *testing.T) {
	path := demoWith(t, map[string]gguf.Value{"llama.context_length": gguf.U32(1024)}, nil)
	f, err := model.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f.File)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := []struct{ name, args string }{{"get_weather", `{"city":"Paris"}`}, {"get_time", `{"city":"Tōkyō"}`}}
	city := json.RawMessage(`{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}`)
	var params openai.FunctionParameters
	json.Unmarshal(city, &params)
	var tools []openai.ChatCompletionToolUnionParam
	for _, c := range wantCalls {
		tools = append(tools, openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: c.name, Parameters: params}))
	}

	for _, fr := range familyReplies {
		t.Run(fr.family.String(), func(t *testing.T) {
			src, err := os.ReadFile("../../testdata/templates/" + fr.template)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := chat.New(fr.template, string(src), tok.Token(tok.BOS), tok.Token(tok.EOS))
			if err != nil {
				t.Fatal(err)
			}
			if got := chat.DetectFamily(tmpl.Source); got != fr.family {
				t.Fatalf("%s is of family %v, want %v", fr.template, got, fr.family)
			}
			c := start(t, Config{ModelPath: path, ChatTemplate: tmpl})
			client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
			gbnf := grammar.Literal(fr.reply).String()
			req := openai.ChatCompletionNewParams{Model: demomodel.Name, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris, time in Tōkyō?")},
				Tools: tools, MaxTokens: openai.Int(480), Temperature: openai.Float(0)}
			force := []option.RequestOption{option.WithJSONSet("grammar", gbnf)}
			if fr.thinking {
				force = append(force, option.WithJSONSet("enable_thinking", true))
			}

			check := func(how, reasoning, content string, finish string, calls []openai.ChatCompletionMessageToolCallUnion) {
				t.Helper()
				if reasoning != fr.reasoning || content != "" || finish != "tool_calls" || len(calls) != fr.calls {
					t.Fatalf("%s: reasoning %q, content %q, finish %q, %d calls %+v; want reasoning %q, no content, %d calls, finish tool_calls",
						how, reasoning, content, finish, len(calls), calls, fr.reasoning, fr.calls)
				}
				for i, call := range calls {
					var got, want any
					json.Unmarshal([]byte(call.Function.Arguments), &got)
					json.Unmarshal([]byte(wantCalls[i].args), &want)
					if call.Function.Name != wantCalls[i].name || !jsonEqual(got, want) || call.ID == "" {
						t.Errorf("%s: call %d is %s(%s) id %q, want %s(%s)", how, i, call.Function.Name, call.Function.Arguments, call.ID, wantCalls[i].name, wantCalls[i].args)
					}
				}
			}
			whole, err := client.Chat.Completions.New(t.Context(), req, force...)
			if err != nil {
				t.Fatalf("%v: %s", err, err.(*openai.Error).RawJSON())
			}
			var raw struct {
				Choices []struct {
					Message struct {
						ReasoningContent string `json:"reasoning_content"`
					}
				}
			}
			json.Unmarshal([]byte(whole.RawJSON()), &raw)
			check("whole", raw.Choices[0].Message.ReasoningContent, whole.Choices[0].Message.Content, string(whole.Choices[0].FinishReason), whole.Choices[0].Message.ToolCalls)

			stream := client.Chat.Completions.NewStreaming(t.Context(), req, force...)
			acc := openai.ChatCompletionAccumulator{}
			var reasoning strings.Builder
			for stream.Next() {
				chunk := stream.Current()
				acc.AddChunk(chunk)
				var d struct {
					Choices []struct {
						Delta struct {
							ReasoningContent string `json:"reasoning_content"`
						}
					}
				}
				json.Unmarshal([]byte(chunk.RawJSON()), &d)
				for _, ch := range d.Choices {
					reasoning.WriteString(ch.Delta.ReasoningContent)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			check("streamed", reasoning.String(), acc.Choices[0].Message.Content, string(acc.Choices[0].FinishReason), acc.Choices[0].Message.ToolCalls)

			// Anthropic's stream: a thinking block where there is
			// reasoning, then a tool_use block per call.
			body := map[string]any{"max_tokens": 480, "temperature": 0, "grammar": gbnf,
				"messages": []map[string]any{{"role": "user", "content": "Weather in Paris, time in Tōkyō?"}},
				"tools":    []map[string]any{{"name": "get_weather", "input_schema": city}, {"name": "get_time", "input_schema": city}}}
			if fr.thinking {
				body["thinking"] = map[string]any{"type": "enabled", "budget_tokens": 1024}
			}
			evs := postEvents(t, c.URL, body)
			types, err := checkSequence(evs)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimPrefix(strings.Repeat(",tool_use", fr.calls), ",")
			if fr.reasoning != "" {
				want = "thinking," + want
			}
			if got := strings.Join(types, ","); got != want {
				t.Errorf("Anthropic blocks %s, want %s", got, want)
			}
			if d := evs[len(evs)-2].data["delta"].(map[string]any); d["stop_reason"] != "tool_use" {
				t.Errorf("Anthropic message_delta %v, want stop_reason tool_use", d)
			}

			// tool_choice required: the grammar writes one call in the
			// family's format, which its parser reads back. The XML formats
			// (Qwen3-Coder, GLM) cannot be forced yet, and say so.
			forced := openai.ChatCompletionNewParams{Model: demomodel.Name, Messages: req.Messages, Tools: tools, MaxTokens: openai.Int(480),
				Temperature: openai.Float(0.3), Seed: openai.Int(1), ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}}
			got, err := client.Chat.Completions.New(t.Context(), forced)
			if fr.family == chat.FamilyQwen3Coder || fr.family == chat.FamilyGLM {
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "not available for the "+fr.family.String()) {
					t.Errorf("forced call: %v, want a 400 saying it is not available for %s", err, fr.family)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ch := got.Choices[0]
			var args map[string]any
			if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 || json.Unmarshal([]byte(ch.Message.ToolCalls[0].Function.Arguments), &args) != nil {
				t.Fatalf("forced call: finish %q, content %q, calls %+v; want one call", ch.FinishReason, ch.Message.Content, ch.Message.ToolCalls)
			}
			if _, ok := args["city"].(string); !ok || len(args) != 1 || !strings.HasPrefix(ch.Message.ToolCalls[0].Function.Name, "get_") {
				t.Errorf("forced call %s(%s): want get_weather or get_time of a city", ch.Message.ToolCalls[0].Function.Name, ch.Message.ToolCalls[0].Function.Arguments)
			}
		})
	}
}

// jsonEqual compares decoded JSON values.
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestReasoningFormatNone: with --reasoning-format none, reasoning stays
// in the content, markup and all, and Anthropic's answer is one text
// block; the default splits it out (TestFamiliesEndToEnd).
func TestReasoningFormatNone(t *testing.T) {
	c := start(t, Config{ReasoningFormat: chat.ReasoningNone})
	client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	const reply = "<think>Lists hold items.</think>A list."
	gbnf := grammar.Literal(reply).String()
	got, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: demomodel.Name,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is a list?")}, MaxTokens: openai.Int(48)},
		option.WithJSONSet("grammar", gbnf))
	if err != nil {
		t.Fatal(err)
	}
	if got.Choices[0].Message.Content != reply || strings.Contains(got.RawJSON(), "reasoning_content") {
		t.Errorf("content %q, raw %s; want the reply whole, no reasoning_content", got.Choices[0].Message.Content, got.RawJSON())
	}
	evs := postEvents(t, c.URL, map[string]any{"max_tokens": 48, "grammar": gbnf, "messages": []map[string]any{{"role": "user", "content": "What is a list?"}}})
	if types, err := checkSequence(evs); err != nil || strings.Join(types, ",") != "text" {
		t.Errorf("Anthropic blocks %v (%v), want one text block", types, err)
	}
}

// harmonyControls are gpt-oss's control tokens, which the demo vocabulary
// lacks.
var harmonyControls = []string{"<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|call|>", "<|return|>"}

// demoWithControls writes the demo model with controls appended to its
// vocabulary as control tokens (zero embeddings and zero output rows) and
// a context of 1,024, and returns its path and the first new ID.
func demoWithControls(t *testing.T, controls []string) (string, int32) {
	t.Helper()
	demo, err := demomodel.Path(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g, err := gguf.Open(demo, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tv, _ := g.Get("tokenizer.ggml.tokens")
	yv, _ := g.Get("tokenizer.ggml.token_type")
	g.Close()
	tokens, _ := tv.V.([]string)
	types, _ := yv.V.([]int32)
	first := int32(len(tokens))
	for _, c := range controls {
		tokens, types = append(tokens, c), append(types, int32(tokenizer.TypeControl))
	}
	vocab := uint64(len(tokens))
	path := demoWith(t, map[string]gguf.Value{"llama.context_length": gguf.U32(1024), "llama.vocab_size": gguf.U32(uint32(vocab)),
		"tokenizer.ggml.tokens": gguf.Strs(tokens), "tokenizer.ggml.token_type": gguf.I32s(types)},
		func(wt gguf.WriterTensor) gguf.WriterTensor {
			if wt.Name == "token_embd.weight" || wt.Name == "output.weight" {
				row := len(wt.Data) / int(wt.Dims[1])
				wt.Data = append(slices.Clone(wt.Data), make([]byte, row*len(controls))...) // Q8_0 zeros: scale 0
				wt.Dims = []uint64{wt.Dims[0], vocab}
			}
			return wt
		})
	return path, first
}

// TestForcedCallControlTokens: gpt-oss's call markup is control tokens.
// The grammar must write them as those tokens (as the model was trained
// to), never their text in ordinary tokens, and the parser must read the
// call from them.
func TestForcedCallControlTokens(t *testing.T) {
	path, first := demoWithControls(t, harmonyControls)
	src, err := os.ReadFile("../../testdata/templates/openai-gpt-oss-120b.jinja")
	if err != nil {
		t.Fatal(err)
	}
	f, err := model.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f.File)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.New("gpt-oss", string(src), tok.Token(tok.BOS), tok.Token(tok.EOS))
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, Config{ModelPath: path, ChatTemplate: tmpl})
	client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	var params openai.FunctionParameters
	json.Unmarshal([]byte(`{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}`), &params)
	got, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: demomodel.Name,
		Messages:   []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")},
		Tools:      []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather", Parameters: params})},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		MaxTokens:  openai.Int(64), Temperature: openai.Float(0.3), Seed: openai.Int(1)},
		option.WithJSONSet("return_token_ids", true))
	if err != nil {
		t.Fatal(err)
	}
	ch := got.Choices[0]
	var args struct{ City *string }
	if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 || ch.Message.ToolCalls[0].Function.Name != "get_weather" ||
		json.Unmarshal([]byte(ch.Message.ToolCalls[0].Function.Arguments), &args) != nil || args.City == nil {
		t.Fatalf("finish %q, content %q, calls %+v; want one get_weather call", ch.FinishReason, ch.Message.Content, ch.Message.ToolCalls)
	}
	// The markup, <|channel|>commentary to=functions.get_weather
	// <|constrain|>json<|message|>{…}<|call|>, holds four control tokens,
	// in that order; <|call|> ends generation.
	var ids struct {
		Choices []struct {
			TokenIDs []int32 `json:"token_ids"`
		} `json:"choices"`
	}
	json.Unmarshal([]byte(got.RawJSON()), &ids)
	var controls []string
	for _, id := range ids.Choices[0].TokenIDs {
		if id >= first {
			controls = append(controls, harmonyControls[id-first])
		}
	}
	if want := []string{"<|channel|>", "<|constrain|>", "<|message|>", "<|call|>"}; !slices.Equal(controls, want) {
		t.Errorf("control tokens written %v, want %v (tokens %v)", controls, want, ids.Choices[0].TokenIDs)
	}
}
