package placement

// The planner as it was before it kept indexes (commit 9fef07a): every
// count and load a scan of the whole placement, quadratic in units. It is
// kept, verbatim but for its names, as the oracle the indexed planner must
// agree with (plan_test.go).

import (
	"fmt"
	"slices"
	"sort"
)

// refPlan computes the next placement from the current one and says why each
// change was made. It never removes a unit's last ready replica before
// another is ready (make-before-break): a move adds a replica in one round
// and drops the old one in a later round, once the new one reports ready.
// The result equals Current (and no reasons are given) when nothing needs
// to change.
func refPlan(in Input) (Map, []string) {
	p := &refPlanner{in: in, next: Map{Epoch: in.Current.Epoch, Units: map[string][]string{}, Want: map[string]int{}}, live: map[string]*NodeState{}}
	for k, w := range in.Current.Want {
		if w > max(1, in.Replicas) {
			p.next.Want[k] = w
		}
	}
	for i := range in.Nodes {
		p.live[in.Nodes[i].ID] = &in.Nodes[i]
	}
	for _, u := range in.Units {
		key := UnitKey(u)
		// Replicas on nodes that are gone are dropped at once.
		for _, n := range in.Current.Units[key] {
			if p.live[n] != nil {
				p.next.Units[key] = append(p.next.Units[key], n)
			} else {
				p.note("unit %s: dropped from %s (node gone)", key, n)
			}
		}
		p.keys = append(p.keys, key)
	}
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
	if len(p.next.Want) == 0 {
		p.next.Want = nil
	}
	if len(p.reasons) > 0 {
		p.next.Epoch++
	}
	return p.next, p.reasons
}

type refPlanner struct {
	in      Input
	next    Map
	live    map[string]*NodeState
	keys    []string
	reasons []string
}

func (p *refPlanner) note(format string, a ...any) {
	p.reasons = append(p.reasons, fmt.Sprintf(format, a...))
}

