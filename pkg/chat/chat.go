// Package chat renders a conversation into a prompt with the model's own
// chat template (tokenizer.chat_template, Jinja), as llama.cpp and vLLM do,
// and reads the model's reply back into typed parts (text, reasoning, tool
// calls) in the syntax of the template's family (Parser). It holds no
// per-model templates, only Plain for files that have none; it knows
// nothing of requests, sampling or the API a reply is shaped into.
package chat

import (
	"errors"
	"fmt"

	"github.com/ardanlabs/jinja"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

// ErrNoTemplate is returned when a model file carries no chat template.
var ErrNoTemplate = errors.New("chat: the model has no chat template (tokenizer.chat_template)")

// ErrTemplate wraps errors of compiling or rendering a template.
var ErrTemplate = errors.New("chat: template")

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"` // system, user or assistant
	Content string `json:"content"`
}

// Plain is the documented fallback for models without a template:
// role-prefixed turns separated by blank lines, ending with "Assistant:"
// when a reply is wanted.
//
//	System: …
//
//	User: …
//
//	Assistant:
const Plain = `{%- for m in messages -%}
{{ m.role | capitalize }}: {{ m.content }}

{% endfor -%}
{%- if add_generation_prompt %}Assistant:{% endif -%}`

// Template is a compiled chat template. Safe for concurrent use.
type Template struct {
	// Name says where the template came from ("gguf" or "plain").
	Name     string
	Source   string
	bos, eos string
	tmpl     *jinja.Template
}

// New compiles a Jinja chat template; bos and eos are the texts of the
// BOS and EOS tokens, exposed to the template as bos_token and eos_token.
func New(name, source, bos, eos string) (*Template, error) {
	t, err := jinja.Compile(source)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrTemplate, name, err)
	}
	return &Template{Name: name, Source: source, bos: bos, eos: eos, tmpl: t}, nil
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

// Render formats messages as a prompt; addGenerationPrompt appends the
// opening of the assistant's reply.
func (t *Template) Render(messages []Message, addGenerationPrompt bool) (string, error) {
	if len(messages) == 0 {
		return "", fmt.Errorf("%w: no messages", ErrTemplate)
	}
	msgs := make([]any, len(messages))
	for i, m := range messages {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return "", fmt.Errorf("%w: message %d has role %q (want system, user or assistant)", ErrTemplate, i, m.Role)
		}
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	out, err := t.tmpl.Render(map[string]any{
		"messages":              msgs,
		"add_generation_prompt": addGenerationPrompt,
		"bos_token":             t.bos,
		"eos_token":             t.eos,
	})
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrTemplate, t.Name, err)
	}
	return out, nil
}
