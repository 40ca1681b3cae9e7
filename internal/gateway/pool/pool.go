// Package pool manages one pool of Triton backends for the gateway: the
// endpoints (a static list or DNS names re-resolved), one gRPC connection
// each, health checking (ServerReady and which model versions are READY),
// a picker rebuilt on every change (power of two choices on load), a circuit
// breaker per backend (gobreaker), outlier ejection, and the retry budget.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/gateway/config"
	"github.com/tritongate/tritongate/internal/gateway/h2"
)

// Metrics are the pool's Prometheus series (registered by the caller).
type Metrics struct {
	Ready       *prometheus.GaugeVec   // pool, endpoint
	Breaker     *prometheus.GaugeVec   // pool, endpoint: 0 closed, 1 half-open, 2 open
	Transitions *prometheus.CounterVec // pool, endpoint, to
	Ejected     *prometheus.GaugeVec   // pool, endpoint
	Ejections   *prometheus.CounterVec // pool, endpoint
	InFlight    *prometheus.GaugeVec   // pool
	DialErrors  *prometheus.CounterVec // pool, endpoint
}

// NewMetrics creates the series and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateway_backend_ready",
			Help: "1 when the backend answered its last health check as ready."}, []string{"pool", "endpoint"}),
		Breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateway_breaker_state",
			Help: "Circuit breaker state per backend: 0 closed, 1 half-open, 2 open."}, []string{"pool", "endpoint"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_breaker_transitions_total",
			Help: "Circuit breaker state changes per backend, by new state."}, []string{"pool", "endpoint", "to"}),
		Ejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateway_backend_ejected",
			Help: "1 while the backend is ejected as an outlier."}, []string{"pool", "endpoint"}),
		Ejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_backend_ejections_total",
			Help: "Outlier ejections per backend."}, []string{"pool", "endpoint"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateway_backend_in_flight_requests",
			Help: "Requests in flight to a pool's backends."}, []string{"pool"}),
		DialErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_backend_dial_errors_total",
			Help: "Failed attempts to open a backend's data connection."}, []string{"pool", "endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.Ready, m.Breaker, m.Transitions, m.Ejected, m.Ejections, m.InFlight, m.DialErrors)
	}
	return m
}

// Forget deletes the series of a backend that left its pool.
func (m *Metrics) Forget(pool, endpoint string) {
	l := prometheus.Labels{"pool": pool, "endpoint": endpoint}
	m.Ready.DeletePartialMatch(l)
	m.Breaker.DeletePartialMatch(l)
	m.Transitions.DeletePartialMatch(l)
	m.Ejected.DeletePartialMatch(l)
	m.Ejections.DeletePartialMatch(l)
	m.DialErrors.DeletePartialMatch(l)
}

// Options are a pool's dependencies.
type Options struct {
	Config config.Pool
	// Dial opens the connection to one backend.
	Dial func(addr string) (*grpc.ClientConn, error)
	// DialData, when set, opens each backend's data-plane connection (the
	// gateway's lean HTTP/2 client for inference calls), kept open and
	// redialled by the endpoint.
	DialData func(ctx context.Context, addr string) (*h2.ClientConn, error)
	// LookupHost resolves DNS pools (default: net.DefaultResolver).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	Metrics    *Metrics
	Logger     *slog.Logger
}

// ErrNoBackend means no backend of the pool can take the request.
var ErrNoBackend = errors.New("no ready backend")

// Pool is a set of backends serving the same models.
type Pool struct {
	name string
	cfg  config.Pool
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	endpoints map[string]*Endpoint
	resolved  atomic.Bool // DNS answered at least once (static pools: always)
	retired   atomic.Bool
	picker    atomic.Pointer[picker]
	inflight  atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // discovery, health and outlier loops
}

