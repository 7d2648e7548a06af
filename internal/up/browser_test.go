package up

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's Chromium. CI installs it (.ci/run); elsewhere
// the browser tests say why they cannot run.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
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

// TestDashboardInBrowser loads /dashboard from a live cluster in headless
// Chromium, waits for data, checks the heatmap has a cell per (layer,
// expert) and the code-vs-prose comparison filled in, and keeps a
// screenshot.
func TestDashboardInBrowser(t *testing.T) {
	bin := chromium(t)
	c := start(t, Config{})
	for _, p := range []string{"The list type", "def f(x):", "To open a file"} {
		complete(t, c, map[string]any{"prompt": p, "max_tokens": 16})
	}
	dom := headless(t, bin, "--dump-dom", c.URL+"/dashboard#compare")
	if !strings.Contains(dom, `data-ready="true"`) {
		t.Fatalf("the page never received data:\n%.2000s", dom)
	}
	if n := strings.Count(dom, `class="cell"`); n != 4*8 {
		t.Errorf("heatmap has %d cells, want 32 (4 layers × 8 experts)", n)
	}
	for _, want := range []string{"node-1", "node-3", "9,100,992", "3,792,576", "placement epoch 1"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The comparison table: one row per layer, each side listing experts.
	rows := regexp.MustCompile(`<td>L3</td><td>([^<]*)</td><td>([^<]*)</td>`).FindStringSubmatch(dom)
	if rows == nil || !strings.Contains(rows[1], "×") || !strings.Contains(rows[2], "×") {
		t.Errorf("comparison row for layer 3 missing or empty: %v", rows)
	}
	shot := filepath.Join(artifacts(t), "dashboard.png")
	headless(t, bin, "--window-size=1400,1100", "--screenshot="+shot, c.URL+"/dashboard#compare")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
