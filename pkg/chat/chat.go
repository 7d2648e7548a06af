// Package chat renders a conversation into a prompt with the model's own
// chat template (tokenizer.chat_template, Jinja), as llama.cpp and vLLM do,
// and reads the model's reply back into typed parts (text, reasoning, tool
// calls) in the syntax of the template's family (Parser). It holds no
// per-model templates, only Plain for files that have none; it knows
// nothing of requests, sampling or the API a reply is shaped into.
//
// A template is code from whoever made the model file, so it runs under a
// budget (Limits): a template that loops, builds huge strings or recurses
// past it fails with ErrLimit, at load (New tries a sample conversation)
// or on the request that trips it.
package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-llm/switchyard/internal/jinja"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// ErrNoTemplate is returned when a model file carries no chat template.
var ErrNoTemplate = errors.New("chat: the model has no chat template (tokenizer.chat_template)")

// ErrTemplate wraps errors of compiling or rendering a template.
var ErrTemplate = errors.New("chat: template")

// ErrLimit is wrapped by the errors of a template that ran past its
// budget (Limits); the error names the limit.
var ErrLimit = jinja.ErrLimit

// MaxSourceBytes bounds a template's source. Released templates are a few
// to a few tens of kilobytes.
const MaxSourceBytes = 1 << 20

// Limits bound one render of a template: see jinja.Limits. A zero field
// means the field of DefaultLimits.
type Limits struct {
	// Steps bounds statements executed, expressions evaluated, loop
	// iterations and the items handed to filters.
	Steps int64
	// Bytes bounds the text and lists built: the prompt and everything
	// made on the way to it.
	Bytes int64
	// Depth bounds how deeply macro calls nest.
	Depth int
}

// DefaultLimits are jinja.DefaultLimits: 30 million steps, 64 MiB and
// macro calls 200 deep. A 1,024-message conversation (the coordinator's
// limit) with tool calls through gpt-oss's template, the costliest of the
// released ones, takes a twelfth of the steps
// (TestReleasedTemplatesWithinBudget holds them to a tenth).
var DefaultLimits = Limits(jinja.DefaultLimits)

// Message is one turn of a conversation.
type Message struct {
	// Role is system, user, assistant or tool.
	Role string
	// Content is the message's text. A client's content given as text
	// parts comes joined by newlines, as llama.cpp and vLLM hand it to
	// templates that expect a string.
	Content string
	// NoContent says the content was null (an assistant turn that only
	// calls tools): the template sees none rather than "".
	NoContent bool
	// Name is the tool's name on a tool result (optional).
	Name string
	// ToolCalls are the calls an assistant turn made.
	ToolCalls []ToolCall
	// ToolCallID is the call a tool message answers.
	ToolCallID string
	// Reasoning is an assistant turn's reasoning_content, for the
	// templates that render it (Qwen3, GLM).
	Reasoning string
}

// ToolCall is a call an assistant turn made.
type ToolCall struct {
	ID   string
	Name string
	// Arguments is the JSON text of the arguments, as OpenAI's API carries
	// it. The template sees it parsed (an object, as transformers
	// templates expect); text that is not JSON is passed as a string.
	Arguments string
}

// Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	// Parameters is the JSON schema of the arguments, an object; nil
	// means none.
	Parameters json.RawMessage
}

// Conversation is what a template renders.
type Conversation struct {
	Messages []Message
	// Tools are passed to the template as `tools`, in OpenAI's shape
	// ({"type": "function", "function": {...}}), only when there are
	// some (as llama.cpp does: templates test `tools is defined`).
	Tools []Tool
	// Vars are extra template variables, by name, as JSON values:
	// reasoning_effort, enable_thinking and the members of a request's
	// chat_template_kwargs. They cannot replace the variables the
	// renderer sets (ReservedVars).
	Vars map[string]json.RawMessage
	// AddGenerationPrompt appends the opening of the assistant's reply.
	AddGenerationPrompt bool
}

// ReservedVars are the variables a render sets itself.
var ReservedVars = []string{"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"}

