package tritonlite

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are Triton's per-model inference metrics, with Triton's names and
// labels, so dashboards and alerts written for Triton work unchanged.
type metrics struct {
	success      *prometheus.CounterVec
	failure      *prometheus.CounterVec
	count        *prometheus.CounterVec
	execCount    *prometheus.CounterVec
	requestUS    *prometheus.CounterVec
	queueUS      *prometheus.CounterVec
	inputUS      *prometheus.CounterVec
	inferUS      *prometheus.CounterVec
	outputUS     *prometheus.CounterVec
	pending      *prometheus.GaugeVec
	loadFailures *prometheus.CounterVec
	modelsLoaded prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, loaded func() float64) *metrics {
	labels := []string{"model", "version"}
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(append([]string{}, labels...), extra...))
	}
	m := &metrics{
		success:   counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
		failure:   counter("nv_inference_request_failure", "Number of failed inference requests, all batch sizes", "reason"),
		count:     counter("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
		execCount: counter("nv_inference_exec_count", "Number of model executions performed (does not include cached requests)"),
		requestUS: counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes cached requests)"),
		queueUS:   counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds (includes cached requests)"),
		inputUS:   counter("nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds (does not include cached requests)"),
		inferUS:   counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds (does not include cached requests)"),
		outputUS:  counter("nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds (does not include cached requests)"),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nv_inference_pending_request_count",
			Help: "Instantaneous number of pending requests awaiting execution per-model.",
		}, labels),
		loadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tritonlite_model_load_failures_total",
			Help: "Model version loads that failed, by model.",
		}, []string{"model"}),
		modelsLoaded: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tritonlite_model_versions_ready",
			Help: "Model versions in READY state.",
		}, loaded),
	}
	if reg != nil {
		reg.MustRegister(m.success, m.failure, m.count, m.execCount, m.requestUS, m.queueUS, m.inputUS, m.inferUS, m.outputUS, m.pending, m.loadFailures, m.modelsLoaded)
	}
	return m
}

// forget drops the series of an unloaded model version, as Triton does.
func (m *metrics) forget(model, version string) {
	l := prometheus.Labels{"model": model, "version": version}
	for _, c := range []*prometheus.CounterVec{m.success, m.count, m.execCount, m.requestUS, m.queueUS, m.inputUS, m.inferUS, m.outputUS} {
		c.Delete(l)
	}
	m.failure.DeletePartialMatch(l)
	m.pending.Delete(l)
}
