package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlacementPlan: `model synth --header-only` writes DeepSeek-V3's
// header in a few MB, `placement plan --json` reads it and prints the
// fields scripts read (issue 24's interface), and the text form says
// what would fit when it does not.
func TestPlacementPlan(t *testing.T) {
	bin := binary(t)
	path := filepath.Join(t.TempDir(), "dsv3.gguf")
	if _, errOut, code := run(t, bin, "model", "synth", "--arch", "deepseek2", "--preset", "full", "--dtype", "q4_k_m", "--header-only", "-o", path); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, errOut)
	}
	if st, err := os.Stat(path); err != nil || st.Size() > 16<<20 {
		t.Fatalf("header-only file: %v, %v", st, err)
	}
	out, errOut, code := run(t, bin, "placement", "plan", "--model", path, "--nodes", "8", "--node-memory", "128GiB", "--json")
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errOut)
	}
	var p struct {
		Fits           *bool  `json:"fits"`
		SharedBytes    *int64 `json:"shared_bytes"`
		ShortfallBytes *int64 `json:"shortfall_bytes"`
		Nodes          []struct {
			ID    string `json:"id"`
			Units int    `json:"units"`
			Bytes int64  `json:"bytes"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if p.Fits == nil || !*p.Fits || p.SharedBytes == nil || *p.SharedBytes < 10e9 || p.ShortfallBytes == nil || *p.ShortfallBytes != 0 || len(p.Nodes) != 8 {
		t.Fatalf("plan: %s", out)
	}
	for _, n := range p.Nodes {
		if n.ID == "" || n.Units != 1856 || n.Bytes <= 0 {
			t.Errorf("node %+v, want 1856 units and their bytes", n)
		}
	}
	out, _, code = run(t, bin, "placement", "plan", "--model", path, "--nodes", "2", "--node-memory", "128GiB")
	if code != 0 || !strings.Contains(out, "fits         no: short by") || !strings.Contains(out, "would fit    4 nodes of 128.0 GiB") {
		t.Errorf("2 nodes: exit %d:\n%s", code, out)
	}
}
