// Package placementtool implements `switchyard placement show|drain|history`
// over the cluster's etcd records.
package placementtool

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// Show prints the current epoch: every unit's nodes, each marked ready or
// loading, and the nodes with their state.
func Show(ctx context.Context, s *placement.Store, w io.Writer) error {
	m, err := s.GetPlacement(ctx)
	if err != nil {
		return err
	}
	nodes, err := placement.List[placement.Node](ctx, s, s.NodesPrefix())
	if err != nil {
		return err
	}
	status, err := placement.List[placement.Status](ctx, s, s.StatusPrefix())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "placement epoch %d, %d units\n\n", m.Epoch, len(m.Units))
	keys := make([]model.Unit, 0, len(m.Units))
	for k := range m.Units {
		if u, err := placement.ParseUnitKey(k); err == nil {
			keys = append(keys, u)
		}
	}
	slices.SortFunc(keys, func(a, b model.Unit) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return a.Expert - b.Expert
	})
	for _, u := range keys {
		k := placement.UnitKey(u)
		var parts []string
		for _, n := range m.Units[k] {
			state := "loading"
			if slices.Contains(status[n].Ready, k) {
				state = "ready"
			}
			if _, ok := nodes[n]; !ok {
				state = "gone"
			}
			parts = append(parts, n+" ("+state+")")
		}
		fmt.Fprintf(w, "%-8s %s\n", "L"+fmt.Sprint(u.Layer)+"/E"+fmt.Sprint(u.Expert), strings.Join(parts, ", "))
	}
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintf(w, "\n%-12s %-22s %6s %s\n", "node", "address", "ready", "state")
	for _, id := range ids {
		state := "serving"
		if nodes[id].Draining {
			state = "draining"
		}
		fmt.Fprintf(w, "%-12s %-22s %6d %s\n", id, nodes[id].Addr, len(status[id].Ready), state)
	}
	return nil
}

// Drain asks node id to drain: the controller moves its units away and
// the node exits once nothing is placed on it.
func Drain(ctx context.Context, s *placement.Store, id string) error {
	nodes, err := placement.List[placement.Node](ctx, s, s.NodesPrefix())
	if err != nil {
		return err
	}
	if _, ok := nodes[id]; !ok {
		known := make([]string, 0, len(nodes))
		for n := range nodes {
			known = append(known, n)
		}
		sort.Strings(known)
		return fmt.Errorf("placement: no expert node %q is registered (nodes: %s)", id, strings.Join(known, ", "))
	}
	return s.Put(ctx, s.Drain(id), true, 0)
}

// History prints the last n placement changes with their reasons.
func History(ctx context.Context, s *placement.Store, w io.Writer, n int) error {
	hist, err := placement.List[placement.Change](ctx, s, s.HistoryPrefix())
	if err != nil {
		return err
	}
	changes := make([]placement.Change, 0, len(hist))
	for _, c := range hist {
		changes = append(changes, c)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Epoch < changes[j].Epoch })
	if len(changes) > n {
		changes = changes[len(changes)-n:]
	}
	for _, c := range changes {
		fmt.Fprintf(w, "epoch %d  %s  by %s\n", c.Epoch, c.Time.Format("2006-01-02 15:04:05Z"), c.By)
		for _, r := range c.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
	}
	return nil
}