// New starts a pool: its endpoints are dialled and health-checked in the
// background; until an endpoint passes a health check it takes no traffic.
func New(opts Options) (*Pool, error) {
	if opts.LookupHost == nil {
		opts.LookupHost = net.DefaultResolver.LookupHost
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	p := &Pool{name: opts.Config.Name, cfg: opts.Config, opts: opts, log: opts.Logger.With("pool", opts.Config.Name), endpoints: map[string]*Endpoint{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.picker.Store(&picker{byKey: map[string][]*Endpoint{}, changed: make(chan struct{})})
	if opts.Config.DNS != "" {
		p.wg.Add(1)
		go p.discover()
	} else {
		if err := p.setEndpoints(opts.Config.Endpoints); err != nil {
			p.Close()
			return nil, err
		}
		p.resolved.Store(true)
	}
	p.wg.Add(1)
	go p.outlierLoop()
	return p, nil
}

// WaitChecked waits until the pool knows its backends (DNS answered) and each
// has finished its first health check and data-connection dial, or ctx ends. The gateway waits for
// this before a new pool takes traffic, so that a reload never routes to a
// pool that has not yet found its ready backends.
func (p *Pool) WaitChecked(ctx context.Context) error {
	for {
		if p.resolved.Load() && p.allChecked() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (p *Pool) allChecked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.endpoints {
		if e.state.Load() == nil || (p.opts.DialData != nil && !e.dataTried.Load()) {
			return false
		}
	}
	return true
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Config is the configuration the pool was built from.
func (p *Pool) Config() config.Pool { return p.cfg }

// Close stops the pool and closes its connections.
func (p *Pool) Close() {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, e := range p.endpoints {
		e.close()
		delete(p.endpoints, addr)
	}
}

// Retire marks a pool a reload replaced: it keeps serving the requests
// already on it but stops health checking (and updating the series a new
// pool of the same name now owns) until Close.
func (p *Pool) Retire() { p.retired.Store(true) }

// InFlight is the number of requests in flight to the pool.
func (p *Pool) InFlight() int64 { return p.inflight.Load() }

// Endpoints lists the pool's backends.
func (p *Pool) Endpoints() []*Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Endpoint, 0, len(p.endpoints))
	for _, e := range p.endpoints {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// discover re-resolves the DNS name every Refresh.
func (p *Pool) discover() {
	defer p.wg.Done()
	host, port, _ := config.SplitDNS(p.cfg.DNS)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		if p.retired.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		addrs, err := p.opts.LookupHost(ctx, host)
		cancel()
		if err != nil {
			p.log.Warn("resolving pool DNS name", "name", host, "error", err)
		} else {
			eps := make([]string, len(addrs))
			for i, a := range addrs {
				eps[i] = net.JoinHostPort(a, port)
			}
			if err := p.setEndpoints(eps); err != nil {
				p.log.Warn("updating endpoints", "error", err)
			}
			p.resolved.Store(true)
		}
		t.Reset(p.cfg.Refresh.Duration)
	}
}

// setEndpoints makes the endpoint set equal to addrs: new ones are dialled
// and start health checking, gone ones are closed once idle.
func (p *Pool) setEndpoints(addrs []string) error {
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for a := range want {
		if _, ok := p.endpoints[a]; ok {
			continue
		}
		conn, err := p.opts.Dial(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("pool %s: dialling %s: %w", p.name, a, err))
			continue
		}
		e := newEndpoint(p, a, conn)
		p.endpoints[a] = e
		p.wg.Add(1)
		go e.healthLoop()
		if p.opts.DialData != nil {
			p.wg.Add(1)
			go e.keepData()
		}
		p.log.Info("backend added", "endpoint", a)
	}
	changed := false
	for a, e := range p.endpoints {
		if !want[a] {
			delete(p.endpoints, a)
			changed = true
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				e.retire()
			}()
			p.opts.Metrics.Forget(p.name, a)
			p.log.Info("backend removed", "endpoint", a)
		}
	}
	if changed {
		p.rebuild()
	}
	return errors.Join(errs...)
}

// picker is the read-only routing view, rebuilt on every endpoint or health
// change: for each "model" and "model/version" key, the backends that have
// it READY.
type picker struct {
	byKey   map[string][]*Endpoint
	changed chan struct{} // closed when the next picker replaces this one
}

// rebuild recomputes the picker (p.mu held).
func (p *Pool) rebuild() {
	byKey := map[string][]*Endpoint{}
	for _, e := range p.endpoints {
		st := e.state.Load()
		if st == nil || !st.ready {
			continue
		}
		for key := range st.models {
			byKey[key] = append(byKey[key], e)
		}
	}
	for _, eps := range byKey {
		sort.Slice(eps, func(i, j int) bool { return eps[i].Addr < eps[j].Addr })
	}
	if old := p.picker.Swap(&picker{byKey: byKey, changed: make(chan struct{})}); old != nil && old.changed != nil {
		close(old.changed)
	}
}

func key(model, version string) string {
	if version == "" {
		return model
	}
	return model + "/" + version
}

// Ready reports whether some backend has the model (version) READY and
// can take a request for it now (its data connection is up): what a
// client that asks ModelReady through the gateway then relies on.
func (p *Pool) Ready(model, version string) bool {
	for _, e := range p.picker.Load().byKey[key(model, version)] {
		if p.opts.DialData == nil || e.Data() != nil {
			return true
		}
	}
	return false
}

// Holds reports whether e is a backend of the pool that has the model
// version READY and can take a request now (a sequence's pinned backend).
func (p *Pool) Holds(e *Endpoint, model, version string) bool {
	for _, x := range p.picker.Load().byKey[key(model, version)] {
		if x == e {
			return e.usable(time.Now())
		}
	}
	return false
}

// Changed is closed at the next change of the routing view (a backend's
// health or the endpoint set): a request that found no backend waits on
// it.
func (p *Pool) Changed() <-chan struct{} {
	return p.picker.Load().changed
}

// Pick chooses a backend for the model version: among the backends that have
// it READY, whose breaker is not open, that are not ejected and not in
// exclude, the less loaded of two picked at random (load: requests in flight,
// plus the backend's pending count when scraped).
func (p *Pool) Pick(model, version string, exclude []*Endpoint) (*Endpoint, error) {
	all := p.picker.Load().byKey[key(model, version)]
	now := time.Now()
	var a, b *Endpoint
	for _, i := range perm2(len(all)) {
		e := all[i]
		if !e.usable(now) || contains(exclude, e) {
			continue
		}
		if a == nil {
			a = e
		} else {
			b = e
			break
		}
	}
	if a == nil {
		// The picks may have landed on unusable backends: scan all.
		for _, e := range all {
			if e.usable(now) && !contains(exclude, e) {
				a = e
				break
			}
		}
	}
	switch {
	case a == nil:
		v := version
		if v == "" {
			v = "any"
		}
		return nil, fmt.Errorf("%w in pool %s for model %s (version %s)", ErrNoBackend, p.name, model, v)
	case b != nil && b.load(model) < a.load(model):
		return b, nil
	default:
		return a, nil
	}
}

// perm2 returns a random permutation of [0, n) lazily enough for the common
// case: most picks look at the first two.
func perm2(n int) []int {
	if n <= 2 {
		if n == 2 && rand.IntN(2) == 1 {
			return []int{1, 0}
		}
		return []int{0, 1}[:n]
	}
	return rand.Perm(n)
}

func contains(eps []*Endpoint, e *Endpoint) bool {
	for _, x := range eps {
		if x == e {
			return true
		}
	}
	return false
}

// Any returns a backend that has the model (version) READY, for metadata
// calls; nil if none.
func (p *Pool) Any(model, version string) *Endpoint {
	e, err := p.Pick(model, version, nil)
	if err != nil {
		return nil
	}
	return e
}

// Healthy returns a backend that passed its last health check, for
// pool-wide calls (RepositoryIndex); nil if none.
func (p *Pool) Healthy() *Endpoint {
	for _, e := range p.Endpoints() {
		if st := e.state.Load(); st != nil && st.ready {
			return e
		}
	}
	return nil
}

// outlierLoop ejects backends whose error rate stands out, every interval.
func (p *Pool) outlierLoop() {
	defer p.wg.Done()
	cfg := p.cfg.Outlier
	t := time.NewTicker(cfg.Interval.Duration)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			if p.retired.Load() {
				continue
			}
			p.outliers(now)
		}
	}
}

