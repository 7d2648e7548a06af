package modeltool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/tokenizer"
)

// TokenizeConfig is one text to tokenize.
type TokenizeConfig struct {
	Path string // GGUF file: a model or a vocabulary alone
	Text string
	// ParseSpecial matches control tokens written in the text (false:
	// their text is tokenized like any other, as llama.cpp's tokenizer
	// tests do; user-defined tokens are matched either way).
	ParseSpecial bool
	// NoBOS adds no BOS or EOS even where the vocabulary asks for them.
	NoBOS bool
}

// Tokenize prints the tokens of a text as JSON {"tokens":[...]}. It reads
// the tokenizer.ggml.* metadata only, so a vocabulary-only file will do.
func Tokenize(c TokenizeConfig, out io.Writer) error {
	f, err := gguf.Open(c.Path, gguf.Options{Mmap: true})
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	defer f.Close()
	tk, err := tokenizer.FromGGUF(f)
	if err != nil {
		return fmt.Errorf("tokenize %s: %w", c.Path, err)
	}
	ids := tk.Encode(c.Text, !c.NoBOS, c.ParseSpecial)
	if ids == nil {
		ids = []int32{}
	}
	return json.NewEncoder(out).Encode(struct {
		Tokens []int32 `json:"tokens"`
	}{ids})
}

// GenerateConfig is a text-in, text-out generation in one process.
type GenerateConfig struct {
	Path      string
	Prompt    string
	Chat      bool // render Prompt as one user turn with the file's chat template
	Params    sampling.Params
	MaxTokens int
	Stop      []string
}

// Generate streams the continuation of a text prompt to out as it is
// produced, stopping at end-of-sequence, a stop string or MaxTokens.
func Generate(ctx context.Context, c GenerateConfig, out io.Writer) error {
	if c.MaxTokens < 0 {
		return fmt.Errorf("run: --max-tokens %d is negative", c.MaxTokens)
	}
	f, m, err := loadModel(c.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	tk, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		return err
	}
	text := c.Prompt
	if c.Chat {
		tmpl, err := chat.FromGGUF(f.File)
		if err != nil {
			return err
		}
		if text, err = tmpl.Render(chat.Conversation{Messages: []chat.Message{{Role: "user", Content: c.Prompt}}, AddGenerationPrompt: true}); err != nil {
			return err
		}
	}
	prompt := tk.Encode(text, true, c.Chat)
	if len(prompt) == 0 {
		return errors.New("run: the prompt is empty")
	}
	s, err := sampling.New(c.Params, m.Vocab)
	if err != nil {
		return err
	}
	for _, t := range prompt {
		s.Accept(t)
	}
	seq := m.NewSequence()
	seq.Reserve(min(len(prompt)+c.MaxTokens, m.Context))
	dec := tk.NewDecoder()
	stop := sampling.NewStopper(c.Stop)
	next := prompt
	for range c.MaxTokens {
		res, err := m.Forward(ctx, []model.Chunk{{Seq: seq, Tokens: next}})
		if err != nil {
			return err
		}
		r := s.Sample(res[0])
		if r.Token == tk.EOS || seq.Len() >= m.Context {
			break
		}
		s.Accept(r.Token)
		emit, stopped := stop.Push(dec.Next(r.Token))
		if _, err := io.WriteString(out, emit); err != nil {
			return err
		}
		if stopped {
			return nil
		}
		next = []int32{r.Token}
	}
	emit, _ := stop.Push(dec.Flush())
	_, err = io.WriteString(out, emit+stop.Flush())
	return err
}
