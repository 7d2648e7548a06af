package router

import (
	"encoding/json"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// Routing returned to a client lists no experts for a dense layer, whose
// slots the coordinator leaves unset (int32 -1, as the proto's uint32).
func TestShapeRouting(t *testing.T) {
	const unset = ^uint32(0)
	cases := []struct {
		name string
		info placement.ModelInfo
		flat []uint32 // positions × layers × k, k = 2
		want string
	}{
		{"every layer routes (a record without moe_layers)", placement.ModelInfo{Layers: 2, Experts: 8},
			[]uint32{1, 2, 3, 4, 5, 6, 7, 0}, `[[[1,2],[3,4]],[[5,6],[7,0]]]`},
		{"leading dense layer", placement.ModelInfo{Layers: 3, Experts: 8, MoELayers: []int{1, 2}},
			[]uint32{unset, unset, 3, 5, 7, 0, unset, unset, 1, 2, 4, 6}, `[[[],[3,5],[7,0]],[[],[1,2],[4,6]]]`},
	}
	for _, c := range cases {
		o := &response{k: 2, layers: c.info.Layers, moeLayer: c.info.MoELayer}
		got, err := json.Marshal(o.shape(c.flat))
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %s (%v), want %s", c.name, got, err, c.want)
		}
	}
}
