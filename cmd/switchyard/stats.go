package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/switchyard-llm/switchyard/internal/statsview"
)

func runStats(ctx context.Context, args []string) error {
	fs := newFlags("stats")
	url := fs.String("url", "http://127.0.0.1:8080", "router base URL")
	window := fs.String("window", "1m", "1m, 5m or all")
	watch := fs.Bool("watch", false, "redraw every 2 s until interrupted")
	compare := fs.Bool("compare", false, `compare where two prompts route: switchyard stats --compare "def f(x):" "The list type is"`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	// NO_COLOR (no-color.org) and non-terminal output turn colour off.
	o := statsview.Options{Color: os.Getenv("NO_COLOR") == "" && isTerminal(os.Stdout)}
	if *compare {
		if len(pos) != 2 {
			return errors.New(`usage: switchyard stats --compare "PROMPT A" "PROMPT B"`)
		}
		rep, err := statsview.Fetch(ctx, *url, *window)
		if err != nil {
			return err
		}
		if rep.Model == nil {
			return errors.New("stats: the router reports no model yet")
		}
		a, err := statsview.Route(ctx, *url, pos[0], rep)
		if err != nil {
			return err
		}
		b, err := statsview.Route(ctx, *url, pos[1], rep)
		if err != nil {
			return err
		}
		statsview.Compare(os.Stdout, a, b)
		return nil
	}
	if len(pos) != 0 {
		return errors.New("stats takes no arguments (did you mean --compare?)")
	}
	if *watch {
		return statsview.Watch(ctx, os.Stdout, *url, *window, o, 2*time.Second)
	}
	rep, err := statsview.Fetch(ctx, *url, *window)
	if err != nil {
		return err
	}
	statsview.Render(os.Stdout, rep, o)
	return nil
}
