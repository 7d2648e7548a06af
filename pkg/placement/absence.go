package placement

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Sighting is what the controller sees, in one round, of a node the
// placement uses.
type Sighting struct {
	// Registered: its registration is in etcd (its lease is alive).
	Registered bool
	// Alive: memberlist gossip reports it alive.
	Alive bool
	// Healthy: its gRPC health service answers SERVING.
	Healthy bool
}

// Absence decides when a node that lost its registration is gone, so that
// its units may be placed elsewhere. A lapsed lease alone proves little:
// leases lapse together when etcd itself was away. A node is gone only
// when both views say so — its registration is missing and it is not
// both alive in gossip and healthy — and, after etcd was unreachable, only
// once nodes had Grace to register again. When more than half the nodes
// would go at once, the placement is held for Hold before they go.
//
// An Absence is owned by one goroutine (the placement controller's).
type Absence struct {
	Grace time.Duration // after etcd answers again
	Hold  time.Duration // on mass loss

	holdUntil time.Time // zero: not holding
}

// Verdict is one round's decision.
type Verdict struct {
	// Gone are the nodes whose units are dropped now, sorted.
	Gone []string
	// Kept are the nodes without a registration that keep their units
	// (they may take no new ones), with why.
	Kept map[string]string
	// Holding is set while a mass loss holds the placement: nothing
	// should be written. Why says why, and until when.
	Holding bool
	Why     string
}

// Judge decides, at now, which of the placement's nodes (by ID) are gone,
// given the store's view of etcd.
func (a *Absence) Judge(now time.Time, etcd EtcdState, nodes map[string]Sighting) Verdict {
	v := Verdict{Kept: map[string]string{}}
	var candidates []string
	graceEnds := etcd.Back.Add(a.Grace)
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		s := nodes[id]
		switch {
		case s.Registered:
		case s.Alive && s.Healthy:
			v.Kept[id] = "registration lapsed, but alive in gossip and healthy"
		case !etcd.Reachable:
			v.Kept[id] = "registration lapsed while etcd is unreachable"
		case !etcd.Back.IsZero() && now.Before(graceEnds):
			v.Kept[id] = fmt.Sprintf("registration lapsed; etcd answered again %v ago, nodes have until %s to register again",
				now.Sub(etcd.Back).Round(time.Millisecond), graceEnds.Format(time.TimeOnly))
		default:
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 || 2*len(candidates) <= len(nodes) {
		a.holdUntil = time.Time{}
		v.Gone = candidates
		return v
	}
	if a.holdUntil.IsZero() {
		a.holdUntil = now.Add(a.Hold)
	}
	if now.Before(a.holdUntil) {
		for _, id := range candidates {
			v.Kept[id] = "mass loss: placement held"
		}
		v.Holding = true
		v.Why = fmt.Sprintf("%d of %d nodes %v vanished at once: holding the placement until %s before treating them as failed",
			len(candidates), len(nodes), candidates, a.holdUntil.Format(time.TimeOnly))
		return v
	}
	v.Gone = candidates
	v.Why = fmt.Sprintf("%d of %d nodes %v vanished at once and did not come back within %v: repairing", len(candidates), len(nodes), candidates, a.Hold)
	return v
}
