package chat

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
)

var conversation = []Message{
	{"user", "What is an expert?"},
	{"assistant", "A feed-forward network."},
	{"user", "And a router?"},
}

func TestRealTemplates(t *testing.T) {
	cases := []struct {
		name     string
		bos, eos string
		msgs     []Message
	}{
		{"chatml", "", "<|im_end|>", conversation},
		{"mistral", "<s>", "</s>", conversation},
		{"plain", "", "", append([]Message{{"system", "Be brief."}}, conversation...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := Plain
			if c.name != "plain" {
				b, err := os.ReadFile("../../testdata/chat/" + c.name + ".jinja")
				if err != nil {
					t.Fatal(err)
				}
				src = string(b)
			}
			want, err := os.ReadFile("../../testdata/chat/" + c.name + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := New(c.name, src, c.bos, c.eos)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Render(c.msgs, true)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestGenerationPrompt(t *testing.T) {
	b, _ := os.ReadFile("../../testdata/chat/chatml.jinja")
	tmpl, err := New("chatml", string(b), "", "")
	if err != nil {
		t.Fatal(err)
	}
	with, _ := tmpl.Render(conversation[:1], true)
	without, _ := tmpl.Render(conversation[:1], false)
	if !strings.HasSuffix(with, "<|im_start|>assistant\n") || strings.HasSuffix(without, "<|im_start|>assistant\n") {
		t.Errorf("add_generation_prompt not honoured: %q / %q", with, without)
	}
}

func TestErrors(t *testing.T) {
	b, _ := os.ReadFile("../../testdata/chat/mistral.jinja")
	mistral, err := New("mistral", string(b), "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mistral.Render([]Message{{"user", "a"}, {"user", "b"}}, true); err == nil || !strings.Contains(err.Error(), "must alternate") {
		t.Errorf("raise_exception: got %v", err)
	}
	if _, err := mistral.Render([]Message{{"tool", "x"}}, true); err == nil || !strings.Contains(err.Error(), `role "tool"`) {
		t.Errorf("unknown role: got %v", err)
	}
	if _, err := mistral.Render(nil, true); err == nil {
		t.Error("no messages: got nil error")
	}
	if _, err := New("broken", "{% for x in %}", "", ""); !errors.Is(err, ErrTemplate) {
		t.Errorf("broken template: got %v", err)
	}
	f, err := gguf.Open("../../testdata/models/tiny-mixtral-f32.gguf", gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := FromGGUF(f); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("file without template: got %v, want ErrNoTemplate", err)
	}
}
