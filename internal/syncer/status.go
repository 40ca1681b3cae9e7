package syncer

import (
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Status is what /status shows: the pool, the catalog in effect, and every
// model's versions with their state and last error.
type Status struct {
	Pool          string `json:"pool"`
	Catalog       string `json:"catalog"`
	CatalogDigest string `json:"catalog_digest"`
	// Ready: every model of the pool has a version in service. InSync: the
	// last reconcile put everything in place.
	Ready         bool                    `json:"ready"`
	InSync        bool                    `json:"in_sync"`
	LastReconcile time.Time               `json:"last_reconcile"`
	LastDuration  string                  `json:"last_duration"`
	Models        map[string]*ModelStatus `json:"models"`
}

// ModelStatus is one model.
type ModelStatus struct {
	// State: syncing, ready, error.
	State    string                   `json:"state"`
	Wanted   []int64                  `json:"wanted"`
	Versions map[int64]*VersionStatus `json:"versions"`
	Error    string                   `json:"error,omitempty"`
	LastSync time.Time                `json:"last_sync"`
}

// VersionStatus is one version: describing, downloading, verifying,
// published, loading, warming up, routable, or error.
type VersionStatus struct {
	State   string    `json:"state"`
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated"`
}

// Status returns a copy of the current status.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.status
	out.Models = make(map[string]*ModelStatus, len(s.status.Models))
	for n, m := range s.status.Models {
		c := *m
		c.Wanted = append([]int64(nil), m.Wanted...)
		c.Versions = make(map[int64]*VersionStatus, len(m.Versions))
		for v, vs := range m.Versions {
			vc := *vs
			c.Versions[v] = &vc
		}
		out.Models[n] = &c
	}
	return out
}

func (s *Syncer) modelStatus(name string) *ModelStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.status.Models[name]
	if ms == nil {
		ms = &ModelStatus{Versions: map[int64]*VersionStatus{}}
		s.status.Models[name] = ms
	}
	ms.State = "syncing"
	return ms
}

func (s *Syncer) setWanted(ms *ModelStatus, want []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms.Wanted = append([]int64(nil), want...)
	sort.Slice(ms.Wanted, func(i, j int) bool { return ms.Wanted[i] < ms.Wanted[j] })
}

func (s *Syncer) setVersion(model string, v int64, state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.status.Models[model]
	if ms == nil {
		return
	}
	vs := ms.Versions[v]
	if vs == nil {
		vs = &VersionStatus{}
		ms.Versions[v] = vs
	}
	vs.State, vs.Updated, vs.Error = state, time.Now().UTC(), ""
	if err != nil {
		vs.Error = err.Error()
	}
	if state == "routable" {
		s.m.routable.WithLabelValues(model, itoa(v)).Set(1)
	}
}

func (s *Syncer) forgetVersion(model string, v int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms := s.status.Models[model]; ms != nil {
		delete(ms.Versions, v)
	}
	s.m.routable.DeleteLabelValues(model, itoa(v))
}

type metrics struct {
	reconciles       *prometheus.CounterVec
	reconcileSeconds prometheus.Histogram
	lastSuccess      prometheus.Gauge
	errors           *prometheus.CounterVec
	bytes            prometheus.Counter
	fetchSeconds     prometheus.Histogram
	published        prometheus.Counter
	removed          prometheus.Counter
	routable         *prometheus.GaugeVec
	catalogReads     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncer_reconciles_total",
			Help: "Reconciles of the pool with the catalog, by result (ok, error)."}, []string{"result"}),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncer_reconcile_duration_seconds",
			Help: "How long a reconcile took.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncer_last_success_timestamp_seconds",
			Help: "When every model of the pool was last in place."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncer_errors_total",
			Help: "Failures by model and stage (source, resolve, describe, fetch, verify, config, load, ready, warmup, unload)."}, []string{"model", "stage"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "syncer_fetched_bytes_total",
			Help: "Bytes downloaded from model sources."}),
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncer_fetch_duration_seconds",
			Help: "How long fetching one version took.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "syncer_versions_published_total",
			Help: "Versions published into the repository."}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{Name: "syncer_versions_removed_total",
			Help: "Versions (and models) unloaded and deleted."}),
		routable: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncer_version_routable",
			Help: "1 for each model version loaded, ready and warmed up."}, []string{"model", "version"}),
		catalogReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncer_catalog_reads_total",
			Help: "Catalog reads that found a change, by result (ok; error: unreadable or invalid, the last good one stays)."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.reconciles, m.reconcileSeconds, m.lastSuccess, m.errors, m.bytes, m.fetchSeconds, m.published, m.removed, m.routable, m.catalogReads)
	}
	return m
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
