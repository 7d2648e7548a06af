package placement

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/model"
)

func TestUnitKey(t *testing.T) {
	u := model.Unit{Layer: 3, Expert: 12}
	if got, err := ParseUnitKey(UnitKey(u)); err != nil || got != u {
		t.Errorf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "3", "a/b", "-1/2", "1/"} {
		if _, err := ParseUnitKey(bad); err == nil {
			t.Errorf("ParseUnitKey(%q): nil error", bad)
		}
	}
}

func TestModelInfoUnits(t *testing.T) {
	cases := []struct {
		name   string
		record string   // the model key's JSON, as written to etcd
		want   [][2]int // (layer, expert)
	}{
		{"record without moe_layers: every layer", `{"layers":2,"experts":2}`, [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}}},
		{"leading dense layer", `{"layers":3,"experts":2,"moe_layers":[1,2]}`, [][2]int{{1, 0}, {1, 1}, {2, 0}, {2, 1}}},
		{"dense layers between MoE ones", `{"layers":4,"experts":1,"moe_layers":[0,3]}`, [][2]int{{0, 0}, {3, 0}}},
	}
	for _, c := range cases {
		var m ModelInfo
		if err := json.Unmarshal([]byte(c.record), &m); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got [][2]int
		for _, u := range m.Units() {
			got = append(got, [2]int{u.Layer, u.Expert})
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: units %v, want %v", c.name, got, c.want)
		}
	}
}
