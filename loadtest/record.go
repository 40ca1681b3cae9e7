package loadtest

import (
	"sort"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"
)

// Latencies are recorded in microseconds, from 1 µs to 1 hour, with three
// significant digits.
const (
	histMin    = 1
	histMax    = int64(time.Hour / time.Microsecond)
	histDigits = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histDigits) }

// recorder collects results. Workers share it under a mutex: recording costs
// a few tens of nanoseconds, against tens of microseconds per gRPC call.
type recorder struct {
	mu      sync.Mutex
	start   time.Time // of the measurement
	window  time.Duration
	all     *agg
	models  []*agg // by workload index
	windows []*agg
	late    int64
	maxLag  time.Duration
}

// agg aggregates a set of results.
type agg struct {
	h      *hdr.Histogram
	ok     int64
	errors int64
	rows   int64
	codes  map[codes.Code]int64
}

func newAgg() *agg { return &agg{h: newHist(), codes: map[codes.Code]int64{}} }

func (a *agg) add(lat time.Duration, code codes.Code, rows int64) {
	us := lat.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	a.h.RecordValue(us)
	if code == codes.OK {
		a.ok++
		a.rows += rows
	} else {
		a.errors++
		a.codes[code]++
	}
}

func (a *agg) merge(b *agg) {
	a.h.Merge(b.h)
	a.ok += b.ok
	a.errors += b.errors
	a.rows += b.rows
	for c, n := range b.codes {
		a.codes[c] += n
	}
}

func newRecorder(start time.Time, window time.Duration, models int) *recorder {
	r := &recorder{start: start, window: window, all: newAgg()}
	for range models {
		r.models = append(r.models, newAgg())
	}
	return r
}

// record adds a result that completed at done.
func (r *recorder) record(model int, done time.Time, lat time.Duration, code codes.Code, rows int64) {
	w := int(done.Sub(r.start) / r.window)
	if w < 0 {
		w = 0
	}
	r.mu.Lock()
	for len(r.windows) <= w {
		r.windows = append(r.windows, newAgg())
	}
	r.windows[w].add(lat, code, rows)
	r.all.add(lat, code, rows)
	r.models[model].add(lat, code, rows)
	r.mu.Unlock()
}

// lateSend counts an open-loop request sent lag after its intended time.
func (r *recorder) lateSend(lag time.Duration) {
	r.mu.Lock()
	r.late++
	r.maxLag = max(r.maxLag, lag)
	r.mu.Unlock()
}

// Latency summarizes a latency distribution, in milliseconds.
type Latency struct {
	Min  float64 `json:"min_ms"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

func latencyOf(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Min: ms(h.Min()), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// Stats summarizes results over a period.
type Stats struct {
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	// Throughput is successful requests per second; Inferences counts rows.
	Throughput float64          `json:"throughput_rps"`
	Inferences float64          `json:"inferences_per_second"`
	ErrorRate  float64          `json:"error_rate"`
	Latency    Latency          `json:"latency"`
	Codes      map[string]int64 `json:"errors_by_code,omitempty"`
}

func statsOf(a *agg, seconds float64) Stats {
	s := Stats{Requests: a.ok + a.errors, OK: a.ok, Errors: a.errors, Seconds: seconds, Latency: latencyOf(a.h)}
	if seconds > 0 {
		s.Throughput = float64(a.ok) / seconds
		s.Inferences = float64(a.rows) / seconds
	}
	if s.Requests > 0 {
		s.ErrorRate = float64(a.errors) / float64(s.Requests)
	}
	if len(a.codes) > 0 {
		s.Codes = map[string]int64{}
		for c, n := range a.codes {
			s.Codes[c.String()] = n
		}
	}
	return s
}

// Window is the results that completed in one time window.
type Window struct {
	Start float64 `json:"start_s"`
	Stats
}

// Bucket is one step of a latency distribution: the latency at a percentile.
type Bucket struct {
	Percentile float64 `json:"percentile"`
	LatencyMS  float64 `json:"latency_ms"`
	Count      int64   `json:"count"`
}

// distribution lists the latency at percentiles, HdrHistogram style (finer
// towards the tail), for plots.
func distribution(h *hdr.Histogram) []Bucket {
	var out []Bucket
	for _, b := range h.CumulativeDistributionWithTicks(5) {
		out = append(out, Bucket{Percentile: b.Quantile, LatencyMS: float64(b.ValueAt) / 1000, Count: b.Count})
	}
	return out
}

func sortedCodes(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
