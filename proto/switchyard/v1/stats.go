package switchyardv1

import "github.com/switchyard-llm/switchyard/pkg/routingstats"

// SetCounts writes routing counts into the response.
func (r *StatsResponse) SetCounts(c routingstats.Counts) {
	r.Layers, r.Experts = uint32(c.Layers), uint32(c.Experts)
	r.LayerTokens = append(r.LayerTokens[:0], c.Tokens...)
	r.ExpertTokens, r.GateMass = r.ExpertTokens[:0], r.GateMass[:0]
	for l := range c.Layers {
		r.ExpertTokens = append(r.ExpertTokens, c.ExpertTokens[l]...)
		r.GateMass = append(r.GateMass, c.GateMass[l]...)
	}
	r.Pairs = r.Pairs[:0]
	for k, v := range c.Pairs {
		p := routingstats.PairOf(k)
		r.Pairs = append(r.Pairs, &ExpertPair{Layer: uint32(p.Layer), A: uint32(p.A), B: uint32(p.B), Tokens: v})
	}
	r.Nodes = r.Nodes[:0]
	for id, n := range c.Nodes {
		r.Nodes = append(r.Nodes, &NodeDispatch{NodeId: id, Calls: n.Calls, Rows: n.Rows, BytesSent: n.BytesSent,
			BytesReceived: n.BytesReceived, Errors: n.Errors, Retries: n.Retries, LatencyBuckets: n.Latency})
	}
	r.Generated, r.Steps = c.Generated, c.Steps
}

// Counts reads the routing counts of the response; malformed sizes are
// ignored rather than trusted.
func (r *StatsResponse) Counts() routingstats.Counts {
	L, E := int(r.Layers), int(r.Experts)
	if L > 1<<12 || E > 1<<12 || len(r.LayerTokens) != L || len(r.ExpertTokens) != L*E || len(r.GateMass) != L*E {
		return routingstats.NewCounts(0, 0)
	}
	c := routingstats.NewCounts(L, E)
	copy(c.Tokens, r.LayerTokens)
	for l := range L {
		copy(c.ExpertTokens[l], r.ExpertTokens[l*E:(l+1)*E])
		copy(c.GateMass[l], r.GateMass[l*E:(l+1)*E])
	}
	for _, p := range r.Pairs {
		c.Pairs[routingstats.PairKey(int(p.Layer), int(p.A), int(p.B))] += p.Tokens
	}
	for _, n := range r.Nodes {
		nc := &routingstats.NodeCounts{Calls: n.Calls, Rows: n.Rows, BytesSent: n.BytesSent, BytesReceived: n.BytesReceived,
			Errors: n.Errors, Retries: n.Retries, Latency: make([]uint64, len(routingstats.LatencyBounds)+1)}
		copy(nc.Latency, n.LatencyBuckets)
		c.Nodes[n.NodeId] = nc
	}
	c.Generated, c.Steps = r.Generated, r.Steps
	return c
}
