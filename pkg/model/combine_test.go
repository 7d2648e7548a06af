package model

import "testing"

// TestCombineInTopKOrder: a routed layer adds its experts' weighted
// outputs to the residual in top-k order, best first, whatever machine
// computed them, so that every placement gives the same bits. Float32
// addition is not associative; these outputs (weights 1, so the products
// are exact) sum to 1 in top-k order, ((1e8 + 1) − 1e8) + 1, where 1 is
// lost beside 1e8 once (its spacing there is 8), and to 0 in reverse
// order, ((1 − 1e8) + 1) + 1e8. The golden tests' tolerances cannot see a
// change of order, which moves logits by rounding alone.
func TestCombineInTopKOrder(t *testing.T) {
	m := &Model{Hyper: Hyper{Embd: 2, ExpertsUsed: 4}}
	ws := m.ws.get()
	defer m.ws.put(ws)
	st := &layerStep{
		x:       []float32{0.5, 0},
		weights: []float32{1, 1, 1, 1},
		out:     []float32{1e8, 2, 1, 3, -1e8, 5, 1, 7}, // 4 outputs of 2 values
	}
	if err := (&moe{}).finish(m, ws, st); err != nil {
		t.Fatal(err)
	}
	// 0.5 + (((1e8 + 1) − 1e8) + 1) = 1.5 (reversed: 0.5); the second
	// column is exact.
	if st.x[0] != 1.5 || st.x[1] != 17 {
		t.Errorf("residual %v, want [1.5 17]: the experts added in top-k order", st.x)
	}
}
