package routingstats

import "sort"

// Report is the JSON document of GET /v1/routing/stats. Its schema is
// documented in the README.
type Report struct {
	Window        string         `json:"window"`         // "1m", "5m" or "all"
	WindowSeconds float64        `json:"window_seconds"` // the span the figures cover
	Model         *ModelSummary  `json:"model,omitempty"`
	Totals        Totals         `json:"totals"`
	Layers        []LayerReport  `json:"layers"`
	TopPairs      []PairCount    `json:"top_pairs"`
	Nodes         []NodeReport   `json:"nodes"`
	Placement     *PlacementView `json:"placement,omitempty"`
	Series        []Point        `json:"series"` // tokens generated per 5 s, last five minutes
	// KVCache is each coordinator's KV cache and queue, now.
	KVCache []KVCacheReport `json:"kv_cache,omitempty"`
}

// KVCacheReport is one coordinator's KV-cache pool, prefix cache and
// request queue.
type KVCacheReport struct {
	Coordinator  string  `json:"coordinator"`
	BlocksTotal  uint64  `json:"blocks_total"` // 0: no budget
	BlocksUsed   uint64  `json:"blocks_used"`
	BlocksCached uint64  `json:"blocks_cached"`
	BlocksFree   uint64  `json:"blocks_free"`
	BlockBytes   uint64  `json:"block_bytes"`
	HitRate      float64 `json:"prefix_hit_rate"` // prompt tokens served from the cache over those looked up
	HitTokens    uint64  `json:"prefix_hit_tokens"`
	Evictions    uint64  `json:"evictions"`
	Queue        uint32  `json:"queue"`
	Preemptions  uint64  `json:"preemptions"`
}

// ModelSummary names the model and its parameter census.
type ModelSummary struct {
	Name           string `json:"name"`
	Layers         int    `json:"layers"`
	Experts        int    `json:"experts"`
	ExpertsUsed    int    `json:"experts_used"`
	TotalParams    int64  `json:"total_params"`
	ActiveParams   int64  `json:"active_params_per_token"`
	RoutedParams   int64  `json:"routed_expert_params"`
	SharedParams   int64  `json:"shared_params"`
	EmbeddingParam int64  `json:"embedding_params"`
}

// Totals are whole-model figures of the window.
type Totals struct {
	Tokens          uint64  `json:"tokens"` // token positions through the model
	Generated       uint64  `json:"generated_tokens"`
	Steps           uint64  `json:"steps"`
	ExpertCalls     uint64  `json:"expert_calls"`
	TokensPerSecond float64 `json:"generated_tokens_per_second"`
	Coordinators    int     `json:"coordinators"`
	// NodeImbalance is the busiest expert node's rows over the mean rows
	// of the nodes that served any: how evenly placement spreads the load.
	NodeImbalance float64 `json:"node_imbalance"`
}

// LayerReport is one layer's routing. A dense layer (no routed experts)
// has Dense set and no experts.
type LayerReport struct {
	Layer     int            `json:"layer"`
	Dense     bool           `json:"dense,omitempty"`
	Tokens    uint64         `json:"tokens"`
	Imbalance float64        `json:"imbalance"` // max over mean of expert loads
	Entropy   float64        `json:"entropy"`   // bits; log2(experts) is uniform
	Experts   []ExpertReport `json:"experts"`
}

// ExpertReport is one expert's share of a layer.
type ExpertReport struct {
	Expert   int     `json:"expert"`
	Tokens   uint64  `json:"tokens"`
	Share    float64 `json:"share"`     // of the layer's routing slots
	GateMass float64 `json:"gate_mass"` // sum of the gate weights it got
}

// PairCount is how often two experts were chosen together.
type PairCount struct {
	Layer   int    `json:"layer"`
	Experts [2]int `json:"experts"`
	Tokens  uint64 `json:"tokens"`
}

// NodeReport is one expert node: its registration and dispatch figures.
type NodeReport struct {
	ID            string  `json:"id"`
	Address       string  `json:"address"`
	Units         int     `json:"units"`  // units ready on it
	Health        string  `json:"health"` // "ready", "loading" or "down"
	Calls         uint64  `json:"calls"`
	Rows          uint64  `json:"rows"`
	BytesSent     uint64  `json:"bytes_sent"`
	BytesReceived uint64  `json:"bytes_received"`
	LatencyP50    float64 `json:"latency_ms_p50"`
	LatencyP99    float64 `json:"latency_ms_p99"`
	Errors        uint64  `json:"errors"`
	Retries       uint64  `json:"retries"`
}

// PlacementView is the placement epoch and where each unit is.
type PlacementView struct {
	Epoch int64               `json:"epoch"`
	Units map[string][]string `json:"units"` // "layer/expert" → node IDs
}

// Build derives the report's routing figures from counts; the caller
// fills Model, node registrations, Placement and Series.
func Build(c Counts, window string, seconds float64) Report {
	r := Report{Window: window, WindowSeconds: seconds, Layers: []LayerReport{}, Nodes: []NodeReport{}, Series: []Point{}}
	r.Totals.Generated, r.Totals.Steps = c.Generated, c.Steps
	if seconds > 0 {
		r.Totals.TokensPerSecond = float64(c.Generated) / seconds
	}
	for l := range c.Layers {
		if !c.MoELayer(l) {
			r.Layers = append(r.Layers, LayerReport{Layer: l, Dense: true, Experts: []ExpertReport{}})
			continue
		}
		slots := uint64(0)
		for _, v := range c.ExpertTokens[l] {
			slots += v
		}
		lr := LayerReport{Layer: l, Tokens: c.Tokens[l], Imbalance: Imbalance(c.ExpertTokens[l]), Entropy: Entropy(c.ExpertTokens[l])}
		for e := range c.Experts {
			er := ExpertReport{Expert: e, Tokens: c.ExpertTokens[l][e], GateMass: c.GateMass[l][e]}
			if slots > 0 {
				er.Share = float64(er.Tokens) / float64(slots)
			}
			lr.Experts = append(lr.Experts, er)
		}
		r.Layers = append(r.Layers, lr)
		r.Totals.Tokens = max(r.Totals.Tokens, c.Tokens[l])
	}
	r.TopPairs = c.TopPairs(10)
	ids := make([]string, 0, len(c.Nodes))
	for id := range c.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var rows []uint64
	for _, id := range ids {
		n := c.Nodes[id]
		rows = append(rows, n.Rows)
		r.Totals.ExpertCalls += n.Calls
		r.Nodes = append(r.Nodes, NodeReport{ID: id, Calls: n.Calls, Rows: n.Rows, BytesSent: n.BytesSent, BytesReceived: n.BytesReceived,
			LatencyP50: Percentile(n.Latency, 0.5), LatencyP99: Percentile(n.Latency, 0.99), Errors: n.Errors, Retries: n.Retries})
	}
	r.Totals.NodeImbalance = Imbalance(rows)
	return r
}
