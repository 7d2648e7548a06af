package expertnode

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the expert node's Prometheus series.
type metrics struct {
	forwards *prometheus.CounterVec
	rows     prometheus.Counter
	latency  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	m := &metrics{
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_expert_forward_total",
			Help: "Forward calls by gRPC status code."}, []string{"code"}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_expert_forward_pairs_total",
			Help: "(token, expert) pairs computed."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchyard_expert_forward_seconds",
			Help: "Time to serve a Forward call.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}),
	}
	units := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_expert_units_loaded",
		Help: "Expert units loaded and served."}, func() float64 {
		n.mu.RLock()
		defer n.mu.RUnlock()
		return float64(len(n.local.Units()))
	})
	// Bytes read only grow: counters, so that rate() works on them.
	read := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_expert_model_bytes_read_total",
		Help: "Bytes of the model file, all its parts together, read so far."}, func() float64 { return float64(n.bytesRead()) })
	reg.MustRegister(m.forwards, m.rows, m.latency, units, read)
	for i, r := range n.read {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_expert_model_part_bytes_read_total",
			Help:        "Bytes read so far from each file of the model, by part from 1 (an unsplit model is part 1).",
			ConstLabels: prometheus.Labels{"part": strconv.Itoa(i + 1)}}, func() float64 { return float64(r.n.Load()) }))
	}
	return m
}
