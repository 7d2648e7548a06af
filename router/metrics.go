package router

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the router's Prometheus series; labels are bounded (endpoint
// and status code).
type metrics struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	ttft     prometheus.Histogram
	itl      prometheus.Histogram
	inFlight prometheus.Gauge
	resumed  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_router_requests_total",
			Help: "API requests by endpoint and HTTP status."}, []string{"endpoint", "code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_router_tokens_total",
			Help: "Tokens served, by kind (prompt or completion)."}, []string{"kind"}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchyard_router_time_to_first_token_seconds",
			Help: "Time from request to first generated token.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		itl: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchyard_router_inter_token_latency_seconds",
			Help: "Time between consecutive generated tokens of a stream.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_router_in_flight_requests",
			Help: "Generation requests in progress."}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_router_resumed_requests_total",
			Help: "Requests resumed on another coordinator after theirs was lost."}),
	}
	reg.MustRegister(m.requests, m.tokens, m.ttft, m.itl, m.inFlight, m.resumed)
	return m
}

// statusRecorder captures the status code a handler writes.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// count wraps an API handler to count its requests by status.
func (m *metrics) count(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	}
}
