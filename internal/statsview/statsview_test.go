package statsview

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

func report(layers, experts int) *routingstats.Report {
	c := routingstats.NewCounts(layers, experts)
	for l := range layers {
		c.Tokens[l] = 100
		c.ExpertTokens[l][l%experts] = 100 // one hot expert per layer
		c.ExpertTokens[l][(l+1)%experts] = 100
	}
	rep := routingstats.Build(c, "1m", 60)
	rep.Nodes = []routingstats.NodeReport{{ID: "node-with-a-long-name", Address: "127.0.0.1:12345", Units: 4, Health: "ready", Calls: 10}}
	return &rep
}

func TestRenderFits80Columns(t *testing.T) {
	for _, experts := range []int{8, 64, 128} {
		var buf bytes.Buffer
		Render(&buf, report(4, experts), Options{})
		out := buf.String()
		for _, line := range strings.Split(out, "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("%d experts: line of %d columns: %q", experts, n, line)
			}
		}
		if strings.Contains(out, "\x1b[") {
			t.Errorf("%d experts: colour codes without Color", experts)
		}
		// Hot cells are drawn with the darkest shade, cold ones with a dot.
		if !strings.Contains(out, "█") || !strings.Contains(out, "·") || !strings.Contains(out, "≥1.5×") {
			t.Errorf("%d experts: no shading or legend:\n%s", experts, out)
		}
		blocks := strings.Count(out, " imbal ")
		if want := (experts + 63) / 64; blocks != want {
			t.Errorf("%d experts: %d blocks, want %d", experts, blocks, want)
		}
	}
	var buf bytes.Buffer
	Render(&buf, report(2, 8), Options{Color: true})
	if !strings.Contains(buf.String(), "\x1b[48;5;") {
		t.Error("Color set but no colour codes")
	}
}

func TestCompareMarksDifferentExperts(t *testing.T) {
	a := &Routing{Prompt: "def f(x):", Tokens: 3, Counts: [][]int{{3, 3, 0}, {6, 0, 0}}}
	b := &Routing{Prompt: "The list", Tokens: 3, Counts: [][]int{{3, 3, 0}, {0, 0, 6}}}
	var buf bytes.Buffer
	Compare(&buf, a, b)
	lines := strings.Split(buf.String(), "\n")
	var l0, l1 string
	for _, ln := range lines {
		if strings.HasPrefix(ln, "L0") {
			l0 = ln
		}
		if strings.HasPrefix(ln, "L1") {
			l1 = ln
		}
	}
	if strings.Contains(l0, "different") || !strings.Contains(l1, "different") || !strings.Contains(l1, "e0 100%") || !strings.Contains(l1, "e2 100%") {
		t.Errorf("compare output:\n%s", buf.String())
	}
}
