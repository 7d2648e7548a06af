package coordinator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/switchyard-llm/switchyard/pkg/membership"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// historyKept is how many placement changes are kept in etcd.
const historyKept = 100

// errLeadershipLost ends a controller whose election session ended.
var errLeadershipLost = errors.New("leadership lost: election session ended")

// lead campaigns for leadership until ctx ends; the leader writes the
// model record and runs the placement controller. Losing or regaining
// leadership touches nothing but the controller: generations go on.
func (c *Coordinator) lead(ctx context.Context, store *placement.Store, members *membership.Members) {
	for ctx.Err() == nil {
		if err := c.campaign(ctx, store, members); err != nil && ctx.Err() == nil {
			c.log.Warn("leader election", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// campaign wins the election on a session of its own, then runs the
// controller until the session ends. Every write of the leader is fenced
// on its election key (placement.Fence) and runs under a context that
// ends with the session.
func (c *Coordinator) campaign(ctx context.Context, store *placement.Store, members *membership.Members) error {
	sess, err := concurrency.NewSession(store.C, concurrency.WithTTL(5), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer sess.Close()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	el := concurrency.NewElection(sess, store.Election())
	if err := el.Campaign(lctx, c.cfg.ID); err != nil {
		if sessionEnded(sess) {
			return errLeadershipLost
		}
		return fmt.Errorf("campaign: %w", err)
	}
	fence := placement.Fence{Key: el.Key(), Rev: el.Rev()}
	c.log.Info("elected leader", "election_key", fence.Key, "revision", fence.Rev)
	if err := store.PutFenced(lctx, fence, store.Model(), c.info); err != nil {
		return fmt.Errorf("write model record: %w", err)
	}
	ctl := &controller{c: c, store: store, members: members, fence: fence,
		absence: placement.Absence{Grace: c.cfg.ReregisterGrace, Hold: c.cfg.MassLossHold}}
	err = ctl.run(lctx)
	if sessionEnded(sess) || errors.Is(err, placement.ErrNotLeader) {
		return fmt.Errorf("%w (%v)", errLeadershipLost, err)
	}
	return err
}

func sessionEnded(sess *concurrency.Session) bool {
	select {
	case <-sess.Done():
		return true
	default:
		return false
	}
}

// controller is the placement controller of one leadership term: every
// ControlInterval it reads the nodes, their status, drain requests and
// recent routing load, plans, and writes a new placement epoch when
// something should change. It is owned by one goroutine (run).
type controller struct {
	c       *Coordinator
	store   *placement.Store
	members *membership.Members
	fence   placement.Fence
	absence placement.Absence

	holding bool            // a mass loss holds the placement (logged once)
	waiting string          // why a rebuild waits (logged once)
	kept    map[string]bool // nodes kept without a registration (logged once)
}

// run plans until ctx ends (the session ended, or the coordinator stops)
// or a fenced write finds the leadership gone.
func (ctl *controller) run(ctx context.Context) error {
	t := time.NewTicker(ctl.c.cfg.ControlInterval)
	defer t.Stop()
	for {
		err := ctl.round(ctx)
		switch {
		case errors.Is(err, placement.ErrNotLeader):
			return err
		case err != nil && ctx.Err() == nil:
			ctl.c.log.Warn("placement controller", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// clusterView is what one round reads from etcd.
type clusterView struct {
	nodes  map[string]placement.Node
	status map[string]placement.Status
	drains map[string]bool
	cur    placement.Map
	found  bool // cur was read (not absent)
}

func (ctl *controller) read(ctx context.Context) (clusterView, error) {
	s := ctl.store
	var v clusterView
	var err error
	if v.nodes, err = placement.List[placement.Node](ctx, s, s.NodesPrefix()); err != nil {
		return v, err
	}
	if v.status, err = placement.List[placement.Status](ctx, s, s.StatusPrefix()); err != nil {
		return v, err
	}
	if v.drains, err = placement.List[bool](ctx, s, s.DrainPrefix()); err != nil {
		return v, err
	}
	switch v.cur, err = s.GetPlacement(ctx); {
	case errors.Is(err, placement.ErrNotFound):
	case err != nil:
		return v, err
	default:
		v.found = true
	}
	var m placement.ModelInfo
	switch err := s.Get(ctx, s.Model(), &m); {
	case errors.Is(err, placement.ErrNotFound) || (err == nil && m.Digest != ctl.c.info.Digest):
		// etcd lost the record (or holds another model's): write ours.
		if err := s.PutFenced(ctx, ctl.fence, s.Model(), ctl.c.info); err != nil {
			return v, fmt.Errorf("write model record: %w", err)
		}
		ctl.c.log.Warn("model record was missing or another model's; written again", "found", m.Digest)
	case err != nil:
		return v, err
	}
	return v, nil
}

func (ctl *controller) round(ctx context.Context) error {
	c := ctl.c
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := ctl.read(rctx)
	if err != nil {
		return err
	}
	units := c.info.Units()
	// The highest epoch anyone has seen: what nodes report and what this
	// coordinator serves on. A new epoch goes above it, so that it is never
	// taken for an old one.
	floor := c.dispatch.lastPlacement().Epoch
	for _, st := range v.status {
		floor = max(floor, st.Epoch)
	}
	var reasons []string
	cur := v.cur
	switch {
	case !v.found:
		rebuilt, why, ok := ctl.rebuild(v, floor)
		if !ok {
			return nil
		}
		cur, reasons = rebuilt, why
	default:
		adopted, why, fresh := ctl.adopt(v.cur)
		cur, reasons = adopted, why
		if fresh && len(v.nodes) < c.cfg.MinNodes {
			return nil
		}
	}

	// Which nodes of the placement are gone: only those gone in both views,
	// and not in the grace after an etcd outage (placement.Absence).
	sightings := map[string]placement.Sighting{}
	for _, on := range cur.Units {
		for _, id := range on {
			if _, seen := sightings[id]; seen {
				continue
			}
			_, registered := v.nodes[id]
			s := placement.Sighting{Registered: registered}
			if !registered && ctl.members != nil {
				s.Alive = ctl.members.Alive(id)
				s.Healthy = s.Alive && c.dispatch.healthy(rctx, id)
			}
			sightings[id] = s
		}
	}
	verdict := ctl.absence.Judge(time.Now(), ctl.store.EtcdState(), sightings)
	switch {
	case verdict.Holding && !ctl.holding:
		c.log.Warn("placement held", "why", verdict.Why)
	case !verdict.Holding && ctl.holding:
		c.log.Warn("placement hold ended", "why", verdict.Why)
	}
	ctl.holding = verdict.Holding
	if verdict.Holding {
		return nil
	}
	if verdict.Why != "" {
		reasons = append(reasons, verdict.Why)
	}

	in := placement.Input{Units: units, Replicas: c.cfg.Replicas, Current: cur,
		MaxMoves: c.cfg.MaxMoves, ExtraReplicas: c.cfg.HotReplicas, HotAbove: c.cfg.HotAbove, CoolBelow: c.cfg.CoolBelow}
	unitBytes, _ := c.file.UnitBytes(units[0])
	for _, id := range slices.Sorted(maps.Keys(v.nodes)) {
		n := v.nodes[id]
		ns := placement.NodeState{ID: id, Draining: n.Draining || v.drains[id], Ready: map[string]bool{}}
		if n.CapacityBytes > 0 && unitBytes > 0 {
			ns.Units = int(n.CapacityBytes / unitBytes)
		}
		if st, ok := v.status[id]; ok && st.Digest == c.info.Digest {
			for _, u := range st.Ready {
				ns.Ready[u] = true
			}
		} else if _, ready, ok := c.dispatch.view(id); ok {
			ns.Ready = ready // its status lapsed with its lease: what it last reported
		}
		in.Nodes = append(in.Nodes, ns)
	}
	for _, id := range slices.Sorted(maps.Keys(verdict.Kept)) {
		ns := placement.NodeState{ID: id, Held: true, Ready: map[string]bool{}}
		if _, ready, ok := c.dispatch.view(id); ok && ready != nil {
			ns.Ready = ready
		}
		in.Nodes = append(in.Nodes, ns)
		if !ctl.kept[id] {
			c.log.Warn("node has no registration but keeps its units", "node", id, "why", verdict.Kept[id])
		}
	}
	ctl.kept = map[string]bool{}
	for id := range verdict.Kept {
		ctl.kept[id] = true
	}
	// Routing load of the last minute, when there is enough to go by.
	w := c.stats.Window(time.Minute)
	var total uint64
	for _, t := range w.Tokens {
		total += t
	}
	if total >= 256 {
		in.Load = map[string]float64{}
		for _, u := range units {
			in.Load[placement.UnitKey(u)] = float64(w.ExpertTokens[u.Layer][u.Expert])
		}
	}
	next, planned := placement.Plan(in)
	reasons = append(reasons, planned...)
	if len(reasons) == 0 {
		return nil
	}
	next.Digest = c.info.Digest
	next.Epoch = max(next.Epoch, v.cur.Epoch+1, floor+1)
	if len(cur.Units) == 0 {
		reasons = append([]string{fmt.Sprintf("initial placement: %d units over %d nodes, %d replicas each",
			len(next.Units), len(in.Nodes), max(1, c.cfg.Replicas))}, reasons...)
	}
	change := placement.Change{Epoch: next.Epoch, Time: time.Now().UTC(), By: c.cfg.ID, Reasons: reasons}
	if err := ctl.store.Publish(rctx, ctl.fence, next, change, historyKept); err != nil {
		return err
	}
	c.log.Info("placement changed", "epoch", next.Epoch, "changes", len(reasons), "first", reasons[0])
	return nil
}

// adopt takes over the placement in etcd, whichever leader wrote it at
// whatever epoch, if it is for this model: units it lacks are placed by
// the plan as repairs. A placement for another model (another digest, or
// units this model does not have) is replaced by a fresh one (fresh).
func (ctl *controller) adopt(cur placement.Map) (placement.Map, []string, bool) {
	c := ctl.c
	valid := map[string]bool{}
	for _, u := range c.info.Units() {
		valid[placement.UnitKey(u)] = true
	}
	var foreign []string
	for k := range cur.Units {
		if !valid[k] {
			foreign = append(foreign, k)
		}
	}
	switch {
	case cur.Digest != "" && cur.Digest != c.info.Digest:
		c.log.Warn("the placement is for another model; placing afresh", "digest", cur.Digest, "want", c.info.Digest)
		return placement.Map{Epoch: cur.Epoch}, []string{fmt.Sprintf("placing afresh: epoch %d was for model %s", cur.Epoch, cur.Digest)}, true
	case len(foreign) > 0:
		slices.Sort(foreign)
		c.log.Warn("the placement names units this model does not have; placing afresh", "units", foreign)
		return placement.Map{Epoch: cur.Epoch}, []string{fmt.Sprintf("placing afresh: epoch %d names units this model does not have (%v)", cur.Epoch, foreign)}, true
	}
	return cur, nil, len(cur.Units) == 0
}

// rebuild makes the placement when etcd has none. On a fresh cluster
// that is the initial placement (ok once MinNodes registered). When the
// cluster was serving — a node reports units, or this coordinator serves
// on a placement — etcd lost its data: the placement is rebuilt from what
// the nodes have loaded, at an epoch above every epoch seen, once every
// node of the last placement registered again or the re-register grace
// passed.
func (ctl *controller) rebuild(v clusterView, floor int64) (placement.Map, []string, bool) {
	c := ctl.c
	last := c.dispatch.lastPlacement()
	serving := last.Epoch > 0
	for _, st := range v.status {
		serving = serving || (st.Digest == c.info.Digest && (st.Epoch > 0 || len(st.Ready) > 0))
	}
	if !serving {
		return placement.Map{}, nil, len(v.nodes) >= c.cfg.MinNodes
	}
	// Wait for the nodes to come back, as long as the grace allows.
	var missing []string
	for _, id := range placedNodes(last) {
		if _, ok := v.status[id]; !ok {
			missing = append(missing, id)
		}
	}
	etcd := ctl.store.EtcdState()
	if len(missing) > 0 && (!etcd.Reachable || time.Since(etcd.Back) < c.cfg.ReregisterGrace) {
		if why := fmt.Sprint("rebuild:", missing); ctl.waiting != why {
			ctl.waiting = why
			c.log.Warn("etcd has no placement: waiting for nodes to report what they hold before rebuilding it", "missing", missing)
		}
		return placement.Map{}, nil, false
	}
	valid := map[string]bool{}
	for _, u := range c.info.Units() {
		valid[placement.UnitKey(u)] = true
	}
	m := placement.Map{Epoch: floor, Digest: c.info.Digest, Units: map[string][]string{}, Want: last.Want}
	held := 0
	for _, id := range slices.Sorted(maps.Keys(v.status)) {
		st := v.status[id]
		if st.Digest != c.info.Digest {
			continue
		}
		if _, ok := v.nodes[id]; !ok {
			continue
		}
		for _, u := range st.Ready {
			if valid[u] {
				m.Units[u] = append(m.Units[u], id)
				held++
			}
		}
	}
	why := fmt.Sprintf("recovered: etcd had no placement (it lost its data); rebuilt from what %d nodes report loaded: %d units, %d replicas, above epoch %d",
		len(v.status), len(m.Units), held, floor)
	c.log.Warn("rebuilding the placement etcd lost", "why", why)
	return m, []string{why}, true
}

// placedNodes lists the nodes m places units on, sorted.
func placedNodes(m placement.Map) []string {
	set := map[string]bool{}
	for _, on := range m.Units {
		for _, id := range on {
			set[id] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}
