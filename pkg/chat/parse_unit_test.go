package chat

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestParserCases are replies written by hand in each family's syntax,
// for what the rendered templates do not show.
func TestParserCases(t *testing.T) {
	calls := DefaultParserConfig
	cases := []struct {
		name    string
		cfg     ParserConfig
		in      string
		want    reply
		uncalls []error // the errors text deltas must carry, in order
	}{
		{name: "hermes close inside a string", cfg: calls(FamilyHermes),
			in:   `<tool_call>{"name": "write", "arguments": {"text": "end with </tool_call>"}}</tool_call>`,
			want: reply{Calls: []call{{Name: "write", Args: `{"text": "end with </tool_call>"}`}}}},
		{name: "hermes arguments as a string", cfg: calls(FamilyHermes),
			in:   `<tool_call>{"name": "f", "arguments": "{\"a\": 1}"}</tool_call>`,
			want: reply{Calls: []call{{Name: "f", Args: `{"a": 1}`}}}},
		{name: "hermes prose names the tag", cfg: calls(FamilyHermes),
			in:      "Wrap calls in <tool_call> tags.",
			want:    reply{Text: "Wrap calls in <tool_call> tags."},
			uncalls: []error{ErrMalformedCall}},
		{name: "hermes empty call", cfg: calls(FamilyHermes),
			in:      "<tool_call></tool_call>",
			want:    reply{Text: "<tool_call></tool_call>"},
			uncalls: []error{ErrMalformedCall}},
		{name: "text after a call keeps its space", cfg: calls(FamilyHermes),
			in:   "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>\n\nDone.\n",
			want: reply{Text: "\n\nDone.\n", Calls: []call{{Name: "f", Args: `{}`}}}},
		{name: "qwen3-coder close inside a value", cfg: calls(FamilyQwen3Coder),
			in:   "<tool_call>\n<function=write>\n<parameter=text>\nuse </tool_call> here\n</parameter>\n</function>\n</tool_call>",
			want: reply{Calls: []call{{Name: "write", Args: `{"text": "use </tool_call> here"}`}}}},
		{name: "qwen3-coder no arguments", cfg: calls(FamilyQwen3Coder),
			in:   "<tool_call>\n<function=now>\n</function>\n</tool_call>",
			want: reply{Calls: []call{{Name: "now", Args: `{}`}}}},
		{name: "glm values", cfg: calls(FamilyGLM),
			in:   "<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>[1, 2]</arg_value>\n<arg_key>b</arg_key>\n<arg_value>hello world</arg_value>\n</tool_call>",
			want: reply{Calls: []call{{Name: "f", Args: `{"a": [1, 2], "b": "hello world"}`}}}},
		{name: "glm no arguments", cfg: calls(FamilyGLM),
			in:   "<tool_call>now</tool_call>",
			want: reply{Calls: []call{{Name: "now", Args: `{}`}}}},
		// V3 and R1 wrote calls as llama.cpp's common_chat_parse_deepseek_r1
		// reads them.
		{name: "deepseek r1 call", cfg: calls(FamilyDeepSeek),
			in:   "<think>\nHm.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
			want: reply{Reasoning: "Hm.", Calls: []call{{Name: "get_weather", Args: `{"city": "Paris"}`}}}},
		{name: "deepseek empty section", cfg: calls(FamilyDeepSeek),
			in:      "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>",
			want:    reply{Text: "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>"},
			uncalls: []error{ErrMalformedCall}},
		{name: "kimi ID without functions.", cfg: calls(FamilyKimiK2),
			in:   `<|tool_calls_section_begin|><|tool_call_begin|>search:3<|tool_call_argument_begin|>{"q": "x"}<|tool_call_end|><|tool_calls_section_end|>`,
			want: reply{Calls: []call{{ID: "search:3", Name: "search", Args: `{"q": "x"}`}}}},
		// Harmony as OpenAI's harmony guide writes a call: the recipient after
		// the channel, the content type after <|constrain|>.
		{name: "harmony recipient after channel", cfg: calls(FamilyHarmony),
			in:   `<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>`,
			want: reply{Calls: []call{{Name: "get_weather", Args: `{"city":"Paris"}`}}}},
		{name: "harmony call ended by the end of generation", cfg: calls(FamilyHarmony),
			in:   `<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}`,
			want: reply{Calls: []call{{Name: "f", Args: `{}`}}}},
		{name: "harmony analysis then final", cfg: calls(FamilyHarmony),
			in:   "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|return|>",
			want: reply{Reasoning: "Simple.", Text: "Hello!"}},
		{name: "harmony without channels", cfg: calls(FamilyHarmony),
			in:   "Hello there.",
			want: reply{Text: "Hello there."}},
		{name: "harmony built-in tool", cfg: calls(FamilyHarmony),
			in:      `<|channel|>analysis to=browser.search<|message|>{"q":"x"}<|call|>`,
			want:    reply{Text: `<|channel|>analysis to=browser.search<|message|>{"q":"x"}<|call|>`},
			uncalls: []error{ErrMalformedCall}},
		{name: "mistral ID not nine characters", cfg: calls(FamilyMistral),
			in:   `[TOOL_CALLS][{"name": "f", "arguments": {}, "id": "abc"}]`,
			want: reply{Calls: []call{{Name: "f", Args: `{}`}}}},
		{name: "llama3 JSON that is not a call", cfg: calls(FamilyLlama3),
			in:      `{"answer": 42}`,
			want:    reply{Text: `{"answer": 42}`},
			uncalls: []error{ErrMalformedCall}},
		{name: "llama3 call mid-text is text", cfg: calls(FamilyLlama3),
			in:   `Call {"name": "f", "parameters": {}}`,
			want: reply{Text: `Call {"name": "f", "parameters": {}}`}},
		{name: "reasoning cut off", cfg: calls(FamilyPlain),
			in:   "<think>\nStill thinking  ",
			want: reply{Reasoning: "Still thinking"}},
		{name: "two think blocks", cfg: calls(FamilyPlain),
			in:   "<think>a</think>\n<think>b</think>\n\nc",
			want: reply{Reasoning: "ab", Text: "c"}},
		{name: "think after text is text", cfg: calls(FamilyPlain),
			in:   "a <think>b</think>",
			want: reply{Text: "a <think>b</think>"}},
		{name: "plain reads no other family's calls", cfg: calls(FamilyPlain),
			in:   `<tool_call>{"name": "f", "arguments": {}}</tool_call>`,
			want: reply{Text: `<tool_call>{"name": "f", "arguments": {}}</tool_call>`}},
		// The plain template's own layout (TestPlainTools): calls as JSON
		// lines where the reply begins.
		{name: "plain calls", cfg: calls(FamilyPlain),
			in: "<think>Two cities.</think>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n" +
				`{"name": "get_weather", "arguments": {"city": "Tōkyō", "days": 2}}`,
			want: reply{Reasoning: "Two cities.", Calls: []call{{Name: "get_weather", Args: `{"city": "Paris"}`},
				{Name: "get_weather", Args: `{"city": "Tōkyō", "days": 2}`}}}},
		{name: "plain JSON answer is text", cfg: calls(FamilyPlain),
			in:      `{"name": "Ada", "age": 36}`,
			want:    reply{Text: `{"name": "Ada", "age": 36}`},
			uncalls: []error{ErrMalformedCall}},
		{name: "plain call after text is text", cfg: calls(FamilyPlain),
			in:   "Checking.\n{\"name\": \"f\", \"arguments\": {}}",
			want: reply{Text: "Checking.\n{\"name\": \"f\", \"arguments\": {}}"}},
		{name: "calls past MaxCalls are text",
			cfg: ParserConfig{Family: FamilyHermes, ToolCalls: true, MaxCalls: 1},
			in:  `<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {}}</tool_call>`,
			want: reply{Text: `<tool_call>{"name": "b", "arguments": {}}</tool_call>`,
				Calls: []call{{Name: "a", Args: `{}`}}},
			uncalls: []error{ErrCallLimit}},
		{name: "a call past MaxCallBytes is text",
			cfg:     ParserConfig{Family: FamilyHermes, ToolCalls: true, MaxCallBytes: 40},
			in:      `<tool_call>{"name": "f", "arguments": {"text": "0123456789"}}</tool_call>`,
			want:    reply{Text: `<tool_call>{"name": "f", "arguments": {"text": "0123456789"}}</tool_call>`},
			uncalls: []error{ErrCallLimit}},
		{name: "a harmony call past MaxCallBytes is text",
			cfg:     ParserConfig{Family: FamilyHarmony, ToolCalls: true, MaxCallBytes: 10},
			in:      `<|channel|>commentary to=functions.f<|message|>{"text": "0123456789"}<|call|>`,
			want:    reply{Text: `<|channel|>commentary to=functions.f<|message|>{"text": "0123456789"}<|call|>`},
			uncalls: []error{ErrCallLimit}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, f := range feeders("") {
				got, _ := run(t, c.cfg, f.cut(t, c.in))
				if got.Text != c.want.Text || got.Reasoning != c.want.Reasoning {
					t.Errorf("%s: got text %q reasoning %q, want %q and %q", f.name, got.Text, got.Reasoning, c.want.Text, c.want.Reasoning)
				}
				shape := openAIIDShape
				switch {
				case c.cfg.Family == FamilyMistral:
					shape = regexp.MustCompile(`^[A-Za-z0-9]{9}$`)
				case c.cfg.Family == FamilyKimiK2:
					shape = nil
				}
				checkCalls(t, got.Calls, c.want.Calls, shape)
				if len(got.Errs) != len(c.uncalls) {
					t.Fatalf("%s: got errors %v, want %v", f.name, got.Errs, c.uncalls)
				}
				for i, err := range got.Errs {
					if !errors.Is(err, c.uncalls[i]) {
						t.Errorf("%s: got error %v, want %v", f.name, err, c.uncalls[i])
					}
				}
			}
		})
	}
}

