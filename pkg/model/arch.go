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

// Arch is an architecture: how its metadata is read and which blocks (an
// attention, a feed-forward part with its router) each layer is built from,
// as llama.cpp builds them. Each family is a file that registers one.
type Arch struct {
	Name string
	// RopeNeoX rotates pairs (i, i+d/2) instead of (2i, 2i+1).
	RopeNeoX bool
	// hyper reads the family's own metadata keys, after the common ones.
	hyper func(k *keys, h *Hyper)
	// shapes adds or overrides expected tensor shapes (ggml order) by tag.
	shapes func(h Hyper, s map[string][]int)
	// layer returns layer l's blocks, their weights not yet bound.
	layer func(h Hyper, l int) Layer
	// rename maps a tag to the family's own name for that tensor.
	rename map[string]string
	// oaiExperts: routed experts use SwiGLU-OAI (see FFN).
	oaiExperts bool
}

var archs = map[string]*Arch{}

// register adds a family to the table; families call it from init.
func register(a *Arch) { archs[a.Name] = a }

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
