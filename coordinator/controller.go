package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// historyKept is how many placement changes are kept in etcd.
const historyKept = 100

// control is the placement controller, run by the elected coordinator
// until its leadership ends: every ControlInterval it reads the nodes,
// their status, drain requests and recent routing load, plans, and writes
// a new placement epoch when something should change.
func (c *Coordinator) control(ctx context.Context, store *placement.Store, sess *concurrency.Session) error {
	t := time.NewTicker(c.cfg.ControlInterval)
	defer t.Stop()
	for {
		if err := c.controlRound(ctx, store); err != nil && ctx.Err() == nil {
			c.log.Warn("placement controller", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sess.Done():
			return errors.New("leadership lost: election session ended")
		case <-t.C:
		}
	}
}

func (c *Coordinator) controlRound(ctx context.Context, store *placement.Store) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := placement.List[placement.Node](rctx, store, store.NodesPrefix())
	if err != nil {
		return err
	}
	status, err := placement.List[placement.Status](rctx, store, store.StatusPrefix())
	if err != nil {
		return err
	}
	drains, err := placement.List[bool](rctx, store, store.DrainPrefix())
	if err != nil {
		return err
	}
	units := c.info.Units()
	var cur placement.Map
	switch err := store.Get(rctx, store.Placement(), &cur); {
	case errors.Is(err, placement.ErrNotFound):
		// No placement yet: the first is written once MinNodes registered.
		if len(nodes) < c.cfg.MinNodes {
			return nil
		}
	case err != nil:
		return err
	case len(cur.Units) != len(units):
		c.log.Warn("placement is for another model shape; placing afresh", "units", len(cur.Units))
		cur = placement.Map{Epoch: cur.Epoch}
	}
	unitBytes, _ := c.file.UnitBytes(units[0])
	in := placement.Input{Units: units, Replicas: c.cfg.Replicas, Current: cur,
		MaxMoves: c.cfg.MaxMoves, ExtraReplicas: c.cfg.HotReplicas, HotAbove: 1.25, CoolBelow: 1.1}
	for id, n := range nodes {
		ns := placement.NodeState{ID: id, Draining: n.Draining || drains[id], Ready: map[string]bool{}}
		if n.CapacityBytes > 0 && unitBytes > 0 {
			ns.Units = int(n.CapacityBytes / unitBytes)
		}
		if st, ok := status[id]; ok && st.Digest == c.info.Digest {
			for _, u := range st.Ready {
				ns.Ready[u] = true
			}
		}
		in.Nodes = append(in.Nodes, ns)
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
	next, reasons := placement.Plan(in)
	if len(reasons) == 0 {
		return nil
	}
	if len(cur.Units) == 0 {
		reasons = append([]string{fmt.Sprintf("initial placement: %d units over %d nodes, %d replicas each",
			len(next.Units), len(in.Nodes), max(1, c.cfg.Replicas))}, reasons...)
	}
	if err := store.Put(rctx, store.Placement(), next, 0); err != nil {
		return err
	}
	c.log.Info("placement changed", "epoch", next.Epoch, "changes", len(reasons), "first", reasons[0])
	change := placement.Change{Epoch: next.Epoch, Time: time.Now().UTC(), By: c.cfg.ID, Reasons: reasons}
	if err := store.Put(rctx, store.History(next.Epoch), change, 0); err != nil {
		return err
	}
	if next.Epoch > historyKept {
		store.C.Delete(rctx, store.History(next.Epoch-historyKept))
	}
	return nil
}
