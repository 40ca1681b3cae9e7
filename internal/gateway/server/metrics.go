package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tritongate/tritongate/internal/gateway/pool"
)

// metrics are the gateway's Prometheus series.
type metrics struct {
	requests   *prometheus.CounterVec   // model, version, pool, code
	duration   *prometheus.HistogramVec // model, pool
	inFlight   prometheus.Gauge
	retries    *prometheus.CounterVec // model, pool, code
	budgetOut  *prometheus.CounterVec // model
	choices    *prometheus.CounterVec // model, version, how
	shadow     *prometheus.CounterVec // model, result
	shadowAbs  *prometheus.HistogramVec
	shadowRel  *prometheus.HistogramVec
	reloads    *prometheus.CounterVec // result
	lastReload prometheus.Gauge
	invalid    *prometheus.CounterVec // reason
	pool       *pool.Metrics
}

func newMetrics(reg prometheus.Registerer) *metrics {
	diffBuckets := []float64{0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_requests_total",
			Help: "Inference requests by model, version served (\"latest\" when not chosen), pool and gRPC code."}, []string{"model", "version", "pool", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_request_duration_seconds",
			Help:    "Inference request latency through the gateway, retries included.",
			Buckets: []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}}, []string{"model", "pool"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_in_flight_requests", Help: "Inference requests being handled."}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_retries_total",
			Help: "Retries made, by model, pool and the code of the attempt that failed."}, []string{"model", "pool", "code"}),
		budgetOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_retry_budget_exhausted_total",
			Help: "Retries not made because the retry budget was spent."}, []string{"model"}),
		choices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_route_choices_total",
			Help: "Version choices by model, version and how it was chosen (request, pin, sticky, split, default)."}, []string{"model", "version", "how"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_shadow_requests_total",
			Help: "Shadow copies by model and result: match, mismatch, error, dropped (no free slot), skipped_size."}, []string{"model", "result"}),
		shadowAbs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_shadow_max_abs_diff",
			Help: "Largest absolute difference between primary and shadow outputs, per compared request.", Buckets: diffBuckets}, []string{"model"}),
		shadowRel: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_shadow_max_rel_diff",
			Help: "Largest relative difference between primary and shadow outputs, per compared request.", Buckets: diffBuckets}, []string{"model"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_config_reloads_total",
			Help: "Configuration reloads by result (ok, error)."}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully."}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_invalid_requests_total",
			Help: "Requests refused before routing, by reason (malformed, unknown_model)."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.inFlight, m.retries, m.budgetOut, m.choices, m.shadow, m.shadowAbs, m.shadowRel, m.reloads, m.lastReload, m.invalid)
	}
	m.pool = pool.NewMetrics(reg)
	return m
}
