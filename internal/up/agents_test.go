package up

import (
	"bufio"
	"bytes"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-llm/switchyard/internal/demomodel"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// TestAgentSurface drives `up` (the demo model, plain template) with the
// official OpenAI Go SDK as agents do: the developer role, tool calls and
// tool results in the conversation, n = 3, GET /v1/models/{id}, and every
// field the server refuses.
func TestAgentSurface(t *testing.T) {
	c := start(t, Config{})
	client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx := t.Context()
	chat := func(msgs []openai.ChatCompletionMessageParamUnion, opts ...func(*openai.ChatCompletionNewParams)) (*openai.ChatCompletion, error) {
		p := openai.ChatCompletionNewParams{Model: demomodel.Name, Messages: msgs, MaxTokens: openai.Int(16), Temperature: openai.Float(0)}
		for _, o := range opts {
			o(&p)
		}
		return client.Chat.Completions.New(ctx, p)
	}
	question := openai.UserMessage("How do I open a file?")

	t.Run("models", func(t *testing.T) {
		m, err := client.Models.Get(ctx, demomodel.Name)
		if err != nil || m.ID != demomodel.Name || m.Object != "model" {
			t.Fatalf("GET /v1/models/%s: %+v, %v", demomodel.Name, m, err)
		}
		_, err = client.Models.Get(ctx, "gpt-4o")
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
			t.Errorf("GET /v1/models/gpt-4o: %v", err)
		}
	})

	t.Run("developer is system", func(t *testing.T) {
		dev, err := chat([]openai.ChatCompletionMessageParamUnion{openai.DeveloperMessage("Answer with Python."), question})
		if err != nil {
			t.Fatal(err)
		}
		sys, err := chat([]openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Answer with Python."), question})
		if err != nil {
			t.Fatal(err)
		}
		// Greedy: the same prompt gives the same tokens.
		if dev.Choices[0].Message.Content != sys.Choices[0].Message.Content || dev.Usage.PromptTokens != sys.Usage.PromptTokens {
			t.Errorf("developer %q (%d prompt tokens), system %q (%d)", dev.Choices[0].Message.Content, dev.Usage.PromptTokens,
				sys.Choices[0].Message.Content, sys.Usage.PromptTokens)
		}
	})

	t.Run("tool calls and results in", func(t *testing.T) {
		call := openai.ChatCompletionMessageToolCallUnionParam{OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
			ID: "call_1", Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "get_weather", Arguments: `{"city": "Paris"}`}}}
		msgs := []openai.ChatCompletionMessageParamUnion{
			openai.UserMessage("Weather in Paris?"),
			{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{call}}},
			openai.ToolMessage(`{"temp_c": 18}`, "call_1"),
		}
		got, err := chat(msgs, func(p *openai.ChatCompletionNewParams) { p.ParallelToolCalls = openai.Bool(true) })
		if err != nil {
			t.Fatal(err)
		}
		// The plain template writes the call and the result as turns: the
		// prompt is longer than the user's question alone.
		alone, err := chat(msgs[:1])
		if err != nil {
			t.Fatal(err)
		}
		if got.Usage.PromptTokens <= alone.Usage.PromptTokens+10 {
			t.Errorf("%d prompt tokens with the call and result, %d without", got.Usage.PromptTokens, alone.Usage.PromptTokens)
		}
	})

	t.Run("n = 3", func(t *testing.T) {
		one, err := chat([]openai.ChatCompletionMessageParamUnion{question})
		if err != nil {
			t.Fatal(err)
		}
		lookups := prefixLookups(t, c)
		three, err := chat([]openai.ChatCompletionMessageParamUnion{question}, func(p *openai.ChatCompletionNewParams) { p.N = openai.Int(3) })
		if err != nil {
			t.Fatal(err)
		}
		// One prefill: the prompt was placed (looked up in the prefix
		// cache) once, the other choices forked from it.
		if d := prefixLookups(t, c) - lookups; d != one.Usage.PromptTokens {
			t.Errorf("the prompt was looked up for %d tokens, want %d (once)", d, one.Usage.PromptTokens)
		}
		if len(three.Choices) != 3 {
			t.Fatalf("%d choices", len(three.Choices))
		}
		for i, ch := range three.Choices {
			// Greedy choices forked from one prefill equal a request of one.
			if ch.Index != int64(i) || ch.Message.Content != one.Choices[0].Message.Content || ch.FinishReason != one.Choices[0].FinishReason {
				t.Errorf("choice %d: %+v, want %q", i, ch, one.Choices[0].Message.Content)
			}
		}
		if u := three.Usage; u.PromptTokens != one.Usage.PromptTokens || u.CompletionTokens != 3*one.Usage.CompletionTokens {
			t.Errorf("usage %+v, want the prompt once and 3 × %d completion tokens", u, one.Usage.CompletionTokens)
		}

		// Sampled: each choice draws with a seed of its own; the first is
		// the request of one with the same seed; streamed equals whole.
		sampled := func(p *openai.ChatCompletionNewParams) {
			p.N, p.Temperature, p.Seed, p.MaxTokens = openai.Int(3), openai.Float(1), openai.Int(11), openai.Int(24)
		}
		whole, err := chat([]openai.ChatCompletionMessageParamUnion{question}, sampled)
		if err != nil {
			t.Fatal(err)
		}
		single, err := chat([]openai.ChatCompletionMessageParamUnion{question}, sampled, func(p *openai.ChatCompletionNewParams) { p.N = openai.Int(1) })
		if err != nil {
			t.Fatal(err)
		}
		texts := []string{}
		for _, ch := range whole.Choices {
			texts = append(texts, ch.Message.Content)
		}
		if texts[0] != single.Choices[0].Message.Content {
			t.Errorf("choice 0 %q, the request of one %q", texts[0], single.Choices[0].Message.Content)
		}
		if texts[0] == texts[1] && texts[1] == texts[2] {
			t.Errorf("three sampled choices are the same: %q", texts)
		}
		p := openai.ChatCompletionNewParams{Model: demomodel.Name, Messages: []openai.ChatCompletionMessageParamUnion{question}}
		sampled(&p)
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		for i, ch := range acc.Choices {
			if ch.Message.Content != texts[i] {
				t.Errorf("streamed choice %d %q, whole %q", i, ch.Message.Content, texts[i])
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		image := openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.TextContentPart("What is this?"), openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,AAAA"})})
		audioPart := openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.InputAudioContentPart(openai.ChatCompletionContentPartInputAudioInputAudioParam{Data: "AAAA", Format: "wav"})})
		cases := []struct {
			name   string
			msgs   []openai.ChatCompletionMessageParamUnion
			opt    func(*openai.ChatCompletionNewParams)
			param  string
			phrase string
		}{
			// Structured output is served (structured_test.go); a schema
			// that is not one is refused.
			{"json schema not an object", nil, func(p *openai.ChatCompletionNewParams) {
				p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
					JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Schema: []any{1}}}}
			}, "response_format.json_schema.schema", "must be a JSON schema object"},
			{"audio output", nil, func(p *openai.ChatCompletionNewParams) {
				p.Audio = openai.ChatCompletionAudioParam{Voice: openai.ChatCompletionAudioParamVoiceUnion{OfString: openai.String("alloy")}, Format: "wav"}
			}, "audio", "audio output is not supported"},
			{"audio modality", nil, func(p *openai.ChatCompletionNewParams) { p.Modalities = []string{"text", "audio"} }, "modalities", "not supported"},
			{"prediction", nil, func(p *openai.ChatCompletionNewParams) {
				p.Prediction = openai.ChatCompletionPredictionContentParam{Content: openai.ChatCompletionPredictionContentContentUnionParam{OfString: openai.String("x")}}
			}, "prediction", "not supported"},
			{"web search", nil, func(p *openai.ChatCompletionNewParams) {
				p.WebSearchOptions = openai.ChatCompletionNewParamsWebSearchOptions{SearchContextSize: "low"}
			}, "web_search_options", "not supported"},
			{"image part", []openai.ChatCompletionMessageParamUnion{image}, nil, "messages[0].content[1]", "this model reads text only"},
			{"audio part", []openai.ChatCompletionMessageParamUnion{audioPart}, nil, "messages[0].content[0]", "this model reads text only"},
			{"max_tokens past the context", nil, func(p *openai.ChatCompletionNewParams) { p.MaxTokens = openai.Int(300) }, "max_tokens", "maximum context length is 256 tokens"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				msgs := tc.msgs
				if msgs == nil {
					msgs = []openai.ChatCompletionMessageParamUnion{question}
				}
				var opts []func(*openai.ChatCompletionNewParams)
				if tc.opt != nil {
					opts = append(opts, tc.opt)
				}
				_, err := chat(msgs, opts...)
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != tc.param || !strings.Contains(apiErr.Message, tc.phrase) {
					t.Errorf("got %v, want a 400 for %s saying %q", err, tc.param, tc.phrase)
				}
			})
		}
		// The prompt and max_tokens together past the context: OpenAI's words.
		long := strings.Repeat("word ", 60)
		_, err := chat([]openai.ChatCompletionMessageParamUnion{openai.UserMessage(long)}, func(p *openai.ChatCompletionNewParams) { p.MaxTokens = openai.Int(200) })
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "This model's maximum context length is 256 tokens. However, you requested") {
			t.Errorf("prompt and max_tokens past the context: %v", err)
		}
	})

	t.Run("plain JSON", func(t *testing.T) {
		// Neither answers nor errors escape HTML: '<' stays '<'.
		code, body := post(t, c.URL+"/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "<b>", "content": "x"}}})
		if code != 400 || !bytes.Contains(body, []byte(`role \"<b>\"`)) || bytes.Contains(body, []byte(`\u003c`)) {
			t.Errorf("%d %s", code, body)
		}
		code, body = post(t, c.URL+"/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": "x"}}, "max_tokens": "many"})
		if code != 400 || !bytes.Contains(body, []byte("max_tokens must be an integer, not a string")) || bytes.Contains(body, []byte("Go struct")) {
			t.Errorf("%d %s", code, body)
		}
	})
}

