package modeltool

import (
	"errors"
	"fmt"
	"io"

	"github.com/switchyard-llm/switchyard/coordinator"
	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/router"
)

// ChatTemplateConfig is a chat request to render.
type ChatTemplateConfig struct {
	Path string // GGUF model file
	// Request is an OpenAI chat completions request body.
	Request []byte
	// Fallback renders for a file without a chat template (as the
	// coordinator's --chat-template); nil means such a file is an error.
	Fallback *chat.Template
}

// ChatTemplate prints the prompt a chat request renders to with the file's
// chat template, exactly (no newline added), through the code a cluster
// runs: the router's reading of the request, the coordinator's
// conversation and the budgeted template. A request the server would
// refuse is an error saying why; tools and response_format, which the API
// does not serve yet, are rendered all the same.
func ChatTemplate(c ChatTemplateConfig, out io.Writer) error {
	f, err := Open(c.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	tmpl, err := chat.FromGGUF(f.File)
	switch {
	case errors.Is(err, chat.ErrNoTemplate) && c.Fallback != nil:
		tmpl = c.Fallback
	case errors.Is(err, chat.ErrNoTemplate):
		return fmt.Errorf("chat-template: %s has no chat template; give --chat-template plain or a Jinja file", c.Path)
	case err != nil:
		return fmt.Errorf("chat-template: %w", err)
	}
	g, err := router.ParseChat(c.Request, placement.ModelInfo{Vocab: f.Hyper.Vocab, Context: f.Hyper.Context})
	if err != nil {
		return fmt.Errorf("chat-template: the request: %w", err)
	}
	conv, err := coordinator.Conversation(g)
	if err != nil {
		return fmt.Errorf("chat-template: the request: %w", err)
	}
	text, err := tmpl.Render(conv)
	if err != nil {
		return fmt.Errorf("chat-template: %w", err)
	}
	_, err = io.WriteString(out, text)
	return err
}
