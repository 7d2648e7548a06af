package placement

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// A node is gone only when its registration lapsed and it is not both
// alive in gossip and healthy, and not while etcd is away or in the grace
// after it returned; mass loss holds the placement first.
func TestAbsenceJudge(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	up := EtcdState{Reachable: true}
	back := EtcdState{Reachable: true, Back: t0.Add(-3 * time.Second)} // returned 3 s ago
	reg, alive, dead := Sighting{Registered: true}, Sighting{Alive: true, Healthy: true}, Sighting{}
	cases := []struct {
		name  string
		etcd  EtcdState
		nodes map[string]Sighting
		gone  []string
		kept  []string
		hold  bool
	}{
		{"all registered", up, map[string]Sighting{"a": reg, "b": reg, "c": reg}, nil, nil, false},
		{"one dead in both views", up, map[string]Sighting{"a": reg, "b": reg, "c": dead}, []string{"c"}, nil, false},
		{"lease lapsed, gossip alive and healthy", up, map[string]Sighting{"a": reg, "b": reg, "c": alive}, nil, []string{"c"}, false},
		{"gossip alive but health failing", up, map[string]Sighting{"a": reg, "b": reg, "c": {Alive: true}}, []string{"c"}, nil, false},
		{"healthy but dead in gossip", up, map[string]Sighting{"a": reg, "b": reg, "c": {Healthy: true}}, []string{"c"}, nil, false},
		{"etcd unreachable", EtcdState{}, map[string]Sighting{"a": dead, "b": dead, "c": dead}, nil, []string{"a", "b", "c"}, false},
		{"within the grace after etcd returned", back, map[string]Sighting{"a": dead, "b": reg, "c": reg}, nil, []string{"a"}, false},
		{"every lease lapsed, all alive", back, map[string]Sighting{"a": alive, "b": alive, "c": alive}, nil, []string{"a", "b", "c"}, false},
		{"after the grace", EtcdState{Reachable: true, Back: t0.Add(-11 * time.Second)}, map[string]Sighting{"a": dead, "b": reg, "c": reg}, []string{"a"}, nil, false},
		{"mass loss holds", up, map[string]Sighting{"a": dead, "b": dead, "c": reg}, nil, []string{"a", "b"}, true},
		{"half is not mass loss", up, map[string]Sighting{"a": dead, "b": reg}, []string{"a"}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := Absence{Grace: 10 * time.Second, Hold: time.Minute}
			v := a.Judge(t0, c.etcd, c.nodes)
			var kept []string
			for id := range v.Kept {
				kept = append(kept, id)
			}
			slices.Sort(kept)
			if !slices.Equal(v.Gone, c.gone) || !slices.Equal(kept, c.kept) || v.Holding != c.hold {
				t.Errorf("got gone %v kept %v holding %v, want gone %v kept %v holding %v", v.Gone, kept, v.Holding, c.gone, c.kept, c.hold)
			}
		})
	}
}

// A mass loss is held for Hold, then repaired as usual; the hold starts
// afresh after the nodes come back.
func TestAbsenceHoldEnds(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	a := Absence{Grace: 10 * time.Second, Hold: time.Minute}
	up := EtcdState{Reachable: true}
	lost := map[string]Sighting{"a": {}, "b": {}, "c": {Registered: true}}
	if v := a.Judge(t0, up, lost); !v.Holding || !strings.Contains(v.Why, "2 of 3 nodes") {
		t.Fatalf("at the loss: %+v, want holding with a reason", v)
	}
	if v := a.Judge(t0.Add(59*time.Second), up, lost); !v.Holding || len(v.Gone) != 0 {
		t.Fatalf("59 s later: %+v, want still holding", v)
	}
	if v := a.Judge(t0.Add(61*time.Second), up, lost); v.Holding || !slices.Equal(v.Gone, []string{"a", "b"}) {
		t.Fatalf("61 s later: %+v, want a and b gone", v)
	}
	all := map[string]Sighting{"a": {Registered: true}, "b": {Registered: true}, "c": {Registered: true}}
	a.Judge(t0.Add(70*time.Second), up, all)
	if v := a.Judge(t0.Add(80*time.Second), up, lost); !v.Holding {
		t.Fatalf("a second mass loss: %+v, want a new hold", v)
	}
}

// A held node keeps its units and takes no new ones, and nothing but
// repairs moves while it is held.
func TestPlanHeldNode(t *testing.T) {
	in := Input{Units: ModelInfo{Layers: 2, Experts: 8}.Units(), Replicas: 1, Nodes: nodes("a", "b", "c"), MaxMoves: 4,
		ExtraReplicas: 4, HotAbove: 1.25, CoolBelow: 1.1}
	settle(t, &in, 10)
	before := counts(in.Current)
	in.Nodes[2].Held = true
	// A fourth node joins and the load is skewed: both would move units,
	// but not while c is held.
	in.Nodes = append(in.Nodes, NodeState{ID: "d", Ready: map[string]bool{}})
	in.Load = map[string]float64{}
	for _, u := range in.Current.UnitsOf("a") {
		in.Load[UnitKey(u)] = 100
	}
	next, reasons := Plan(in)
	if len(reasons) != 0 {
		t.Errorf("changes while c is held: %v", reasons)
	}
	if got := counts(next); got["c"] != before["c"] || got["d"] != 0 {
		t.Errorf("units per node %v, want c keeping %d and d none", got, before["c"])
	}
	// A unit with no replica anywhere is still repaired, but not onto c.
	for key, on := range in.Current.Units {
		if on[0] == "a" {
			in.Current.Units[key] = nil
			break
		}
	}
	next, reasons = Plan(in)
	if len(reasons) != 1 || strings.Contains(reasons[0], "on c ") {
		t.Errorf("repair while c is held: %v", reasons)
	}
	for key, on := range next.Units {
		if len(on) != 1 {
			t.Errorf("unit %s on %v", key, on)
		}
	}
}
