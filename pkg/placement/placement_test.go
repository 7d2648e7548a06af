package placement

import (
	"slices"
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/model"
)

func TestSpread(t *testing.T) {
	m := Spread(4, 8, []string{"c", "a", "b"}, 2, 1)
	if len(m.Units) != 32 {
		t.Fatalf("%d units placed, want 32", len(m.Units))
	}
	count := map[string]int{}
	for k, nodes := range m.Units {
		if len(nodes) != 2 || nodes[0] == nodes[1] {
			t.Errorf("unit %s on %v, want 2 distinct nodes", k, nodes)
		}
		for _, n := range nodes {
			count[n]++
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		if c := count[n]; c < 21 || c > 22 {
			t.Errorf("node %s holds %d replicas, want 21 or 22 of 64", n, c)
		}
	}
	if got := Spread(1, 2, []string{"a"}, 3, 1); len(got.Units["0/1"]) != 1 {
		t.Errorf("3 replicas on 1 node: %v", got.Units)
	}
	if u := m.UnitsOf("a"); len(u) != count["a"] || !slices.IsSortedFunc(u, func(x, y model.Unit) int { return x.Layer*100 + x.Expert - y.Layer*100 - y.Expert }) {
		t.Errorf("UnitsOf(a) = %v", u)
	}
}

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
