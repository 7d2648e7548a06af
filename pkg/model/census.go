package model

import (
	"regexp"
	"strings"
)

// Census counts a model's parameters by kind and by where they live.
type Census struct {
	Total      int64 `json:"total"`
	Embeddings int64 `json:"embeddings"`
	Weights    int64 `json:"weights"`
	Biases     int64 `json:"biases"`
	Norms      int64 `json:"norm_scales"`
	Routed     int64 `json:"routed_experts"`
	Shared     int64 `json:"shared"`
	// ActivePerToken is the shared part plus k of n experts in every layer:
	// what one token actually multiplies with.
	ActivePerToken int64 `json:"active_per_token"`
}

var perExpert = regexp.MustCompile(`^blk\.\d+\.ffn_(gate|up|down)\.\d+\.weight$`)

// IsRoutedExpert reports whether a tensor holds routed experts.
func IsRoutedExpert(name string) bool {
	return strings.Contains(name, "_exps.") || perExpert.MatchString(name)
}

// Census counts the parameters of every tensor in the file.
func (f *File) Census() Census {
	var c Census
	for i := range f.Tensors {
		t := &f.Tensors[i]
		n := int64(t.Elements())
		c.Total += n
		switch {
		case strings.HasPrefix(t.Name, "token_embd."):
			c.Embeddings += n
		case strings.HasSuffix(t.Name, ".bias"):
			c.Biases += n
		case strings.Contains(t.Name, "norm"):
			c.Norms += n
		default:
			c.Weights += n
		}
		if IsRoutedExpert(t.Name) {
			c.Routed += n
		} else {
			c.Shared += n
		}
	}
	c.ActivePerToken = c.Shared
	if f.Experts > 0 {
		c.ActivePerToken += c.Routed * int64(f.ExpertsUsed) / int64(f.Experts)
	}
	return c
}
