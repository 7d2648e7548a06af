package modeltool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// withTemplate writes the GGUF file at path to dir with its
// tokenizer.chat_template set to tmpl.
func withTemplate(t *testing.T, path, tmpl string) string {
	t.Helper()
	g, err := gguf.Open(path, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := &gguf.Writer{KVs: slices.DeleteFunc(slices.Clone(g.KVs), func(kv gguf.KV) bool { return kv.Key == "tokenizer.chat_template" })}
	w.Set("tokenizer.chat_template", gguf.Str(tmpl))
	for _, ti := range g.Tensors {
		data, err := g.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Add(gguf.WriterTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: data})
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "with-template.gguf")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// roundTrip is conversations.json's "tools-roundtrip" as an OpenAI client
// sends it: the call's arguments as a JSON string.
const roundTrip = `{"model": "any", "max_tokens": 16,
 "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}],
 "messages": [
  {"role": "user", "content": "Weather in Paris?"},
  {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 2}"}}]},
  {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp_c\": 18}"},
  {"role": "user", "content": "Thanks. And tomorrow?"}]}`

// TestChatTemplate: the prompt printed for a chat request with tools, a
// tool call and its result is what transformers renders for the same
// conversation with Qwen3's template (testdata/templates/renders.json),
// byte for byte; a file without a template renders with the fallback.
func TestChatTemplate(t *testing.T) {
	src, err := os.ReadFile("../../testdata/templates/Qwen-Qwen3-0.6B.jinja")
	if err != nil {
		t.Fatal(err)
	}
	var renders map[string]struct{ OK string }
	b, err := os.ReadFile("../../testdata/templates/renders.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &renders); err != nil {
		t.Fatal(err)
	}
	qwen := withTemplate(t, "../../testdata/models/tiny-mixtral-f32.gguf", string(src))
	var out strings.Builder
	if err := ChatTemplate(ChatTemplateConfig{Path: qwen, Request: []byte(roundTrip)}, &out); err != nil {
		t.Fatal(err)
	}
	if want := renders["Qwen-Qwen3-0.6B.jinja|tools-roundtrip"].OK; out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}

	plain, err := chat.New("plain", chat.Plain, "", "")
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	req := `{"messages": [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}]}, {"role": "user", "content": "Weather in Paris?"}],
	 "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}`
	if err := ChatTemplate(ChatTemplateConfig{Path: "../../testdata/models/tiny-mixtral-f32.gguf", Request: []byte(req), Fallback: plain}, &out); err != nil {
		t.Fatal(err)
	}
	// Plain's layout (its doc comment): tools, then turns; developer is
	// system, text parts joined by newlines.
	want := "System: You can call these tools:\n" +
		`{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}` + "\n\n" +
		"System: Be brief.\nUse tools.\n\nUser: Weather in Paris?\n\nAssistant:"
	if out.String() != want {
		t.Errorf("plain: got\n%q\nwant\n%q", out.String(), want)
	}

	for _, c := range []struct{ name, path, req, msg string }{
		{"no template, no fallback", "../../testdata/models/tiny-mixtral-f32.gguf", roundTrip, "has no chat template; give --chat-template"},
		{"a request the API refuses", qwen, `{"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"}`, "tool_choice is only allowed when tools are given"},
		{"a field of the wrong type", qwen, `{"messages": [{"role": "user", "content": "hi"}], "n": "two"}`, "n must be an integer, not a string"},
	} {
		err := ChatTemplate(ChatTemplateConfig{Path: c.path, Request: []byte(c.req)}, &out)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.msg)
		}
	}
}
