package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-llm/switchyard/internal/modeltool"
	"github.com/switchyard-llm/switchyard/pkg/synth"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

func runModel(ctx context.Context, args []string) error {
	return dispatch(ctx, []command{
		{"synth", "write a deterministic random-weight model", modelSynth},
		{"inspect", "describe a model file: hyperparameters, tensors, parameter census", modelInspect},
		{"logits", "print the logits at every prompt position as JSON", modelLogits},
		{"run", "greedy continuation of a prompt, as JSON token IDs", modelRun},
	}, args)
}

func modelSynth(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("model synth", flag.ContinueOnError)
	var c synth.Config
	fs.StringVar(&c.Arch, "arch", "mixtral", "architecture: mixtral, qwen2moe, qwen3moe or olmoe")
	fs.StringVar(&c.Preset, "preset", "tiny", "size: tiny (<2 MB), small (tens of MB) or medium (~650M parameters)")
	dtype := fs.String("dtype", "f32", "weight type: f32, f16, q8_0 or q4_k")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed")
	out := fs.String("o", "", "output file")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	t, err := tensor.ParseDType(*dtype)
	if err != nil {
		return err
	}
	c.DType = t
	return modeltool.Synth(ctx, c, *out, os.Stderr)
}

func modelInspect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("model inspect", flag.ContinueOnError)
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

func modelFlags(name string) (*flag.FlagSet, *string, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
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

func modelRun(ctx context.Context, args []string) error {
	fs, path, toks := modelFlags("model run")
	maxTokens := fs.Int("max-tokens", 16, "most tokens to generate")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("--model is required")
	}
	tokens, err := parseTokens(*toks)
	if err != nil {
		return err
	}
	return modeltool.Run(ctx, *path, tokens, *maxTokens, os.Stdout)
}
