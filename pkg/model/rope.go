package model

import "math"

// rope is the rotary position embedding of a model's layers, plain or
// with YaRN context extension, computed as ggml computes it.
type rope struct {
	dims       int     // rotated values per head
	neox       bool    // pairs (i, i+d/2) rather than (2i, 2i+1)
	thetaScale float32 // base^(-2/d)

	// YaRN: θ = θ_extrap·freqScale·(1-r_i) + θ_extrap·r_i with the ramp
	// r_i over [lo, hi], cos and sin scaled by mscale.
	yarn      bool
	freqScale float32
	lo, hi    float32
	mscale    float32
}

func newRope(h Hyper, a *Arch) rope {
	r := rope{dims: h.RopeDims, neox: a.RopeNeoX}
	if r.dims == 0 {
		return r
	}
	r.thetaScale = float32(math.Pow(float64(h.RopeBase), -2/float64(r.dims)))
	if h.Rope.Type != "yarn" {
		return r
	}
	r.yarn = true
	r.freqScale = 1 / h.Rope.Factor
	corr := func(rot float32) float64 {
		return float64(r.dims) * math.Log(float64(h.Rope.OrigContext)/(float64(rot)*2*math.Pi)) / (2 * math.Log(float64(h.RopeBase)))
	}
	r.lo = float32(max(0, math.Floor(corr(h.Rope.BetaFast))))
	r.hi = float32(min(float64(r.dims-1), math.Ceil(corr(h.Rope.BetaSlow))))
	// ggml scales cos and sin by attn_factor·(1 + 0.1·ln(1/freqScale)).
	// With yarn_log_multiplier (deepseek2) llama.cpp passes an attn_factor
	// that cancels the second term, and moves the scaling into the
	// attention's kq scale instead.
	grow := 1 + 0.1*float32(math.Log(float64(1/r.freqScale)))
	attnFactor := float32(1)
	if h.Rope.LogMul != 0 {
		attnFactor = 1 / grow
	}
	r.mscale = attnFactor * grow
	return r
}

// table writes the cosine and sine of every rotated pair's angle at pos
// into cs (dims values): θ_i = pos·base^(-2i/d), accumulated in float32.
func (r *rope) table(cs []float32, pos int) {
	theta := float32(pos)
	for i := 0; i < r.dims/2; i++ {
		t := theta
		if r.yarn {
			y := (float32(i) - r.lo) / max(0.001, r.hi-r.lo)
			mix := 1 - min(1, max(0, y))
			t = theta*r.freqScale*(1-mix) + theta*mix
			cs[2*i] = float32(math.Cos(float64(t))) * r.mscale
			cs[2*i+1] = float32(math.Sin(float64(t))) * r.mscale
		} else {
			cs[2*i], cs[2*i+1] = float32(math.Cos(float64(t))), float32(math.Sin(float64(t)))
		}
		theta *= r.thetaScale
	}
}

// rotate rotates the first dims values of every head of x (heads of
// stride values each, the last possibly cut short after its rotated
// values) by the angles of cs.
func (r *rope) rotate(x []float32, stride int, cs []float32) {
	d := r.dims
	for hd := 0; hd+d <= len(x); hd += stride {
		xh := x[hd : hd+d]
		for i := 0; i < d/2; i++ {
			c, s := cs[2*i], cs[2*i+1]
			a, b := 2*i, 2*i+1
			if r.neox {
				a, b = i, i+d/2
			}
			x0, x1 := xh[a], xh[b]
			xh[a] = x0*c - x1*s
			xh[b] = x0*s + x1*c
		}
	}
}
