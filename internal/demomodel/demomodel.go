// Package demomodel ships switchyard-demo-moe, a small trained Mixtral-style
// MoE model (Q8_0, 9.8 MB), inside the binary: the model `switchyard up`
// serves when no --model is given. See README.md beside this file.
package demomodel

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed demo-moe-q8_0.gguf
var data []byte

// SHA256 of the embedded file.
const SHA256 = "48a369215976f29352459795cbcf90bb50130249c7d57a327d85ade1918101ce"

// Name is the model's served name.
const Name = "switchyard-demo-moe"

// Path writes the model into dir (once; an intact copy is reused) and
// returns its path. Roles read models from files, so the embedded bytes
// are materialised rather than served from memory.
func Path(dir string) (string, error) {
	path := filepath.Join(dir, "demo-moe-q8_0.gguf")
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, data) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("demomodel: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".demo-*")
	if err != nil {
		return "", fmt.Errorf("demomodel: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("demomodel: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("demomodel: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("demomodel: %w", err)
	}
	return path, nil
}

// Verify checks the embedded bytes against SHA256.
func Verify() error {
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != SHA256 {
		return fmt.Errorf("demomodel: embedded file has SHA-256 %s, want %s", got, SHA256)
	}
	return nil
}