// Plain is the documented fallback for models without a template:
// role-prefixed turns separated by blank lines, ending with "Assistant:"
// when a reply is wanted. Tools come first as a system turn listing each
// one's JSON on a line of its own; an assistant's tool calls follow its
// text, one JSON object a line; a tool result is a "Tool" turn.
//
//	System: You can call these tools:
//	{"type": "function", "function": {"name": "get_weather", …}}
//
//	System: …
//
//	User: …
//
//	Assistant: …
//	{"name": "get_weather", "arguments": {"city": "Paris"}}
//
//	Tool: {"temp_c": 18}
//
//	Assistant:
const Plain = `{%- if tools -%}
{{ "System: You can call these tools:\n" }}
{%- for t in tools %}{{ (t | tojson) ~ "\n" }}{% endfor %}
{{- "\n" }}
{%- endif -%}
{%- for m in messages -%}
{{ m.role | capitalize }}: {{ m.content if m.content is not none else "" }}
{%- for c in m.tool_calls or [] %}{{ "\n" ~ ({"name": c.function.name, "arguments": c.function.arguments} | tojson) }}{% endfor %}
{{- "\n\n" }}
{%- endfor -%}
{%- if add_generation_prompt %}Assistant:{% endif -%}`

// sample is the conversation every template is tried on at load.
var sample = Conversation{Messages: []Message{
	{Role: "system", Content: "You are a helpful assistant."},
	{Role: "user", Content: "Hello."},
	{Role: "assistant", Content: "Hello! How can I help?"},
	{Role: "user", Content: "What is 2 + 2?"},
}, AddGenerationPrompt: true}

// Template is a compiled chat template. Safe for concurrent use.
type Template struct {
	// Name says where the template came from ("gguf" or "plain").
	Name     string
	Source   string
	bos, eos string
	tmpl     *jinja.Template
	limits   Limits
	// now is the time strftime_now formats; nil means the time of the
	// render (tests fix it).
	now func() time.Time
}

// New compiles a Jinja chat template under DefaultLimits; bos and eos are
// the texts of the BOS and EOS tokens, exposed to the template as
// bos_token and eos_token.
func New(name, source, bos, eos string) (*Template, error) {
	return NewLimited(name, source, bos, eos, DefaultLimits)
}

// NewLimited compiles a template that renders under limits, and tries it
// on a sample conversation (a system message, a user message, an
// assistant reply and a user message): a template that runs past the
// limits there is refused, with an error that names the limit. One that
// refuses the sample itself (raise_exception) is accepted.
func NewLimited(name, source, bos, eos string, limits Limits) (*Template, error) {
	if len(source) > MaxSourceBytes {
		return nil, fmt.Errorf("%w %s: %d bytes of source (limit %d)", ErrTemplate, name, len(source), MaxSourceBytes)
	}
	t, err := jinja.Compile(source)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrTemplate, name, err)
	}
	tmpl := &Template{Name: name, Source: source, bos: bos, eos: eos, tmpl: t, limits: limits}
	if _, err := tmpl.render(sample); errors.Is(err, ErrLimit) {
		return nil, fmt.Errorf("%w %s: refused at load: on a sample conversation, %w", ErrTemplate, name, err)
	}
	return tmpl, nil
}

// FromGGUF compiles a file's tokenizer.chat_template, or returns
// ErrNoTemplate.
func FromGGUF(f *gguf.File) (*Template, error) {
	v, ok := f.Get("tokenizer.chat_template")
	src, isStr := v.V.(string)
	if !ok || !isStr || src == "" {
		return nil, ErrNoTemplate
	}
	return New("gguf", src, tokenText(f, "bos"), tokenText(f, "eos"))
}

func tokenText(f *gguf.File, which string) string {
	v, ok := f.Get("tokenizer.ggml." + which + "_token_id")
	if !ok {
		return ""
	}
	id, _ := v.Int()
	toks, _ := f.Get("tokenizer.ggml.tokens")
	if s, ok := toks.V.([]string); ok && id >= 0 && id < int64(len(s)) {
		return s[id]
	}
	return ""
}

// Render formats a conversation as a prompt. Errors wrap ErrTemplate;
// those of a template past its budget wrap ErrLimit too.
func (t *Template) Render(c Conversation) (string, error) {
	out, err := t.render(c)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrTemplate, t.Name, err)
	}
	return out, nil
}