// eligible are the nodes that may take new units, sorted by ID.
func (p *refPlanner) eligible() []*NodeState {
	var out []*NodeState
	for _, n := range p.in.Nodes {
		if !n.Draining && !n.Held {
			out = append(out, p.live[n.ID])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (p *refPlanner) count(node string) int {
	c := 0
	for _, on := range p.next.Units {
		if slices.Contains(on, node) {
			c++
		}
	}
	return c
}

func (p *refPlanner) load(key string) float64 { return p.in.Load[key] }

// nodeLoad is a node's expected load: each unit's load split evenly over
// its replicas.
func (p *refPlanner) nodeLoad(node string) float64 {
	var l float64
	for key, on := range p.next.Units {
		if slices.Contains(on, node) {
			l += p.load(key) / float64(len(on))
		}
	}
	return l
}

// place adds a replica of key on the eligible node with room that holds
// the fewest units (then least load, then ID), and reports the node.
func (p *refPlanner) place(key string) (string, bool) {
	best := ""
	for _, n := range p.eligible() {
		if slices.Contains(p.next.Units[key], n.ID) || (n.Units > 0 && p.count(n.ID) >= n.Units) {
			continue
		}
		if best == "" || p.count(n.ID) < p.count(best) ||
			(p.count(n.ID) == p.count(best) && p.nodeLoad(n.ID) < p.nodeLoad(best)) {
			best = n.ID
		}
	}
	if best == "" {
		return "", false
	}
	p.next.Units[key] = append(p.next.Units[key], best)
	return best, true
}

func (p *refPlanner) replicas() int { return max(1, p.in.Replicas) }

// want is how many replicas key should have: the base, or more if hot.
func (p *refPlanner) want(key string) int { return max(p.replicas(), p.next.Want[key]) }

// active counts a unit's replicas that are not draining.
func (p *refPlanner) active(key string) int {
	c := 0
	for _, n := range p.next.Units[key] {
		if !p.live[n].Draining {
			c++
		}
	}
	return c
}

// repair gives every unit the replicas it should have on nodes that are
// not draining.
func (p *refPlanner) repair() {
	for _, key := range p.keys {
		for p.active(key) < p.want(key) {
			n, ok := p.place(key)
			if !ok {
				break
			}
			p.note("unit %s: replica added on %s (below %d replicas)", key, n, p.want(key))
		}
	}
}

// ready reports whether node has unit key loaded.
func (p *refPlanner) ready(node, key string) bool { return p.live[node].Ready[key] }

// drain drops replicas on draining nodes once another replica is ready.
func (p *refPlanner) drain() {
	for _, key := range p.keys {
		for _, n := range slices.Clone(p.next.Units[key]) {
			if !p.live[n].Draining {
				continue
			}
			others := 0
			for _, o := range p.next.Units[key] {
				if o != n && !p.live[o].Draining && p.ready(o, key) {
					others++
				}
			}
			if others > 0 {
				p.next.Units[key] = slices.DeleteFunc(p.next.Units[key], func(x string) bool { return x == n })
				p.note("unit %s: dropped from draining %s (replica ready elsewhere)", key, n)
			}
		}
	}
}

// imbalance is the max over mean of expected node loads.
func (p *refPlanner) imbalance() (float64, string, string) {
	var sum, mx float64
	mn := -1.0
	hot, cold := "", ""
	nodes := p.eligible()
	for _, n := range nodes {
		l := p.nodeLoad(n.ID)
		sum += l
		if l > mx || hot == "" {
			mx, hot = l, n.ID
		}
		if mn < 0 || l < mn {
			mn, cold = l, n.ID
		}
	}
	if sum == 0 || len(nodes) < 2 {
		return 0, "", ""
	}
	return mx / (sum / float64(len(nodes))), hot, cold
}

func (p *refPlanner) extras() int {
	n := 0
	for _, key := range p.keys {
		n += p.want(key) - p.replicas()
	}
	return n
}

// hot raises the replica count of the hottest unit (load per replica) on
// the busiest node while that node is above HotAbove × the mean — DeepSeek's
// EPLB idea: replicate what is hot and let the split per replica even out
// the nodes. repair then places the new replicas.
func (p *refPlanner) hot(budget int) int {
	done := 0
	for done < budget && p.extras() < p.in.ExtraReplicas && p.in.HotAbove > 0 {
		imb, hotNode, _ := p.imbalance()
		if imb <= p.in.HotAbove {
			break
		}
		best, bestLoad := "", 0.0
		for _, key := range p.keys {
			on := p.next.Units[key]
			if !slices.Contains(on, hotNode) || p.want(key) >= len(p.eligible()) {
				continue
			}
			if l := p.load(key) / float64(len(on)); l > bestLoad {
				best, bestLoad = key, l
			}
		}
		if best == "" {
			break
		}
		n, ok := p.place(best)
		if !ok {
			break
		}
		p.next.Want[best] = len(p.next.Units[best])
		p.note("unit %s: hot replica added on %s (node %s at %.2f× the mean load)", best, n, hotNode, imb)
		done++
	}
	return done
}

// cool removes the extra replicas of a unit when the nodes would be even
// without them: the expected imbalance with only the unit's first (oldest,
// ready) base replicas must be below CoolBelow. Adding happens above
// HotAbove, so between the two thresholds nothing changes (hysteresis).
func (p *refPlanner) cool(budget int) int {
	if budget <= 0 || p.in.HotAbove == 0 {
		return 0
	}
	keys := make([]string, 0, len(p.next.Want))
	for key := range p.next.Want {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool {
		li, lj := p.load(keys[i])/float64(p.want(keys[i])), p.load(keys[j])/float64(p.want(keys[j]))
		return li < lj || (li == lj && keys[i] < keys[j])
	})
	done := 0
	for _, key := range keys {
		if done >= budget {
			break
		}
		on := p.next.Units[key]
		keep := on[:min(len(on), p.replicas())]
		readyKept := false
		for _, n := range keep {
			readyKept = readyKept || p.ready(n, key)
		}
		if !readyKept {
			continue
		}
		p.next.Units[key] = keep
		imb, _, _ := p.imbalance()
		if imb >= p.in.CoolBelow {
			p.next.Units[key] = on // still needed
			continue
		}
		delete(p.next.Want, key)
		p.note("unit %s: hot replicas on %v dropped (load has cooled; nodes at %.2f× the mean without them)", key, on[len(keep):], imb)
		done++
	}
	return done
}

// balance moves units from the node holding most to the node holding
// fewest (one that joined, say) by adding a replica there; trim drops the
// old one in a later round, once the new one is ready.
func (p *refPlanner) balance(budget int) int {
	done := 0
	for done < budget {
		nodes := p.eligible()
		if len(nodes) < 2 {
			break
		}
		most, fewest := nodes[0].ID, ""
		for _, n := range nodes {
			if p.count(n.ID) > p.count(most) {
				most = n.ID
			}
			full := n.Units > 0 && p.count(n.ID) >= n.Units
			if !full && (fewest == "" || p.count(n.ID) < p.count(fewest)) {
				fewest = n.ID
			}
		}
		if fewest == "" || p.count(most)-p.count(fewest) <= 1 {
			break
		}
		moved := false
		for _, key := range p.keys {
			on := p.next.Units[key]
			if slices.Contains(on, most) && !slices.Contains(on, fewest) && len(on) == p.want(key) {
				p.next.Units[key] = append(on, fewest)
				p.note("unit %s: moving from %s to %s (rebalance)", key, most, fewest)
				moved = true
				break
			}
		}
		if !moved {
			break
		}
		done++
	}
	return done
}

// trim drops surplus replicas (beyond what a unit should have) once more
// than that many are ready, taking the one on the node holding the most
// units: the old side of a finished move, or a hot replica no longer wanted.
func (p *refPlanner) trim() {
	for _, key := range p.keys {
		for len(p.next.Units[key]) > p.want(key) {
			on := p.next.Units[key]
			ready := 0
			for _, n := range on {
				if p.ready(n, key) {
					ready++
				}
			}
			if ready <= p.want(key) {
				break // a new replica is still loading: keep the old one
			}
			victim := ""
			for _, n := range on {
				if p.ready(n, key) && (victim == "" || p.count(n) > p.count(victim)) {
					victim = n
				}
			}
			p.next.Units[key] = slices.DeleteFunc(on, func(x string) bool { return x == victim })
			p.note("unit %s: dropped from %s (surplus replica)", key, victim)
		}
	}
}
