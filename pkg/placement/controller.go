package placement

import (
	"container/heap"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/switchyard-llm/switchyard/pkg/model"
)

// NodeState is what the controller knows of a live node.
type NodeState struct {
	ID       string
	Units    int  // units it can hold (from its capacity); 0 means no limit
	Draining bool // asked to give its units away
	// Held: its registration lapsed but it is not gone (see Absence): it
	// keeps its units, takes no new ones, and while any node is held
	// nothing moves but repairs and drains.
	Held bool
	// Ready lists the units it has loaded (its status).
	Ready map[string]bool
}

// The hot-replication thresholds the coordinator's controller uses unless
// configured (Input.HotAbove, Input.CoolBelow): replicas are added while
// the busiest node's expected load is above DefaultHotAbove × the mean, and
// removed only when the nodes would stay below DefaultCoolBelow × the mean
// without them. `switchyard sim` reaches a steady state at or below 1.10 with
// them on DeepSeek-V3 under Zipf-skewed load (docs/performance.md).
const (
	DefaultHotAbove  = 1.10
	DefaultCoolBelow = 1.05
)

// Input is everything one planning round looks at.
type Input struct {
	Units    []model.Unit // the units to place (ModelInfo.Units)
	Replicas int          // copies of every unit; at least 1
	Nodes    []NodeState
	Current  Map
	// Load is each unit's recent routing load (tokens); nil or all zero
	// turns hot-expert replication off.
	Load map[string]float64
	// ExtraReplicas bounds the replicas added for hot units, in all.
	ExtraReplicas int
	// MaxMoves bounds the changes of one round that are not repairs
	// (rebalancing, hot replicas); repairs of lost or draining units are
	// never held back.
	MaxMoves int
	// HotAbove and CoolBelow are the hysteresis of hot replication: add
	// replicas while the busiest node's expected load is above HotAbove ×
	// the mean, remove extra ones only when it is below CoolBelow × the
	// mean.
	HotAbove, CoolBelow float64
}

// Plan computes the next placement from the current one and says why each
// change was made. It never removes a unit's last ready replica before
// another is ready (make-before-break): a move adds a replica in one round
// and drops the old one in a later round, once the new one reports ready.
// The result equals Current (and no reasons are given) when nothing needs
// to change.
//
// Plan keeps per-node counts, loads and unit sets and per-unit replica
// lists, so a round costs about units × nodes for placing units afresh and
// units + moves × (nodes + units per node) otherwise: DeepSeek-V3's 14,848
// units are placed on 256 nodes well within a controller epoch.
func Plan(in Input) (Map, []string) {
	p := newPlanner(in)
	held := slices.ContainsFunc(in.Nodes, func(n NodeState) bool { return n.Held })
	moves := 0
	if !held {
		moves = p.cool(in.MaxMoves)
		moves += p.hot(in.MaxMoves - moves)
	}
	p.repair()
	p.drain()
	if !held {
		p.balance(in.MaxMoves - moves)
		p.trim()
	}
	return p.result(), p.reasons
}

// planner is one round of Plan. Nodes and units are numbered: nodes in
// Input order, units in Input.Units order (the order every pass visits
// them, and the tie-break wherever several units would do).
type planner struct {
	in       Input
	replicas int // max(1, in.Replicas)

	nodes    []*NodeState
	nodeIdx  map[string]int
	eligible []int // nodes that may take new units, by ID

	keys     []string  // unit → UnitKey
	unitLoad []float64 // unit → routing load
	on       [][]int   // unit → the nodes holding it, oldest first
	want     map[string]int
	extras   int // Σ over units of want − replicas

	count []int              // node → replicas it holds
	load  []float64          // node → expected load (unit loads split over replicas)
	holds []map[int]struct{} // node → the units it holds
	// open orders the eligible nodes with room by what place prefers:
	// fewest units, then least load, then ID (rank).
	open   nodeHeap
	rank   []int // node → its place among the eligible by ID; -1 if not eligible
	popped []int // place's scratch

	reasons []string
}

