package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSimJSON: `switchyard sim --json` prints one object with the fields
// scripts read (issue 24's interface), and refuses a bad --wire.
func TestSimJSON(t *testing.T) {
	bin := binary(t)
	out, errOut, code := run(t, bin, "sim", "--layers", "58", "--experts", "256", "--top-k", "8", "--nodes", "16", "--redundant", "32", "--etcd=false", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"epoch_ms", "placement_bytes", "imbalance_before", "imbalance_after", "moves", "predicted_tok_s", "model_tok_s"} {
		if _, ok := rep[k].(float64); !ok {
			t.Errorf("field %s is %v, want a number", k, rep[k])
		}
	}
	if rep["units"] != float64(14848) || rep["nodes"] != float64(16) {
		t.Errorf("units %v on %v nodes, want 14848 on 16", rep["units"], rep["nodes"])
	}
	if _, errOut, code := run(t, bin, "sim", "--wire", "int4"); code != 1 || !strings.Contains(errOut, "--wire") {
		t.Errorf("--wire int4: exit %d, %s", code, errOut)
	}
}

func TestParseRate(t *testing.T) {
	cases := []struct {
		in   string
		want float64
	}{
		{"200GB/s", 200e9}, {"1.5GiB/s", 1.5 * (1 << 30)}, {"10gbit", 10e9 / 8}, {"100mbit", 100e6 / 8}, {"1gbps", 1e9 / 8}, {"4096", 4096},
	}
	for _, c := range cases {
		if got, err := parseRate(c.in); err != nil || got != c.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "fast", "-1gbit", "0GB/s"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
}