// prefixLookups is the coordinator's count of prompt tokens looked up in
// its prefix cache, from the router's /metrics.
func prefixLookups(t *testing.T, c *Cluster) int64 {
	t.Helper()
	resp, err := http.Get(c.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	const series = `switchyard_coordinator_prefix_cache_tokens_total{component="coordinator-1",result="lookup"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(n)
		}
	}
	t.Fatalf("/metrics lacks %s", series)
	return 0
}

// demoWithTemplate writes the demo model with its tokenizer.chat_template
// set to tmpl, and returns its path.
func demoWithTemplate(t *testing.T, tmpl string) string {
	return demoWith(t, map[string]gguf.Value{"tokenizer.chat_template": gguf.Str(tmpl)}, nil)
}

// demoWith writes the demo model with the metadata in set replaced or
// added and each tensor passed through edit (unless nil), and returns its
// path.
func demoWith(t *testing.T, set map[string]gguf.Value, edit func(gguf.WriterTensor) gguf.WriterTensor) string {
	t.Helper()
	path, err := demomodel.Path(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g, err := gguf.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := &gguf.Writer{KVs: slices.DeleteFunc(slices.Clone(g.KVs), func(kv gguf.KV) bool { _, ok := set[kv.Key]; return ok })}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		w.Set(k, set[k])
	}
	for _, ti := range g.Tensors {
		data, err := g.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		wt := gguf.WriterTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: data}
		if edit != nil {
			wt = edit(wt)
		}
		w.Add(wt)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "demo-variant.gguf")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// The hostile templates of issue 26: a 10¹⁰-iteration loop, a string
// repeated 10⁹ times, unbounded macro recursion.
const (
	hostileLoop      = `{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}`
	hostileRepeat    = `{{ "x" * 1000000000 }}`
	hostileRecursion = `{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`
)

// TestHostileTemplates serves the demo model with hostile chat templates,
// under the default budget. A template hostile on every conversation is
// refused when the coordinator loads it, with an error naming the limit;
// one hostile only on some requests fails those with a 400 naming the
// limit, and the same cluster serves the next request. The test process
// (which runs every component) survives all of it.
func TestHostileTemplates(t *testing.T) {
	for _, c := range []struct{ name, src, limit string }{
		{"loop", hostileLoop, "steps"},
		{"repetition", hostileRepeat, "bytes"},
		{"recursion", hostileRecursion, "macro calls past its limit of 200"},
	} {
		t.Run("at load: "+c.name, func(t *testing.T) {
			_, err := Start(t.Context(), Config{ModelPath: demoWithTemplate(t, c.src), Listen: "127.0.0.1:0", CacheDir: t.TempDir(), ExpertNodes: 1})
			if err == nil || !strings.Contains(err.Error(), "refused at load") || !strings.Contains(err.Error(), c.limit) {
				t.Errorf("got %v, want the template refused at load naming %q", err, c.limit)
			}
		})
	}

	// Plain's layout, with a trap for each message that names one.
	tmpl := `{%- for m in messages -%}
{%- if m.content == "loop" %}` + hostileLoop + `{% endif -%}
{%- if m.content == "repeat" %}` + hostileRepeat + `{% endif -%}
{%- if m.content == "recurse" %}` + hostileRecursion + `{% endif -%}
{{ m.role | capitalize }}: {{ m.content }}

{% endfor -%}
{%- if add_generation_prompt %}Assistant:{% endif -%}`
	c := start(t, Config{ModelPath: demoWithTemplate(t, tmpl), ExpertNodes: 1})
	client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ask := func(content string) (*openai.ChatCompletion, error) {
		return client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: demomodel.Name,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(content)}, MaxTokens: openai.Int(8)})
	}
	for _, h := range []struct{ content, limit string }{
		{"loop", "the template ran past its limit of 30000000 steps"},
		{"repeat", "the template built more than its limit of 67108864 bytes"},
		{"recurse", "the template nested macro calls past its limit of 200"},
	} {
		_, err := ask(h.content)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, h.limit) {
			t.Errorf("%s: got %v, want a 400 naming %q", h.content, err, h.limit)
		}
		got, err := ask("Hello")
		if err != nil || got.Choices[0].Message.Content == "" {
			t.Errorf("after %s, a harmless request: %+v, %v", h.content, got, err)
		}
	}
}
