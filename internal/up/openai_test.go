package up

import (
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-llm/switchyard/internal/demomodel"
)

// TestOpenAISDK drives `up` (on the built-in demo model) with the official
// OpenAI Go SDK: completions and chat completions, streamed and not.
func TestOpenAISDK(t *testing.T) {
	c := start(t, Config{})
	client := openai.NewClient(option.WithBaseURL(c.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx := t.Context()

	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != demomodel.Name {
		t.Fatalf("models: %+v %v", models, err)
	}

	params := openai.CompletionNewParams{
		Model:       demomodel.Name,
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("The list type")},
		MaxTokens:   openai.Int(24),
		Temperature: openai.Float(0),
	}
	comp, err := client.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	// llama.cpp's greedy continuation of this prompt on the same weights
	// (the model card's sample) starts like this.
	const want = " of the type of the type.\n\nNew in version 3.3."
	if !strings.HasPrefix(comp.Choices[0].Text, want) {
		t.Errorf("completion %q, want it to start %q", comp.Choices[0].Text, want)
	}
	if comp.Usage.PromptTokens != 4 || comp.Usage.CompletionTokens != 24 || comp.Choices[0].FinishReason != "length" {
		t.Errorf("usage %+v finish %q", comp.Usage, comp.Choices[0].FinishReason)
	}

	stream := client.Completions.NewStreaming(ctx, params)
	var streamed strings.Builder
	chunks := 0
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			streamed.WriteString(ch.Text)
		}
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if streamed.String() != comp.Choices[0].Text || chunks < 2 {
		t.Errorf("streamed %q in %d chunks, want %q", streamed.String(), chunks, comp.Choices[0].Text)
	}

	chatParams := openai.ChatCompletionNewParams{
		Model:       demomodel.Name,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Answer with Python."), openai.UserMessage("How do I open a file?")},
		MaxTokens:   openai.Int(32),
		Temperature: openai.Float(0),
	}
	chat, err := client.Chat.Completions.New(ctx, chatParams)
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content == "" || chat.Choices[0].Message.Role != "assistant" {
		t.Errorf("chat: %+v", chat.Choices[0].Message)
	}
	cs := client.Chat.Completions.NewStreaming(ctx, chatParams)
	acc := openai.ChatCompletionAccumulator{}
	for cs.Next() {
		acc.AddChunk(cs.Current())
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != chat.Choices[0].Message.Content {
		t.Errorf("streamed chat %q, whole %q", got, chat.Choices[0].Message.Content)
	}

	// Errors come back as the SDK's API errors with OpenAI's shape.
	_, err = client.Completions.New(ctx, openai.CompletionNewParams{Model: "no-such-model", Prompt: params.Prompt})
	var apiErr *openai.Error
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
}

func asAPIError(err error, target **openai.Error) bool {
	return errors.As(err, target)
}
