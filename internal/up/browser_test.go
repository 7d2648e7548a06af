package up

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/internal/statsview"
)

// chromiumPath finds Debian's Chromium; ok is false when it is missing.
func chromiumPath() (string, bool) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// chromium finds Debian's Chromium. CI installs it (.ci/run); elsewhere
// the browser tests say why they cannot run.
func chromium(t *testing.T) string {
	t.Helper()
	if p, ok := chromiumPath(); ok {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/run installs Debian's chromium package)")
	}
	t.Skip("chromium is not installed: apt-get install chromium (CI installs it)")
	return ""
}

func headless(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=8000"}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return string(out)
}

// artifacts is where screenshots are kept: $ARTIFACTS_DIR (set by CI) or
// a temporary directory.
func artifacts(t *testing.T) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// element returns the first element with the id, from its start tag to
// the end of its closing tag (tag names do not nest in what is asked).
func element(t *testing.T, dom, tag, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<` + tag + ` [^>]*id="` + id + `".*?</` + tag + `>`).FindString(dom)
	if m == "" {
		t.Fatalf("no <%s id=%q> in the page", tag, id)
	}
	return m
}

// rgb parses "rgb(r, g, b)".
func rgb(s string) [3]float64 {
	var c [3]float64
	fmt.Sscanf(s, "rgb(%g, %g, %g)", &c[0], &c[1], &c[2])
	return c
}

// contrast is the WCAG 2 contrast ratio of two colours, computed here
// from the definition rather than trusted from the page.
func contrast(a, b [3]float64) float64 {
	lum := func(c [3]float64) float64 {
		var l [3]float64
		for i, v := range c {
			v /= 255
			if v <= 0.03928 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	x, y := lum(a), lum(b)
	return (max(x, y) + 0.05) / (min(x, y) + 0.05)
}

var spaces = regexp.MustCompile(`\s+`)

// TestDashboardInBrowser loads /dashboard from a live cluster in headless
// Chromium and checks each part against the cluster: an idle notice with
// the other windows before traffic; then heatmap cells in % with readable
// ink and a tooltip; a time series with axes and units; an aligned
// placement grid marking replicas; the code-vs-prose comparison equal to
// `switchyard stats --compare`; a layout that fits 1024 px. It keeps
// screenshots.
func TestDashboardInBrowser(t *testing.T) {
	bin := chromium(t)
	c := start(t, Config{Replicas: 2})
	dir := artifacts(t)

	idle := headless(t, bin, "--window-size=1400,1100", "--dump-dom", c.URL+"/dashboard")
	if !strings.Contains(idle, `data-ready="true"`) {
		t.Fatalf("the page never received data:\n%.2000s", idle)
	}
	notice := element(t, idle, "section", "idle")
	if !strings.Contains(notice, `class="wide show"`) || !strings.Contains(notice, "No traffic in the last minute.") ||
		!strings.Contains(notice, `data-window="5m"`) || !strings.Contains(notice, `data-window="all"`) {
		t.Errorf("an idle cluster's page lacks the notice offering other windows:\n%s", notice)
	}
	if strings.Contains(idle, `class="cell"`) {
		t.Error("an idle cluster's heatmap is a grid of zeros, want a note")
	}
	headless(t, bin, "--window-size=1400,1100", "--screenshot="+filepath.Join(dir, "dashboard-idle.png"), c.URL+"/dashboard")

	// A long prompt twice: the second finds its blocks in the prefix cache.
	long := strings.Repeat("The list type is a mutable sequence. ", 12)
	for _, p := range []string{"The list type", "def f(x):", "To open a file", long, long} {
		complete(t, c, map[string]any{"prompt": p, "max_tokens": 16})
	}
	dom := headless(t, bin, "--window-size=1400,1100", "--dump-dom", c.URL+"/dashboard#compare")
	if !strings.Contains(dom, `data-ready="true"`) {
		t.Fatalf("the page never received data:\n%.2000s", dom)
	}
	if strings.Contains(element(t, dom, "section", "idle"), "show") {
		t.Error("the idle notice shows with traffic in the window")
	}
	for _, want := range []string{"node-1", "node-3", "9,100,992", "3,792,576", "placement epoch"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// Heatmap: a cell per (layer, expert), in %, readable, with a tooltip.
	cells := regexp.MustCompile(`<div class="cell" data-layer="\d+" data-expert="\d+" title="([^"]*)" style="background: (rgb\([^)]*\)); color: (rgb\([^)]*\));">(\d+)%</div>`).FindAllStringSubmatch(dom, -1)
	if len(cells) != 4*8 {
		t.Errorf("heatmap has %d cells showing a %%, want 32 (4 layers × 8 experts)", len(cells))
	}
	for _, m := range cells {
		if r := contrast(rgb(m[2]), rgb(m[3])); r < 4.5 {
			t.Errorf("cell ink %s on %s has contrast %.2f, want ≥ 4.5 (WCAG AA)", m[3], m[2], r)
		}
		if !strings.Contains(m[1], "% of the layer's routing slots") || !strings.Contains(m[1], " token") || !strings.Contains(m[1], "gate mass ") {
			t.Errorf("cell tooltip %q lacks its share, tokens or gate mass", m[1])
		}
	}

	// Time series: y ticks, x ticks from 5 minutes ago to now, a unit.
	svg := element(t, dom, "svg", "tps")
	for _, want := range []string{`class="unit"`, "tokens/s", ">now<", ">−5 min<", "<path"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the tokens/s chart lacks %q", want)
		}
	}
	if n := strings.Count(svg, `class="ytick"`); n != 3 {
		t.Errorf("the tokens/s chart has %d y-axis labels, want 3", n)
	}

	// Placement grid: a header cell over every column; every unit has 2
	// replicas here, each marked.
	grid := element(t, dom, "table", "units")
	rows := regexp.MustCompile(`(?s)<tr>(.*?)</tr>`).FindAllStringSubmatch(grid, -1)
	if len(rows) != 5 {
		t.Fatalf("placement grid has %d rows, want a header and 4 layers", len(rows))
	}
	if n := strings.Count(rows[0][1], "<th"); n != 9 {
		t.Errorf("placement grid header has %d cells, want 9", n)
	}
	for _, r := range rows[1:] {
		if n := strings.Count(r[1], "<td"); n != 8 {
			t.Errorf("placement grid row has %d cells, want 8 under the header's 8 experts", n)
		}
	}
	replicated := regexp.MustCompile(`<td [^>]*class="replicated"[^>]*>n\d\+n\d</td>`).FindAllString(grid, -1)
	if len(replicated) != 32 {
		t.Errorf("placement grid marks %d units as replicated, want all 32 (2 replicas each)", len(replicated))
	}

	// The comparison, in percentages: what `switchyard stats --compare`
	// prints for the same two prompts.
	rep, err := statsview.Fetch(t.Context(), c.URL, "1m")
	if err != nil {
		t.Fatal(err)
	}

	// The KV cache: a row per coordinator, as the stats have it (the
	// cluster is idle, so they have not moved since the page read them).
	kvTable := element(t, dom, "table", "kvcache")
	if len(rep.KVCache) != 1 {
		t.Fatalf("stats report %d coordinators' KV caches, want 1", len(rep.KVCache))
	}
	k := rep.KVCache[0]
	for _, want := range []string{">" + k.Coordinator + "</td>", fmt.Sprintf(">%d</td>", k.BlocksCached), fmt.Sprintf(">%.1f%%</td>", 100*k.HitRate)} {
		if !strings.Contains(kvTable, want) {
			t.Errorf("the KV cache table lacks %q:\n%s", want, kvTable)
		}
	}
	if k.HitRate == 0 || k.BlocksCached == 0 {
		t.Errorf("KV cache %+v: the repeated prompt should have hit cached blocks", k)
	}
	a, err := statsview.Route(t.Context(), c.URL, "def f(x):\n    return x * 2", rep)
	if err != nil {
		t.Fatal(err)
	}
	b, err := statsview.Route(t.Context(), c.URL, "The list type is a mutable sequence", rep)
	if err != nil {
		t.Fatal(err)
	}
	var cli strings.Builder
	statsview.Compare(&cli, a, b)
	compare := element(t, dom, "table", "compare")
	for l := range 4 {
		// The CLI's columns: "L%-5d %-28s %-28s %s".
		line := regexp.MustCompile(`(?m)^L` + strconv.Itoa(l) + ` .*$`).FindString(cli.String())
		row := regexp.MustCompile(`<td>L` + strconv.Itoa(l) + `</td><td>([^<]*)</td><td>([^<]*)</td>`).FindStringSubmatch(compare)
		if len(line) < 64 || row == nil {
			t.Fatalf("layer %d: no comparison row (page %q, CLI %q)", l, row, cli.String())
		}
		norm := func(s string) string { return spaces.ReplaceAllString(strings.TrimSpace(s), " ") }
		if norm(row[1]) != norm(line[7:35]) || norm(row[2]) != norm(line[36:64]) {
			t.Errorf("layer %d: page compares %q / %q, the CLI %q / %q", l, row[1], row[2], line[7:35], line[36:64])
		}
	}

	narrow := headless(t, bin, "--window-size=1024,900", "--dump-dom", c.URL+"/dashboard#compare")
	if !strings.Contains(narrow, `data-fits="true"`) || !strings.Contains(narrow, "different top") && !strings.Contains(narrow, "≠ top expert") {
		t.Errorf("at 1024 px the page or a panel scrolls sideways (data-fits is not true), or the comparison is missing")
	}
	for name, args := range map[string][]string{
		"dashboard.png":      {"--window-size=1400,880", c.URL + "/dashboard#compare"},
		"dashboard-1024.png": {"--window-size=1024,1000", c.URL + "/dashboard#compare"},
	} {
		shot := filepath.Join(dir, name)
		headless(t, bin, append([]string{"--screenshot=" + shot}, args...)...)
		if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
			t.Fatalf("screenshot %s: %v", shot, err)
		}
		t.Logf("screenshot: %s", shot)
	}
}
