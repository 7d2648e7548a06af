// Package statsview draws a cluster's routing statistics in a terminal:
// a layers × experts heatmap with a legend, per-layer imbalance and
// entropy, and the node table; and compares where two prompts route.
// Dense layers (no routed experts) are labelled as such.
package statsview

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

// Options for drawing.
type Options struct {
	Color bool // ANSI colours (off when NO_COLOR is set)
	Width int  // terminal columns; 0 means 80
}

// Fetch reads the routing report of a window from a router.
func Fetch(ctx context.Context, base, window string) (*routingstats.Report, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/routing/stats?window="+window, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stats: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var rep routingstats.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("stats: decoding the report: %w", err)
	}
	return &rep, nil
}

// shade levels, by an expert's share relative to a uniform share.
var shades = []struct {
	upTo  float64 // share × experts below this
	char  string
	color int // ANSI 256 background
	label string
}{
	{0, "·", 236, "none"},
	{0.5, "░", 24, "<0.5×"},
	{1, "▒", 30, "<1×"},
	{1.5, "▓", 172, "<1.5×"},
	{1e18, "█", 160, "≥1.5×"},
}

func shadeOf(share float64, experts int) int {
	r := share * float64(experts)
	if r == 0 {
		return 0
	}
	for i := 1; i < len(shades); i++ {
		if r < shades[i].upTo {
			return i
		}
	}
	return len(shades) - 1
}

func cell(o Options, level, width int) string {
	s := strings.Repeat(shades[level].char, width)
	if o.Color {
		return fmt.Sprintf("\x1b[48;5;%dm\x1b[38;5;%dm%s\x1b[0m", shades[level].color, shades[level].color, s)
	}
	return s
}