func newPlanner(in Input) *planner {
	p := &planner{in: in, replicas: max(1, in.Replicas), nodeIdx: make(map[string]int, len(in.Nodes)), want: map[string]int{}}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		p.nodeIdx[n.ID] = i
		p.nodes = append(p.nodes, n)
		if !n.Draining && !n.Held {
			p.eligible = append(p.eligible, i)
		}
	}
	sort.Slice(p.eligible, func(a, b int) bool { return p.nodes[p.eligible[a]].ID < p.nodes[p.eligible[b]].ID })
	p.rank = make([]int, len(p.nodes))
	for i := range p.rank {
		p.rank[i] = -1
	}
	for r, n := range p.eligible {
		p.rank[n] = r
	}
	p.open = nodeHeap{p: p, pos: make([]int, len(p.nodes))}
	for i := range p.open.pos {
		p.open.pos[i] = -1
	}
	p.count = make([]int, len(p.nodes))
	p.load = make([]float64, len(p.nodes))
	p.holds = make([]map[int]struct{}, len(p.nodes))
	for i := range p.holds {
		p.holds[i] = map[int]struct{}{}
	}
	for k, w := range in.Current.Want {
		if w > p.replicas {
			p.want[k] = w
		}
	}
	p.keys = make([]string, len(in.Units))
	p.unitLoad = make([]float64, len(in.Units))
	p.on = make([][]int, len(in.Units))
	for u, unit := range in.Units {
		key := UnitKey(unit)
		p.keys[u] = key
		p.unitLoad[u] = in.Load[key]
		p.extras += p.wantOf(u) - p.replicas
		// Replicas on nodes that are gone are dropped at once.
		var on []int
		for _, id := range in.Current.Units[key] {
			if n, ok := p.nodeIdx[id]; ok {
				on = append(on, n)
			} else {
				p.note("unit %s: dropped from %s (node gone)", key, id)
			}
		}
		p.set(u, on)
	}
	for _, n := range p.eligible {
		p.reindex(n)
	}
	return p
}

// result is the placement the round arrived at.
func (p *planner) result() Map {
	next := Map{Epoch: p.in.Current.Epoch, Units: make(map[string][]string, len(p.keys))}
	for u, on := range p.on {
		if len(on) == 0 {
			continue
		}
		ids := make([]string, len(on))
		for i, n := range on {
			ids[i] = p.nodes[n].ID
		}
		next.Units[p.keys[u]] = ids
	}
	if len(p.want) > 0 {
		next.Want = p.want
	}
	if len(p.reasons) > 0 {
		next.Epoch++
	}
	return next
}

func (p *planner) note(format string, a ...any) {
	p.reasons = append(p.reasons, fmt.Sprintf(format, a...))
}

// set replaces unit u's replicas with on (which it keeps), keeping the
// per-node indexes.
func (p *planner) set(u int, on []int) {
	old := p.on[u]
	if len(old) > 0 {
		share := p.unitLoad[u] / float64(len(old))
		for _, n := range old {
			p.count[n]--
			p.load[n] -= share
			delete(p.holds[n], u)
			if p.count[n] == 0 {
				p.load[n] = 0 // no rounding residue on an empty node
			}
		}
	}
	p.on[u] = on
	if len(on) > 0 {
		share := p.unitLoad[u] / float64(len(on))
		for _, n := range on {
			p.count[n]++
			p.load[n] += share
			p.holds[n][u] = struct{}{}
		}
	}
	for _, n := range old {
		p.reindex(n)
	}
	for _, n := range on {
		p.reindex(n)
	}
}

// reindex puts node n in its place in open after its count or load
// changed: in it if eligible and not full, out of it otherwise.
func (p *planner) reindex(n int) {
	in := p.open.pos[n] >= 0
	switch want := p.rank[n] >= 0 && !p.full(n); {
	case want && in:
		heap.Fix(&p.open, p.open.pos[n])
	case want:
		heap.Push(&p.open, n)
	case in:
		heap.Remove(&p.open, p.open.pos[n])
	}
}

// nodeHeap is a min-heap of node indexes in place's order.
type nodeHeap struct {
	p   *planner
	h   []int
	pos []int // node → index in h, or -1
}

func (h *nodeHeap) Len() int { return len(h.h) }
func (h *nodeHeap) Less(i, j int) bool {
	a, b, p := h.h[i], h.h[j], h.p
	if p.count[a] != p.count[b] {
		return p.count[a] < p.count[b]
	}
	if p.load[a] != p.load[b] {
		return p.load[a] < p.load[b]
	}
	return p.rank[a] < p.rank[b]
}
func (h *nodeHeap) Swap(i, j int) {
	h.h[i], h.h[j] = h.h[j], h.h[i]
	h.pos[h.h[i]], h.pos[h.h[j]] = i, j
}
func (h *nodeHeap) Push(x any) {
	n := x.(int)
	h.pos[n] = len(h.h)
	h.h = append(h.h, n)
}
func (h *nodeHeap) Pop() any {
	n := h.h[len(h.h)-1]
	h.h = h.h[:len(h.h)-1]
	h.pos[n] = -1
	return n
}