// outliers runs one round of outlier ejection (under p.mu, so that series
// of endpoints removed meanwhile are not recreated).
func (p *Pool) outliers(now time.Time) {
	cfg := p.cfg.Outlier
	p.mu.Lock()
	defer p.mu.Unlock()
	ejected := 0
	for _, e := range p.endpoints {
		if e.ejectedUntil.Load() > now.UnixNano() {
			ejected++
		}
	}
	maxEjected := len(p.endpoints) * cfg.MaxEjectedPercent / 100
	for _, e := range p.endpoints {
		ok, bad := e.window.swap()
		total := ok + bad
		m := p.opts.Metrics.Ejected.WithLabelValues(p.name, e.Addr)
		if e.ejectedUntil.Load() <= now.UnixNano() {
			m.Set(0)
		}
		if total < int64(cfg.MinRequests) || float64(bad)/float64(total) <= cfg.ErrorRate {
			continue
		}
		if e.ejectedUntil.Load() > now.UnixNano() || ejected >= maxEjected {
			continue
		}
		times := e.ejections.Add(1)
		d := cfg.EjectionTime.Duration * time.Duration(min(times, 10))
		e.ejectedUntil.Store(now.Add(d).UnixNano())
		ejected++
		m.Set(1)
		p.opts.Metrics.Ejections.WithLabelValues(p.name, e.Addr).Inc()
		p.log.Warn("backend ejected as an outlier", "endpoint", e.Addr, "errors", bad, "requests", total, "for", d)
	}
}

// Failure reports whether a call outcome counts against the backend (for the
// breaker and outlier detection): transport and server faults, not the
// caller's mistakes or deadlines.
func Failure(err error) bool {
	var bt backendTimeout
	if errors.As(err, &bt) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.Unknown, codes.DataLoss:
		return !TooLarge(err)
	}
	return false
}

// Excluded reports whether an outcome says nothing about the backend: the
// client cancelled, or its own deadline ran out. Such calls neither count
// against the backend nor for it (a hung backend must not look healthy
// because clients give up on it).
func Excluded(err error) bool {
	var bt backendTimeout
	if errors.As(err, &bt) {
		return false
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
		return true
	}
	return false
}

// BackendTimeout marks a deadline the backend missed although it had the
// route's whole timeout: that is the backend's fault (a failure).
func BackendTimeout(err error) error { return backendTimeout{err} }

type backendTimeout struct{ err error }

func (b backendTimeout) Error() string { return b.err.Error() }
func (b backendTimeout) Unwrap() error { return b.err }

// TooLarge reports whether err is gRPC's own message size limit (a response
// over max_message_bytes): RESOURCE_EXHAUSTED, but after the backend did the
// work, so neither the backend's fault nor worth retrying.
func TooLarge(err error) bool {
	return status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "larger than max")
}

func describeModels(models map[string]bool) string {
	var keys []string
	for k := range models {
		if strings.Contains(k, "/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}
