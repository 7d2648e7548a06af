package placement

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// deepSeekV3 is DeepSeek-V3's placement shape: 61 layers, the first three
// dense, 58 MoE layers of 256 routed experts — 14,848 units.
func deepSeekV3() ModelInfo {
	info := ModelInfo{Layers: 61, Experts: 256}
	for l := 3; l < 61; l++ {
		info.MoELayers = append(info.MoELayers, l)
	}
	return info
}

func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%03d", i)
	}
	return ids
}

// loadAll marks every node ready for what next places on it, and nothing else.
func loadAll(in *Input, next Map) {
	for i := range in.Nodes {
		in.Nodes[i].Ready = map[string]bool{}
	}
	idx := map[string]int{}
	for i, n := range in.Nodes {
		idx[n.ID] = i
	}
	for key, on := range next.Units {
		for _, id := range on {
			if i, ok := idx[id]; ok {
				in.Nodes[i].Ready[key] = true
			}
		}
	}
}

// TestPlanAgreesWithReference runs random cluster histories — nodes
// joining, leaving, draining, held, small nodes, skewed and changing
// load, replicas loading slowly — through the indexed planner and the
// quadratic one it replaced, and requires the same placement and the same
// reasons, round after round.
func TestPlanAgreesWithReference(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			info := ModelInfo{Layers: 1 + r.IntN(4), Experts: 2 + r.IntN(12)}
			in := Input{Units: info.Units(), Replicas: 1 + r.IntN(2), MaxMoves: 1 + r.IntN(6),
				ExtraReplicas: r.IntN(10), HotAbove: 1.25, CoolBelow: 1.1}
			next := 0
			join := func() {
				n := NodeState{ID: fmt.Sprintf("n%02d", next), Ready: map[string]bool{}}
				if r.IntN(4) == 0 {
					n.Units = 2 + r.IntN(6)
				}
				in.Nodes = append(in.Nodes, n)
				next++
			}
			for range 2 + r.IntN(4) {
				join()
			}
			for round := range 60 {
				switch x := r.IntN(20); {
				case x == 0 && len(in.Nodes) < 16: // replicas ≤ 16: shares stay exact
					join()
				case x == 1 && len(in.Nodes) > 2:
					i := r.IntN(len(in.Nodes))
					in.Nodes = slices.Delete(in.Nodes, i, i+1)
				case x == 2:
					in.Nodes[r.IntN(len(in.Nodes))].Draining = true
				case x == 3:
					i := r.IntN(len(in.Nodes))
					in.Nodes[i].Held = !in.Nodes[i].Held
				case x <= 6:
					in.Load = map[string]float64{}
					for _, u := range in.Units {
						// Loads skewed towards the first experts, multiples of
						// lcm(1..16) so that a unit's share per replica and
						// every node's sum are exact in both planners (the
						// old one sums in map order): ties are then ties.
						in.Load[UnitKey(u)] = float64(r.IntN(1000)/(1+u.Expert)) * 720720
					}
				case x == 7:
					in.Load = nil
				}
				got, gotWhy := Plan(in)
				want, wantWhy := refPlan(in)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("round %d: placement differs from the reference:\n got %+v\nwant %+v", round, got, want)
				}
				if !slices.Equal(gotWhy, wantWhy) {
					t.Fatalf("round %d: reasons differ from the reference:\n got %q\nwant %q", round, gotWhy, wantWhy)
				}
				in.Current = got
				// Most nodes load what they were given; some are slow.
				for i := range in.Nodes {
					if r.IntN(5) == 0 {
						continue
					}
					in.Nodes[i].Ready = map[string]bool{}
					for _, u := range got.UnitsOf(in.Nodes[i].ID) {
						in.Nodes[i].Ready[UnitKey(u)] = true
					}
				}
			}
		})
	}
}

// TestPlanDeepSeekV3 places DeepSeek-V3's 14,848 units on 8 to 256 nodes
// — the size at which the quadratic planner took a minute on 8 nodes and
// did not finish on 32 — and checks the placement: every unit once, nodes
// within one unit of each other, and a second round that changes nothing.
func TestPlanDeepSeekV3(t *testing.T) {
	units := deepSeekV3().Units()
	if len(units) != 14848 {
		t.Fatalf("%d units, want 14848", len(units))
	}
	for _, n := range []int{8, 32, 256} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			in := Input{Units: units, Replicas: 1, Nodes: nodes(nodeIDs(n)...), MaxMoves: 64}
			next, why := Plan(in)
			if len(next.Units) != len(units) || len(why) != len(units) {
				t.Fatalf("placed %d units with %d reasons, want %d", len(next.Units), len(why), len(units))
			}
			c := counts(next)
			lo, hi := len(units), 0
			for _, id := range nodeIDs(n) {
				lo, hi = min(lo, c[id]), max(hi, c[id])
			}
			if hi-lo > 1 || lo != len(units)/n {
				t.Errorf("nodes hold %d to %d units, want %d or %d", lo, hi, len(units)/n, (len(units)+n-1)/n)
			}
			in.Current = next
			loadAll(&in, next)
			if again, why := Plan(in); len(why) != 0 || !maps.EqualFunc(again.Units, next.Units, slices.Equal) {
				t.Errorf("a settled placement changed: %d reasons, first %q", len(why), why[0])
			}
		})
	}
}

func BenchmarkPlanDeepSeekV3(b *testing.B) {
	units := deepSeekV3().Units()
	for _, n := range []int{8, 32, 128, 256} {
		for _, r := range []int{1, 3} {
			b.Run(fmt.Sprintf("initial/replicas=%d/nodes=%d", r, n), func(b *testing.B) {
				in := Input{Units: units, Replicas: r, Nodes: nodes(nodeIDs(n)...), MaxMoves: 64}
				for b.Loop() {
					Plan(in)
				}
			})
		}
		b.Run(fmt.Sprintf("hot/nodes=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			in := Input{Units: units, Replicas: 1, Nodes: nodes(nodeIDs(n)...), MaxMoves: 64,
				ExtraReplicas: 32 * 58, HotAbove: 1.1, CoolBelow: 1.05, Load: map[string]float64{}}
			for _, u := range units {
				in.Load[UnitKey(u)] = 1000 / float64(1+r.IntN(256))
			}
			in.Current, _ = Plan(in)
			loadAll(&in, in.Current)
			for b.Loop() {
				Plan(in)
			}
		})
	}
}

func BenchmarkEncodePlacementDeepSeekV3(b *testing.B) {
	in := Input{Units: deepSeekV3().Units(), Replicas: 1, Nodes: nodes(nodeIDs(256)...)}
	m, _ := Plan(in)
	s := NewStore(nil, "c")
	for b.Loop() {
		s.EncodePlacement(m)
	}
}