func (p *planner) add(u, n int) { p.set(u, append(slices.Clone(p.on[u]), n)) }

func (p *planner) remove(u, n int) {
	p.set(u, slices.DeleteFunc(slices.Clone(p.on[u]), func(x int) bool { return x == n }))
}

func (p *planner) id(n int) string { return p.nodes[n].ID }

func (p *planner) full(n int) bool { return p.nodes[n].Units > 0 && p.count[n] >= p.nodes[n].Units }

// place adds a replica of unit u on the eligible node with room that holds
// the fewest units (then least load, then ID), and reports the node: the
// first node of open that does not hold u already.
func (p *planner) place(u int) (int, bool) {
	best := -1
	p.popped = p.popped[:0]
	for p.open.Len() > 0 {
		n := heap.Pop(&p.open).(int)
		p.popped = append(p.popped, n)
		if !slices.Contains(p.on[u], n) {
			best = n
			break
		}
	}
	for _, n := range p.popped {
		heap.Push(&p.open, n)
	}
	if best < 0 {
		return 0, false
	}
	p.add(u, best)
	return best, true
}

// wantOf is how many replicas unit u should have: the base, or more if hot.
func (p *planner) wantOf(u int) int { return max(p.replicas, p.want[p.keys[u]]) }

// setWant records that unit u should have w replicas (w > the base) or
// the base (w = 0).
func (p *planner) setWant(u, w int) {
	p.extras -= p.wantOf(u) - p.replicas
	if w > p.replicas {
		p.want[p.keys[u]] = w
	} else {
		delete(p.want, p.keys[u])
	}
	p.extras += p.wantOf(u) - p.replicas
}

// active counts a unit's replicas that are not draining.
func (p *planner) active(u int) int {
	c := 0
	for _, n := range p.on[u] {
		if !p.nodes[n].Draining {
			c++
		}
	}
	return c
}

// ready reports whether node n has unit u loaded.
func (p *planner) ready(n, u int) bool { return p.nodes[n].Ready[p.keys[u]] }

// repair gives every unit the replicas it should have on nodes that are
// not draining.
func (p *planner) repair() {
	for u := range p.keys {
		for p.active(u) < p.wantOf(u) {
			n, ok := p.place(u)
			if !ok {
				break
			}
			// The reason of every unit of an initial placement: no Sprintf.
			p.reasons = append(p.reasons, "unit "+p.keys[u]+": replica added on "+p.id(n)+" (below "+strconv.Itoa(p.wantOf(u))+" replicas)")
		}
	}
}

// drain drops replicas on draining nodes once another replica is ready.
func (p *planner) drain() {
	for u := range p.keys {
		for _, n := range slices.Clone(p.on[u]) {
			if !p.nodes[n].Draining {
				continue
			}
			others := 0
			for _, o := range p.on[u] {
				if o != n && !p.nodes[o].Draining && p.ready(o, u) {
					others++
				}
			}
			if others > 0 {
				p.remove(u, n)
				p.note("unit %s: dropped from draining %s (replica ready elsewhere)", p.keys[u], p.id(n))
			}
		}
	}
}

// imbalance is the max over mean of the eligible nodes' expected loads,
// with the busiest node (the first by ID among equals).
func (p *planner) imbalance() (float64, int) {
	var sum, mx float64
	hot := -1
	for _, n := range p.eligible {
		l := p.load[n]
		sum += l
		if hot < 0 || l > mx {
			mx, hot = l, n
		}
	}
	if sum == 0 || len(p.eligible) < 2 {
		return 0, -1
	}
	return mx / (sum / float64(len(p.eligible))), hot
}

// hot raises the replica count of the hottest unit (load per replica) on
// the busiest node while that node is above HotAbove × the mean — DeepSeek's
// EPLB idea: replicate what is hot and let the split per replica even out
// the nodes. repair then places the new replicas.
func (p *planner) hot(budget int) int {
	done := 0
	for done < budget && p.extras < p.in.ExtraReplicas && p.in.HotAbove > 0 {
		imb, hotNode := p.imbalance()
		if imb <= p.in.HotAbove {
			break
		}
		best, bestLoad := -1, 0.0
		for u := range p.holds[hotNode] {
			if p.wantOf(u) >= len(p.eligible) {
				continue
			}
			l := p.unitLoad[u] / float64(len(p.on[u]))
			if l > bestLoad || (l == bestLoad && best >= 0 && u < best) {
				best, bestLoad = u, l
			}
		}
		if best < 0 {
			break
		}
		n, ok := p.place(best)
		if !ok {
			break
		}
		p.setWant(best, len(p.on[best]))
		p.note("unit %s: hot replica added on %s (node %s at %.2f× the mean load)", p.keys[best], p.id(n), p.id(hotNode), imb)
		done++
	}
	return done
}

