package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGossipKey: the gossip key comes from --gossip-key-file, else from
// SWITCHYARD_GOSSIP_KEY; both hold base64 of 16, 24 or 32 bytes.
func TestGossipKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k16 := "MDEyMzQ1Njc4OWFiY2RlZg==" // "0123456789abcdef"
	k32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	cases := []struct {
		name, file, env string
		want            string // the key's bytes, "" for none
		err             string
	}{
		{"neither", "", "", "", ""},
		{"environment", "", k16, "0123456789abcdef", ""},
		{"file with a newline", write("a", k32+"\n"), "", "0123456789abcdef0123456789abcdef", ""},
		{"file wins", write("b", k16), k32, "0123456789abcdef", ""},
		{"empty file", write("c", "\n"), k16, "", "--gossip-key-file " + filepath.Join(dir, "c") + " is empty"},
		{"missing file", filepath.Join(dir, "none"), "", "", "no such file"},
		{"not base64", "", "not base64!", "", "SWITCHYARD_GOSSIP_KEY: want base64 of 16, 24 or 32 bytes"},
		{"wrong length", write("d", "YWJj"), "", "", "want base64 of 16, 24 or 32 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := gossipKey(c.file, c.env)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil || !bytes.Equal(k, []byte(c.want)) {
				t.Errorf("got %q, %v; want %q", k, err, c.want)
			}
		})
	}
}

// TestNoGossipKeyFlag: the key is never taken from the command line.
func TestNoGossipKeyFlag(t *testing.T) {
	bin := binary(t)
	for _, role := range []string{"expert-node", "coordinator"} {
		_, errOut, code := run(t, bin, role, "--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZg==")
		if code != 1 || !strings.Contains(errOut, "flag provided but not defined: -gossip-key") {
			t.Errorf("%s --gossip-key: exit %d, %q; want it refused", role, code, errOut)
		}
	}
}