func (t *Template) render(c Conversation) (string, error) {
	data, err := t.data(c)
	if err != nil {
		return "", err
	}
	opts := jinja.Options{Limits: jinja.Limits(t.limits)}
	if t.now != nil {
		opts.Now = t.now()
	}
	return t.tmpl.RenderOptions(data, opts)
}

// data builds the template's variables, in the shapes and key orders
// transformers gives them (its renders are matched byte for byte).
func (t *Template) data(c Conversation) (map[string]jinja.Value, error) {
	if len(c.Messages) == 0 {
		return nil, errors.New("no messages")
	}
	data := make(map[string]jinja.Value, len(c.Vars)+5)
	for name, raw := range c.Vars {
		for _, r := range ReservedVars {
			if name == r {
				return nil, fmt.Errorf("the template variable %q is set by the server and cannot be given", name)
			}
		}
		v, err := jinja.ParseJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("template variable %q: %w", name, err)
		}
		data[name] = v
	}
	msgs := make([]jinja.Value, len(c.Messages))
	for i, m := range c.Messages {
		v, err := messageValue(m)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		msgs[i] = v
	}
	data["messages"] = jinja.NewList(msgs)
	if len(c.Tools) > 0 {
		tools := make([]jinja.Value, len(c.Tools))
		for i, tool := range c.Tools {
			v, err := toolValue(tool)
			if err != nil {
				return nil, fmt.Errorf("tool %d (%s): %w", i, tool.Name, err)
			}
			tools[i] = v
		}
		data["tools"] = jinja.NewList(tools)
	}
	data["add_generation_prompt"] = jinja.NewBool(c.AddGenerationPrompt)
	data["bos_token"] = jinja.NewString(t.bos)
	data["eos_token"] = jinja.NewString(t.eos)
	return data, nil
}

// dict builds a dict with keys in the order given.
func dict(kv ...any) jinja.Value {
	d := jinja.NewDict()
	for i := 0; i < len(kv); i += 2 {
		d.AsDict().Set(kv[i].(string), kv[i+1].(jinja.Value))
	}
	return d
}

func messageValue(m Message) (jinja.Value, error) {
	switch m.Role {
	case "system", "user", "assistant", "tool":
	default:
		return jinja.Value{}, fmt.Errorf("role %q (want system, user, assistant or tool)", m.Role)
	}
	content := jinja.NewString(m.Content)
	if m.NoContent {
		content = jinja.None()
	}
	kv := []any{"role", jinja.NewString(m.Role), "content", content}
	if m.Name != "" {
		kv = append(kv, "name", jinja.NewString(m.Name))
	}
	if len(m.ToolCalls) > 0 {
		calls := make([]jinja.Value, len(m.ToolCalls))
		for i, c := range m.ToolCalls {
			// As transformers templates expect: the arguments an object.
			args, err := jinja.ParseJSON([]byte(c.Arguments))
			if err != nil {
				args = jinja.NewString(c.Arguments)
			}
			calls[i] = dict("id", jinja.NewString(c.ID), "type", jinja.NewString("function"),
				"function", dict("name", jinja.NewString(c.Name), "arguments", args))
		}
		kv = append(kv, "tool_calls", jinja.NewList(calls))
	}
	if m.ToolCallID != "" {
		kv = append(kv, "tool_call_id", jinja.NewString(m.ToolCallID))
	}
	if m.Reasoning != "" {
		kv = append(kv, "reasoning_content", jinja.NewString(m.Reasoning))
	}
	return dict(kv...), nil
}

func toolValue(t Tool) (jinja.Value, error) {
	kv := []any{"name", jinja.NewString(t.Name)}
	if t.Description != "" {
		kv = append(kv, "description", jinja.NewString(t.Description))
	}
	if len(t.Parameters) > 0 {
		p, err := jinja.ParseJSON(t.Parameters)
		if err != nil {
			return jinja.Value{}, fmt.Errorf("parameters: %w", err)
		}
		kv = append(kv, "parameters", p)
	}
	return dict("type", jinja.NewString("function"), "function", dict(kv...)), nil
}

// JoinParts joins a content's text parts as templates see them.
func JoinParts(parts []string) string { return strings.Join(parts, "\n") }