// TestHoldsBackOnlyMarkup pushes a reply piece by piece and checks what
// each push returns: everything but what may still become markup.
func TestHoldsBackOnlyMarkup(t *testing.T) {
	p, err := NewParser(DefaultParserConfig(FamilyHermes))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		in   string
		want string // the deltas, as kind:text
	}{
		{"<thi", ""},
		{"nk>\nLet me", "reasoning:Let me"},
		{" see.\n</th", "reasoning: see."},
		{"ink>\n\nHello", "text:Hello"},
		{" <b", "text: <b"}, // cannot become <tool_call>
		{"> and <to", "text:> and"},
		{"ol", ""},
		{"box>", "text: <toolbox>"},
		{"\n\n", ""}, // space before a call is the call's
		{"<tool_call>\n{\"name\": \"f\", ", ""},
		{"\"arguments\": {}}\n</tool_call>", "call-start:f call-args:{}"},
		{"\n", ""},
	}
	for _, s := range steps {
		var got []string
		for _, d := range p.Push(s.in) {
			switch d.Kind {
			case KindCallStart:
				got = append(got, d.Kind.String()+":"+d.Name)
			default:
				got = append(got, d.Kind.String()+":"+d.Text)
			}
		}
		if g := strings.Join(got, " "); g != s.want {
			t.Fatalf("Push(%q) gave %q, want %q", s.in, g, s.want)
		}
	}
	if ds := p.Finish(); len(ds) != 1 || ds[0].Kind != KindFinish || ds[0].Calls != 1 {
		t.Errorf("Finish gave %+v, want only a finish with 1 call (the space after it dropped)", ds)
	}
}

