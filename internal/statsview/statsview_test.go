package statsview

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
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

// deepseek2 layout: layer 0 has a dense FFN, layers 1 and 2 route.
func denseReport() *routingstats.Report {
	c := routingstats.NewCounts(3, 8)
	c.MoELayers = []int{1, 2}
	for l := 1; l < 3; l++ {
		c.Tokens[l] = 100
		c.ExpertTokens[l][l] = 100
	}
	rep := routingstats.Build(c, "1m", 60)
	rep.Model = &routingstats.ModelSummary{Name: "tiny-deepseek2", Layers: 3, Experts: 8, ExpertsUsed: 1}
	return &rep
}

func TestRenderDenseLayer(t *testing.T) {
	var buf bytes.Buffer
	Render(&buf, denseReport(), Options{})
	out := buf.String()
	rows := map[string]string{}
	for _, ln := range strings.Split(out, "\n") {
		if len(ln) > 2 && ln[0] == 'L' {
			rows[ln[:2]] = ln
		}
	}
	if l0 := rows["L0"]; !strings.Contains(l0, "dense") || strings.ContainsAny(l0, "·░▒▓█") {
		t.Errorf("dense layer 0 drawn as %q, want a dense label and no cells", l0)
	}
	// The heatmap is as wide as the routed layers: 8 cells each.
	if l1 := rows["L1"]; strings.Count(l1, "█") != 3 || strings.Count(l1, "·") != 3*7 {
		t.Errorf("layer 1 drawn as %q, want 1 hot cell and 7 empty ones, 3 columns each", l1)
	}
}

func TestRouteAndCompareSkipDenseLayers(t *testing.T) {
	// Two prompt positions, k = 1; pkg/model reports a choice for the
	// dense layer 0 too, which must not be counted.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/completions" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"choices":[{"routing":{"prompt":[[[0],[3],[5]],[[0],[3],[6]]]}}]}`)
	}))
	defer srv.Close()
	a, err := Route(t.Context(), srv.URL, "def f(x):", denseReport())
	if err != nil {
		t.Fatal(err)
	}
	if a.Tokens != 2 || a.Counts[0] != nil || a.Counts[1][3] != 2 || a.Counts[2][5] != 1 || a.Counts[2][6] != 1 {
		t.Fatalf("routing %+v: want 2 tokens, no counts for layer 0, 2 on L1 e3, 1 each on L2 e5 and e6", a)
	}
	var buf bytes.Buffer
	Compare(&buf, a, a)
	for _, ln := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(ln, "L0") && (!strings.Contains(ln, "dense") || strings.Contains(ln, "e0")) {
			t.Errorf("dense layer 0 compared as %q", ln)
		}
	}
}