// Render draws the report.
func Render(w io.Writer, rep *routingstats.Report, o Options) {
	if o.Width == 0 {
		o.Width = 80
	}
	name := "?"
	if rep.Model != nil {
		name = rep.Model.Name
	}
	fmt.Fprintf(w, "switchyard stats · %s · window %s (%.0f s) · %d coordinator(s)\n", name, rep.Window, rep.WindowSeconds, rep.Totals.Coordinators)
	fmt.Fprintf(w, "tokens %d · generated %d (%.1f/s) · steps %d · expert calls %d\n\n", rep.Totals.Tokens, rep.Totals.Generated,
		rep.Totals.TokensPerSecond, rep.Totals.Steps, rep.Totals.ExpertCalls)
	experts := 0
	for _, l := range rep.Layers {
		experts = max(experts, len(l.Experts)) // a dense layer has none
	}
	// Cells are 3 columns wide for small models, 1 for wide ones; more
	// than fits in one row of the terminal is folded into blocks.
	cw := 1
	if experts <= 16 {
		cw = 3
	}
	// 4 columns of layer label and 12 of figures leave 64 for cells.
	perBlock := max(1, min(experts, (o.Width-16)/cw))
	for start := 0; start < experts; start += perBlock {
		end := min(experts, start+perBlock)
		fmt.Fprintf(w, "%-4s", "")
		if cw == 3 {
			for e := start; e < end; e++ {
				fmt.Fprintf(w, "%3d", e)
			}
		} else {
			fmt.Fprintf(w, "%-*s", end-start, fmt.Sprintf("experts %d–%d", start, end-1))
		}
		fmt.Fprintf(w, " %5s %5s\n", "imbal", "bits")
		for _, l := range rep.Layers {
			fmt.Fprintf(w, "L%-3d", l.Layer)
			if l.Dense {
				fmt.Fprintln(w, denseLabel)
				continue
			}
			for _, e := range l.Experts[start:end] {
				fmt.Fprint(w, cell(o, shadeOf(e.Share, experts), cw))
			}
			fmt.Fprintf(w, " %5.2f %5.2f\n", l.Imbalance, l.Entropy)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "imbal: busiest expert over the mean load; bits: routing entropy")
	fmt.Fprint(w, "share of a layer's routing vs uniform:")
	for i, s := range shades {
		fmt.Fprintf(w, " %s %s", cell(o, i, 1), s.label)
	}
	fmt.Fprintln(w)
	if len(rep.TopPairs) > 0 {
		fmt.Fprint(w, "top pairs:")
		for _, p := range rep.TopPairs[:min(4, len(rep.TopPairs))] {
			fmt.Fprintf(w, " L%d(%d,%d)×%d", p.Layer, p.Experts[0], p.Experts[1], p.Tokens)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n%-10s %-21s %5s %-7s %7s %7s %7s %6s\n", "node", "address", "units", "health", "calls", "p50 ms", "p99 ms", "errors")
	for _, n := range rep.Nodes {
		fmt.Fprintf(w, "%-10s %-21s %5d %-7s %7d %7.2f %7.2f %6d\n", trunc(n.ID, 10), trunc(n.Address, 21), n.Units, n.Health,
			n.Calls, n.LatencyP50, n.LatencyP99, n.Errors)
	}
	if rep.Placement != nil {
		fmt.Fprintf(w, "placement epoch %d, %d units\n", rep.Placement.Epoch, len(rep.Placement.Units))
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// Watch redraws the report every interval until ctx ends.
func Watch(ctx context.Context, w io.Writer, base, window string, o Options, interval time.Duration) error {
	for {
		rep, err := Fetch(ctx, base, window)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		buf.WriteString("\x1b[H\x1b[2J")
		Render(&buf, rep, o)
		w.Write(buf.Bytes())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// denseLabel marks a dense layer's row.
const denseLabel = "dense: no routed experts"

// Routing is where one prompt's tokens went: per layer, per expert, the
// number of prompt positions routed to it.
type Routing struct {
	Prompt string
	Tokens int
	Counts [][]int // [layer][expert]; nil for a dense layer
}

// Route sends prompt to the router and counts the experts its positions
// were routed to, in the layers rep reports as routed. rep.Model must be
// set.
func Route(ctx context.Context, base, prompt string, rep *routingstats.Report) (*Routing, error) {
	body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": 1, "temperature": 0, "return_routing": true})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("compare %q: %s: %s", prompt, resp.Status, strings.TrimSpace(string(raw)))
	}
	var out struct {
		Choices []struct {
			Routing struct {
				Prompt [][][]int `json:"prompt"`
			} `json:"routing"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 {
		return nil, fmt.Errorf("compare: decoding the answer: %v", err)
	}
	r := &Routing{Prompt: prompt, Counts: make([][]int, rep.Model.Layers)}
	for l := range r.Counts {
		r.Counts[l] = make([]int, rep.Model.Experts)
	}
	for _, lr := range rep.Layers {
		if lr.Dense && lr.Layer < len(r.Counts) {
			r.Counts[lr.Layer] = nil
		}
	}
	for _, pos := range out.Choices[0].Routing.Prompt {
		r.Tokens++
		for l, chosen := range pos {
			for _, e := range chosen {
				if l < len(r.Counts) && e >= 0 && e < len(r.Counts[l]) {
					r.Counts[l][e]++
				}
			}
		}
	}
	return r, nil
}

// top returns the experts of a layer ordered by count, with their shares.
func top(counts []int, n int) []string {
	idx := make([]int, len(counts))
	total := 0
	for i, c := range counts {
		idx[i] = i
		total += c
	}
	slices.SortStableFunc(idx, func(a, b int) int { return counts[b] - counts[a] })
	var out []string
	for _, e := range idx[:min(n, len(idx))] {
		if counts[e] == 0 || total == 0 {
			break
		}
		out = append(out, fmt.Sprintf("e%d %2.0f%%", e, 100*float64(counts[e])/float64(total)))
	}
	return out
}

// Compare prints, per layer, the experts each prompt's tokens preferred,
// marking layers whose favourite experts differ.
func Compare(w io.Writer, a, b *Routing) {
	fmt.Fprintf(w, "A: %q (%d tokens)\nB: %q (%d tokens)\n\n", a.Prompt, a.Tokens, b.Prompt, b.Tokens)
	fmt.Fprintf(w, "%-6s %-28s %-28s %s\n", "layer", "A prefers", "B prefers", "")
	for l := range a.Counts {
		if a.Counts[l] == nil {
			fmt.Fprintf(w, "L%-5d %s\n", l, denseLabel)
			continue
		}
		ta, tb := top(a.Counts[l], 3), top(b.Counts[l], 3)
		mark := ""
		if len(ta) > 0 && len(tb) > 0 && strings.Fields(ta[0])[0] != strings.Fields(tb[0])[0] {
			mark = "← different top expert"
		}
		fmt.Fprintf(w, "L%-5d %-28s %-28s %s\n", l, strings.Join(ta, "  "), strings.Join(tb, "  "), mark)
	}
}