func TestThinkingOpen(t *testing.T) {
	for _, c := range []struct {
		prompt string
		want   bool
	}{
		// DeepSeek-V3.1's generation prompt with thinking on, and off.
		{"<｜User｜>Hi<｜Assistant｜><think>", true},
		{"<｜User｜>Hi<｜Assistant｜><think></think>", false},
		// DeepSeek-R1's and Qwen3-thinking's.
		{"<|im_start|>assistant\n<think>\n", true},
		{"<|im_start|>user\nWhat does <think> do?<|im_end|>\n<|im_start|>assistant\n", false},
	} {
		if got := ThinkingOpen(c.prompt); got != c.want {
			t.Errorf("ThinkingOpen(%q) = %v, want %v", c.prompt, got, c.want)
		}
	}
}

func TestParserConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  ParserConfig
		ok   bool
	}{
		{"zero", ParserConfig{}, true},
		{"default", DefaultParserConfig(FamilyGLM), true},
		{"unknown family", ParserConfig{Family: Family(len(families))}, false},
		{"unknown reasoning format", ParserConfig{Reasoning: ReasoningFormat(len(reasoningFormats))}, false},
		{"negative MaxCalls", ParserConfig{MaxCalls: -1}, false},
		{"negative MaxCallBytes", ParserConfig{MaxCallBytes: -1}, false},
	} {
		_, err := NewParser(c.cfg)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrParserConfig) {
			t.Errorf("%s: got %v, want ok %v", c.name, err, c.ok)
		}
	}
	for _, s := range []string{"none", "deepseek"} {
		if f, err := ParseReasoningFormat(s); err != nil || f.String() != s {
			t.Errorf("ParseReasoningFormat(%q) = %v, %v", s, f, err)
		}
	}
	if _, err := ParseReasoningFormat("auto"); !errors.Is(err, ErrParserConfig) {
		t.Errorf("ParseReasoningFormat(auto): got %v, want ErrParserConfig", err)
	}
}

// BenchmarkParser streams replies four bytes a push, as tokens come: text,
// and one call with arguments of growing size (the cost per byte must not
// grow with it).
func BenchmarkParser(b *testing.B) {
	for _, fam := range []Family{FamilyHermes, FamilyQwen3Coder, FamilyDeepSeek, FamilyHarmony} {
		for _, n := range []int{1 << 12, 1 << 16, 1 << 19} {
			v := strings.Repeat("abc ", n/4)
			in := map[Family]string{
				FamilyHermes:     `<tool_call>{"name": "w", "arguments": {"t": "` + v + `"}}</tool_call>`,
				FamilyQwen3Coder: "<tool_call>\n<function=w>\n<parameter=t>\n" + v + "\n</parameter>\n</function>\n</tool_call>",
				FamilyDeepSeek:   `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>w<｜tool▁sep｜>{"t": "` + v + `"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>`,
				FamilyHarmony:    `<|channel|>commentary to=functions.w<|message|>{"t": "` + v + `"}<|call|>`,
			}[fam]
			for _, r := range []struct{ name, in string }{{"text", v}, {"call", in}} {
				b.Run(fmt.Sprintf("%v/%s/%d", fam, r.name, n), func(b *testing.B) {
					b.SetBytes(int64(len(r.in)))
					for b.Loop() {
						p, _ := NewParser(DefaultParserConfig(fam))
						for i := 0; i < len(r.in); i += 4 {
							p.Push(r.in[i:min(i+4, len(r.in))])
						}
						p.Finish()
					}
				})
			}
		}
	}
}
