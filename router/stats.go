package router

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard-llm/switchyard/pkg/routingstats"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

var windows = map[string]uint32{"1m": 60, "5m": 300, "all": 0}

// routingStats merges every coordinator's routing counts for the window
// and adds what etcd knows: nodes, their health and the placement.
func (r *Router) routingStats(w http.ResponseWriter, req *http.Request) {
	window := req.URL.Query().Get("window")
	if window == "" {
		window = "1m"
	}
	secs, ok := windows[window]
	if !ok {
		badRequest(w, "window", "window %q: want 1m, 5m or all", window)
		return
	}
	rep, err := r.report(req.Context(), window, secs)
	if err != nil {
		writeRPCError(w, err)
		return
	}
	writeJSON(w, rep)
}

// report builds the routing report of a window.
func (r *Router) report(ctx context.Context, window string, secs uint32) (*routingstats.Report, error) {
	r.mu.RLock()
	coords := make([]*coordConn, 0, len(r.coords))
	for _, c := range r.coords {
		coords = append(coords, c)
	}
	info, nodes, status, pmap := r.model, r.nodes, r.status, r.pmap
	r.mu.RUnlock()

	resps := make([]*pb.StatsResponse, len(coords))
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range coords {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(gctx, 5*time.Second)
			defer cancel()
			resp, err := c.client.Stats(cctx, &pb.StatsRequest{WindowSeconds: secs})
			if err != nil {
				r.log.Warn("coordinator stats", "coordinator", c.id, "err", err)
				return nil // a coordinator that cannot answer is left out
			}
			resps[i] = resp
			return nil
		})
	}
	g.Wait()

	merged := routingstats.NewCounts(0, 0)
	if info != nil {
		merged = routingstats.NewCounts(info.Layers, info.Experts)
		merged.MoELayers = info.MoELayers
	}
	series := map[int64]uint64{}
	var uptime float64
	var kvs []routingstats.KVCacheReport
	n := 0
	for _, resp := range resps {
		if resp == nil {
			continue
		}
		n++
		merged.Merge(resp.Counts())
		for _, p := range resp.Series {
			series[p.Unix] += p.Generated
		}
		uptime = max(uptime, resp.UptimeSeconds)
		if kv := resp.KvCache; kv != nil {
			kr := routingstats.KVCacheReport{Coordinator: resp.CoordinatorId, BlocksTotal: kv.BlocksTotal, BlocksUsed: kv.BlocksUsed,
				BlocksCached: kv.BlocksCached, BlockBytes: kv.BlockBytes, HitTokens: kv.PrefixHitTokens, Evictions: kv.Evictions,
				Queue: kv.Queue, Preemptions: kv.Preemptions}
			if kv.BlocksTotal > kv.BlocksUsed {
				kr.BlocksFree = kv.BlocksTotal - kv.BlocksUsed
			}
			if kv.PrefixLookupTokens > 0 {
				kr.HitRate = float64(kv.PrefixHitTokens) / float64(kv.PrefixLookupTokens)
			}
			kvs = append(kvs, kr)
		}
	}
	span := float64(secs)
	if secs == 0 || uptime < span {
		span = uptime
	}
	rep := routingstats.Build(merged, window, span)
	rep.Totals.Coordinators = n
	slices.SortFunc(kvs, func(a, b routingstats.KVCacheReport) int { return strings.Compare(a.Coordinator, b.Coordinator) })
	rep.KVCache = kvs
	for t, v := range series {
		rep.Series = append(rep.Series, routingstats.Point{Unix: t, Generated: v})
	}
	sort.Slice(rep.Series, func(i, j int) bool { return rep.Series[i].Unix < rep.Series[j].Unix })
	if info != nil {
		c := info.Census
		rep.Model = &routingstats.ModelSummary{Name: info.Name, Layers: info.Layers, Experts: info.Experts, ExpertsUsed: info.ExpertsUsed,
			TotalParams: c.Total, ActiveParams: c.ActivePerToken, RoutedParams: c.Routed, SharedParams: c.Shared, EmbeddingParam: c.Embeddings}
	}
	if pmap.Units != nil {
		rep.Placement = &routingstats.PlacementView{Epoch: pmap.Epoch, Units: pmap.Units}
	}
	// Nodes: every registered node, plus any the counts or placement name.
	byID := map[string]*routingstats.NodeReport{}
	for i := range rep.Nodes {
		byID[rep.Nodes[i].ID] = &rep.Nodes[i]
	}
	ids := []string{}
	for id := range nodes {
		ids = append(ids, id)
	}
	for _, on := range pmap.Units {
		ids = append(ids, on...)
	}
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make([]routingstats.NodeReport, 0, len(ids))
	for _, id := range ids {
		nr := routingstats.NodeReport{ID: id}
		if c, ok := byID[id]; ok {
			nr = *c
		}
		nd, registered := nodes[id]
		nr.Address = nd.Addr
		st := status[id]
		nr.Units = len(st.Ready)
		placed := 0
		for _, on := range pmap.Units {
			if slices.Contains(on, id) {
				placed++
			}
		}
		switch {
		case !registered:
			nr.Health = "down"
		case st.Epoch == pmap.Epoch && nr.Units >= placed:
			nr.Health = "ready"
		default:
			nr.Health = "loading"
		}
		out = append(out, nr)
	}
	rep.Nodes = out
	return &rep, nil
}
