package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"math/rand/v2"

	"github.com/switchyard-llm/switchyard/internal/modeltool"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	"github.com/switchyard-llm/switchyard/pkg/synth"
)

func modelCommands() []command {
	return []command{
		{"synth", "--arch A --preset P --dtype T -o FILE", "write a deterministic random-weight model", modelSynth, nil},
		{"inspect", "FILE [--json] [--tensor NAME --row I]", "describe a model file: hyperparameters, tensors, parameter census", modelInspect, nil},
		{"split", "--parts N IN OUT-PREFIX", "write a model as N parts (<prefix>-00001-of-0000N.gguf, …) as llama.cpp's gguf-split does", modelSplit, nil},
		{"tokenize", "--model FILE --text TEXT", "print the tokens of a text as JSON", modelTokenize, nil},
		{"logits", "--model FILE --tokens IDS", "print the logits at every prompt position as JSON", modelLogits, nil},
		{"run", "--model FILE (--prompt TEXT | --tokens IDS) [flags]", "continue a prompt: --prompt streams text, --tokens prints greedy token IDs as JSON", modelRun, nil},
		{"chat-template", "--model FILE --request REQ.json", "print the exact prompt an OpenAI chat request renders to with the model's chat template", modelChatTemplate, nil},
	}
}

func modelChatTemplate(ctx context.Context, args []string) error {
	fs := newFlags("model chat-template")
	var c modeltool.ChatTemplateConfig
	fs.StringVar(&c.Path, "model", "", "GGUF model file")
	req := fs.String("request", "", `chat completions request body (JSON); "-" reads it from stdin`)
	tmpl := fs.String("chat-template", "", `chat template for a model file without one: "plain" or a Jinja file`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if c.Path == "" || *req == "" {
		return errors.New("--model and --request are required")
	}
	var err error
	if *req == "-" {
		c.Request, err = io.ReadAll(os.Stdin)
	} else {
		c.Request, err = os.ReadFile(*req)
	}
	if err != nil {
		return fmt.Errorf("--request: %w", err)
	}
	if c.Fallback, err = loadTemplate(*tmpl); err != nil {
		return err
	}
	return modeltool.ChatTemplate(c, os.Stdout)
}

func modelSynth(ctx context.Context, args []string) error {
	fs := newFlags("model synth")
	var c synth.Config
	fs.StringVar(&c.Arch, "arch", "mixtral", "architecture: mixtral, qwen2moe, qwen3moe, olmoe, deepseek2 (DeepSeek-V3 style: MLA, grouped sigmoid routing, a shared expert) or gpt-oss (attention sinks, a sliding window on every other layer, biased router, SwiGLU-OAI experts)")
	fs.StringVar(&c.Preset, "preset", "tiny", "size: tiny (~2 MB in f32), small (tens of MB), medium (~650M parameters; ~1.03B for deepseek2, ~0.70B for gpt-oss), or full (deepseek2 only: DeepSeek-V3's own shapes, 671B parameters; use --header-only)")
	dtype := fs.String("dtype", "f32", "weight type: f32, f16, q8_0, q4_k, q5_k; q4_k_m or q5_k_m (Q6_K for the head and, in some layers, attn_v and ffn_down, as llama.cpp's _M types); mxfp4 (the routed experts MXFP4, the other matrices Q8_0, as llama.cpp's MXFP4_MOE)")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed")
	fs.BoolVar(&c.HeaderOnly, "header-only", false, "write the header only: every tensor declared with its type and shape, no data (for placement plan)")
	out := fs.String("o", "", "output file")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	t, mix, err := synth.ParseFileType(*dtype)
	if err != nil {
		return err
	}
	c.DType, c.Mix = t, mix
	var progress io.Writer // a progress bar on a terminal, not in logs and pipes
	if isTerminal(os.Stderr) {
		progress = os.Stderr
	}
	return modeltool.Synth(ctx, c, *out, progress)
}

func modelInspect(ctx context.Context, args []string) error {
	fs := newFlags("model inspect")
	var c modeltool.InspectConfig
	fs.BoolVar(&c.JSON, "json", false, "print JSON")
	fs.StringVar(&c.Tensor, "tensor", "", "print one row of this tensor")
	fs.IntVar(&c.Row, "row", 0, "the row to print with --tensor")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: switchyard model inspect FILE [--json] [--tensor NAME --row I]")
	}
	c.Path = pos[0]
	return modeltool.Inspect(c, os.Stdout)
}

func modelSplit(ctx context.Context, args []string) error {
	fs := newFlags("model split")
	parts := fs.Int("parts", 2, "number of parts; the tensors are shared out in order, balancing bytes")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("usage: switchyard model split --parts N IN OUT-PREFIX")
	}
	return modeltool.Split(ctx, pos[0], pos[1], *parts, os.Stdout)
}

func modelFlags(name string) (*flag.FlagSet, *string, *string) {
	fs := newFlags(name)
	return fs, fs.String("model", "", "GGUF model file"), fs.String("tokens", "", "prompt as comma-separated token IDs")
}

func modelLogits(ctx context.Context, args []string) error {
	fs, path, toks := modelFlags("model logits")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	tokens, err := parseTokens(*toks)
	if err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("--model is required")
	}
	return modeltool.Logits(ctx, *path, tokens, os.Stdout)
}

func modelTokenize(ctx context.Context, args []string) error {
	fs := newFlags("model tokenize")
	var c modeltool.TokenizeConfig
	fs.StringVar(&c.Path, "model", "", "GGUF file: a model, or a vocabulary alone")
	fs.StringVar(&c.Text, "text", "", "text to tokenize")
	fs.BoolVar(&c.ParseSpecial, "special", false, "match control tokens written in the text (<|im_start|>, …) instead of tokenizing their text")
	fs.BoolVar(&c.NoBOS, "no-bos", false, "add no BOS or EOS, even where the vocabulary asks for them")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if c.Path == "" {
		return fmt.Errorf("--model is required")
	}
	return modeltool.Tokenize(c, os.Stdout)
}

func modelRun(ctx context.Context, args []string) error {
	fs, path, toks := modelFlags("model run")
	maxTokens := fs.Int("max-tokens", 16, "most tokens to generate")
	prompt := fs.String("prompt", "", "prompt text (streams the generated text)")
	chatMode := fs.Bool("chat", false, "render --prompt as a user turn with the model's chat template")
	p := sampling.Defaults()
	temp := fs.Float64("temperature", 0.8, "sampling temperature; 0 is greedy")
	topP := fs.Float64("top-p", 0.95, "nucleus sampling threshold in (0, 1]")
	minP := fs.Float64("min-p", 0.05, "drop tokens below this fraction of the best one's probability")
	fs.IntVar(&p.TopK, "top-k", 40, "keep the k most likely tokens; 0 is off")
	seed := fs.Int64("seed", -1, "random seed; -1 picks one")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("--model is required")
	}
	if *prompt != "" {
		if *toks != "" {
			return fmt.Errorf("give --prompt or --tokens, not both")
		}
		p.Temperature, p.TopP, p.MinP = float32(*temp), float32(*topP), float32(*minP)
		p.Seed = uint64(*seed)
		if *seed < 0 {
			p.Seed = rand.Uint64()
		}
		err := modeltool.Generate(ctx, modeltool.GenerateConfig{Path: *path, Prompt: *prompt, Chat: *chatMode, Params: p, MaxTokens: *maxTokens}, os.Stdout)
		fmt.Println()
		return err
	}
	tokens, err := parseTokens(*toks)
	if err != nil {
		return err
	}
	return modeltool.Run(ctx, *path, tokens, *maxTokens, os.Stdout)
}
