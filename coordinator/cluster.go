package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-llm/switchyard/pkg/membership"
	"github.com/switchyard-llm/switchyard/pkg/placement"
)

// watchCluster keeps the dispatcher's view of the cluster until ctx ends,
// on goroutines counted in wg: the nodes, their status and the placement
// from etcd, and gossip's changes, which arrive on a goroutine of ours
// (membership.Members.Changed) rather than on memberlist's. updateHealth
// runs after each change and on a timer.
func (c *Coordinator) watchCluster(ctx context.Context, wg *sync.WaitGroup, store *placement.Store, members *membership.Members, updateHealth func()) {
	wg.Go(func() {
		placement.Watch(ctx, store, store.NodesPrefix(), func(nodes map[string]placement.Node) {
			c.dispatch.setNodes(nodes)
			var addrs []string
			for id, n := range nodes {
				if !members.Alive(id) {
					addrs = append(addrs, n.GossipAddr)
				}
			}
			if err := members.Join(addrs); err != nil {
				c.log.Debug("gossip join", "err", err)
			}
			updateHealth()
		})
	})
	wg.Go(func() {
		placement.Watch(ctx, store, store.StatusPrefix(), func(st map[string]placement.Status) {
			c.dispatch.setStatus(st)
			updateHealth()
		})
	})
	wg.Go(func() {
		placement.WatchPlacement(ctx, store, func(m placement.Map) {
			c.dispatch.setPlacement(m)
			updateHealth()
		})
	})
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-members.Changed():
				c.dispatch.membershipChanged()
				updateHealth()
			case <-t.C:
				updateHealth()
			}
		}
	})
}