// cool removes the extra replicas of a unit when the nodes would be even
// without them: the expected imbalance with only the unit's first (oldest,
// ready) base replicas must be below CoolBelow. Adding happens above
// HotAbove, so between the two thresholds nothing changes (hysteresis).
func (p *planner) cool(budget int) int {
	if budget <= 0 || p.in.HotAbove == 0 {
		return 0
	}
	type hotUnit struct {
		u    int
		key  string
		load float64
	}
	var units []hotUnit
	unitOf := make(map[string]int, len(p.want))
	for u, key := range p.keys {
		if _, ok := p.want[key]; ok {
			unitOf[key] = u
		}
	}
	for key := range p.want {
		if u, ok := unitOf[key]; ok {
			units = append(units, hotUnit{u, key, p.unitLoad[u] / float64(p.wantOf(u))})
		}
	}
	sort.Slice(units, func(i, j int) bool {
		return units[i].load < units[j].load || (units[i].load == units[j].load && units[i].key < units[j].key)
	})
	done := 0
	for _, h := range units {
		if done >= budget {
			break
		}
		on := p.on[h.u]
		keep := on[:min(len(on), p.replicas)]
		readyKept := false
		for _, n := range keep {
			readyKept = readyKept || p.ready(n, h.u)
		}
		if !readyKept {
			continue
		}
		p.set(h.u, slices.Clone(keep))
		imb, _ := p.imbalance()
		if imb >= p.in.CoolBelow {
			p.set(h.u, on) // still needed
			continue
		}
		p.setWant(h.u, 0)
		dropped := make([]string, 0, len(on)-len(keep))
		for _, n := range on[len(keep):] {
			dropped = append(dropped, p.id(n))
		}
		p.note("unit %s: hot replicas on %v dropped (load has cooled; nodes at %.2f× the mean without them)", h.key, dropped, imb)
		done++
	}
	return done
}

// balance moves units from the node holding most to the node holding
// fewest (one that joined, say) by adding a replica there; trim drops the
// old one in a later round, once the new one is ready.
func (p *planner) balance(budget int) int {
	done := 0
	for done < budget && len(p.eligible) >= 2 {
		most, fewest := p.eligible[0], -1
		for _, n := range p.eligible {
			if p.count[n] > p.count[most] {
				most = n
			}
			if !p.full(n) && (fewest < 0 || p.count[n] < p.count[fewest]) {
				fewest = n
			}
		}
		if fewest < 0 || p.count[most]-p.count[fewest] <= 1 {
			break
		}
		// The first unit (in unit order) on most, not on fewest, with the
		// replicas it should have.
		move := -1
		for u := range p.holds[most] {
			if (move < 0 || u < move) && !slices.Contains(p.on[u], fewest) && len(p.on[u]) == p.wantOf(u) {
				move = u
			}
		}
		if move < 0 {
			break
		}
		p.add(move, fewest)
		p.note("unit %s: moving from %s to %s (rebalance)", p.keys[move], p.id(most), p.id(fewest))
		done++
	}
	return done
}

// trim drops surplus replicas (beyond what a unit should have) once more
// than that many are ready, taking the one on the node holding the most
// units: the old side of a finished move, or a hot replica no longer wanted.
func (p *planner) trim() {
	for u := range p.keys {
		for len(p.on[u]) > p.wantOf(u) {
			ready := 0
			for _, n := range p.on[u] {
				if p.ready(n, u) {
					ready++
				}
			}
			if ready <= p.wantOf(u) {
				break // a new replica is still loading: keep the old one
			}
			victim := -1
			for _, n := range p.on[u] {
				if p.ready(n, u) && (victim < 0 || p.count[n] > p.count[victim]) {
					victim = n
				}
			}
			p.remove(u, victim)
			p.note("unit %s: dropped from %s (surplus replica)", p.keys[u], p.id(victim))
		}
	}
}
