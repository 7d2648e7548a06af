package coordinator

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-llm/switchyard/pkg/routingstats"
)

// metrics are the coordinator's Prometheus series. Label sets are bounded:
// per node and per layer; per (layer, expert) only when asked for.
type metrics struct {
	steps    prometheus.Counter
	tokens   *prometheus.CounterVec
	inFlight prometheus.Gauge
	dispatch *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, rec *routingstats.Recorder, perExpert bool) *metrics {
	m := &metrics{
		steps: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_coordinator_steps_total",
			Help: "Forward passes (scheduler steps)."}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_coordinator_tokens_total",
			Help: "Tokens by kind: prompt (admitted) or generated."}, []string{"kind"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_coordinator_in_flight_requests",
			Help: "Requests being generated."}),
		dispatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_coordinator_dispatch_seconds",
			Help: "Latency of Forward calls to expert nodes.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"node"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_coordinator_dispatch_errors_total",
			Help: "Failed Forward calls to expert nodes."}, []string{"node"}),
	}
	reg.MustRegister(m.steps, m.tokens, m.inFlight, m.dispatch, m.errors, &routingCollector{rec: rec, perExpert: perExpert})
	return m
}

func (m *metrics) call(node string, d time.Duration, failed bool) {
	m.dispatch.WithLabelValues(node).Observe(d.Seconds())
	if failed {
		m.errors.WithLabelValues(node).Inc()
	}
}

var (
	imbalanceDesc = prometheus.NewDesc("switchyard_coordinator_layer_imbalance",
		"Max over mean of expert loads in the last minute, per MoE layer.", []string{"layer"}, nil)
	entropyDesc = prometheus.NewDesc("switchyard_coordinator_layer_entropy_bits",
		"Routing entropy in the last minute, per MoE layer.", []string{"layer"}, nil)
	expertDesc = prometheus.NewDesc("switchyard_coordinator_expert_tokens",
		"Routing slots per expert in the last minute (only with per-expert metrics on).", []string{"layer", "expert"}, nil)
)

// routingCollector reads the routing recorder at scrape time.
type routingCollector struct {
	rec       *routingstats.Recorder
	perExpert bool
}

func (c *routingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- imbalanceDesc
	ch <- entropyDesc
	if c.perExpert {
		ch <- expertDesc
	}
}

func (c *routingCollector) Collect(ch chan<- prometheus.Metric) {
	w := c.rec.Window(time.Minute)
	for l := range w.Layers {
		if !w.MoELayer(l) {
			continue // dense: nothing is routed
		}
		layer := strconv.Itoa(l)
		ch <- prometheus.MustNewConstMetric(imbalanceDesc, prometheus.GaugeValue, routingstats.Imbalance(w.ExpertTokens[l]), layer)
		ch <- prometheus.MustNewConstMetric(entropyDesc, prometheus.GaugeValue, routingstats.Entropy(w.ExpertTokens[l]), layer)
		if c.perExpert {
			for e, v := range w.ExpertTokens[l] {
				ch <- prometheus.MustNewConstMetric(expertDesc, prometheus.GaugeValue, float64(v), layer, strconv.Itoa(e))
			}
		}
	}
}
