// Package model turns a GGUF file into a runnable Mixture-of-Experts
// language model: hyperparameters, the architectures' rules, weights bound
// to layer structs, the KV cache and the forward pass. The split the
// cluster needs is explicit: a Shared part (everything but routed experts)
// and expert Units (layer, expert), each loadable on its own. Routed
// experts are reached through the Experts interface, so the same forward
// pass runs in one process or against remote expert nodes.
package model

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors returned (wrapped) by this package.
var (
	ErrArch    = errors.New("model: unsupported architecture")
	ErrTensor  = errors.New("model: bad tensor")
	ErrHyper   = errors.New("model: bad hyperparameter")
	ErrToken   = errors.New("model: bad token")
	ErrContext = errors.New("model: context length exceeded")
)

// QKNorm says where an architecture applies RMSNorm to queries and keys.
type QKNorm int

// Where q/k norms sit.
const (
	QKNormNone    QKNorm = iota
	QKNormPerHead        // over each head (size head_dim), Qwen3-MoE
	QKNormFull           // over the whole projection, before the head split, OLMoE
)

// Arch is an architecture's rules, as llama.cpp applies them.
type Arch struct {
	Name string
	// RopeNeoX rotates pairs (i, i+d/2) instead of (2i, 2i+1).
	RopeNeoX bool
	// NormTopK divides the chosen experts' gate probabilities by their sum.
	NormTopK bool
	QKNorm   QKNorm
	// SharedExpert: a shared expert gated by sigmoid(ffn_gate_inp_shexp·h).
	SharedExpert bool
	// hyper reads the family's own metadata keys, after the common ones.
	hyper func(k *keys, h *Hyper)
}

var archs = map[string]*Arch{
	"llama":    {Name: "llama", NormTopK: true},
	"qwen2moe": {Name: "qwen2moe", RopeNeoX: true, SharedExpert: true},
	"qwen3moe": {Name: "qwen3moe", RopeNeoX: true, NormTopK: true, QKNorm: QKNormPerHead},
	"olmoe":    {Name: "olmoe", RopeNeoX: true, QKNorm: QKNormFull},
}

// Architectures lists the supported general.architecture values.
func Architectures() []string {
	names := make([]string, 0, len(archs))
	for n := range archs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LookupArch returns the rules of architecture name.
func LookupArch(name string) (*Arch, error) {
	a, ok := archs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (supported: %s)", ErrArch, name, strings.Join(Architectures(), ", "))
	}
	return a, nil
}
