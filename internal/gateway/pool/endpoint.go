package pool

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"

	"github.com/tritongate/tritongate/internal/gateway/h2"
	"github.com/tritongate/tritongate/proto/inference"
)

// Endpoint is one backend of a pool.
type Endpoint struct {
	Addr   string
	Conn   *grpc.ClientConn
	Client inference.GRPCInferenceServiceClient

	pool     *Pool
	inflight atomic.Int64
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	state    atomic.Pointer[health]
	pending  atomic.Pointer[map[string]int64] // model → nv_inference_pending_request_count

	data      atomic.Pointer[h2.ClientConn] // the data-plane connection, when up
	dataTried atomic.Bool                   // the first dial finished
	redial    chan struct{}                 // a health check found the backend up: stop backing off

	window       counts
	ejectedUntil atomic.Int64 // unix nanos
	ejections    atomic.Int64

	stop    chan struct{}
	stopped sync.Once
}

// health is what the last health check found.
type health struct {
	ready       bool            // live and answering: takes requests for its READY versions
	serverReady bool            // what ServerReady said (reported, not routed on)
	models      map[string]bool // "model" and "model/version" keys READY
}

var errNotLive = errors.New("ServerLive answered false")

// counts are an endpoint's outcomes in the current outlier interval.
type counts struct {
	mu      sync.Mutex
	ok, bad int64
}

func (c *counts) add(failed bool) {
	c.mu.Lock()
	if failed {
		c.bad++
	} else {
		c.ok++
	}
	c.mu.Unlock()
}

func (c *counts) swap() (ok, bad int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, bad, c.ok, c.bad = c.ok, c.bad, 0, 0
	return ok, bad
}

func newEndpoint(p *Pool, addr string, conn *grpc.ClientConn) *Endpoint {
	e := &Endpoint{Addr: addr, Conn: conn, Client: inference.NewGRPCInferenceServiceClient(conn), pool: p, stop: make(chan struct{}), redial: make(chan struct{}, 1)}
	bc := p.cfg.Breaker
	m := p.opts.Metrics
	e.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         p.name + "/" + addr,
		MaxRequests:  bc.HalfOpenRequests,
		Timeout:      bc.OpenFor.Duration,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= bc.ConsecutiveFailures },
		IsSuccessful: func(err error) bool { return !Failure(err) },
		IsExcluded:   Excluded,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			p.mu.Lock()
			if p.endpoints[addr] == e { // not removed (its series are gone)
				m.Breaker.WithLabelValues(p.name, addr).Set(float64(to))
				m.Transitions.WithLabelValues(p.name, addr, to.String()).Inc()
			}
			p.mu.Unlock()
			p.log.Warn("circuit breaker state changed", "endpoint", addr, "from", from.String(), "to", to.String())
		},
	})
	m.Breaker.WithLabelValues(p.name, addr).Set(0)
	m.Ready.WithLabelValues(p.name, addr).Set(0)
	return e
}

// usable reports whether the picker may choose the endpoint now.
func (e *Endpoint) usable(now time.Time) bool {
	if e.pool.opts.DialData != nil && e.Data() == nil {
		return false // no data connection (yet)
	}
	return e.breaker.State() != gobreaker.StateOpen && e.ejectedUntil.Load() <= now.UnixNano()
}

// load is the endpoint's load for a model: requests in flight from this
// gateway plus, when scraped, the backend's own pending count.
func (e *Endpoint) load(model string) int64 {
	n := e.inflight.Load()
	if pm := e.pending.Load(); pm != nil {
		n += (*pm)[model]
	}
	return n
}

// InFlight is the number of requests in flight to the endpoint.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Begin asks the breaker for permission to call the endpoint and counts the
// call in flight. done records the outcome (nil error: success).
func (e *Endpoint) Begin() (done func(err error), err error) {
	report, err := e.breaker.Allow()
	if err != nil {
		return nil, err
	}
	e.inflight.Add(1)
	e.pool.inflight.Add(1)
	g := e.pool.opts.Metrics.InFlight.WithLabelValues(e.pool.name)
	g.Inc()
	return func(err error) {
		e.inflight.Add(-1)
		e.pool.inflight.Add(-1)
		g.Dec()
		report(err)
		if !Excluded(err) {
			e.window.add(Failure(err))
		}
	}, nil
}

// BreakerState is the breaker's state ("closed", "half-open", "open").
func (e *Endpoint) BreakerState() string { return e.breaker.State().String() }

// Ready reports whether the endpoint passed its last health check.
func (e *Endpoint) Ready() bool {
	st := e.state.Load()
	return st != nil && st.ready
}

// healthLoop checks the endpoint every interval until it is retired.
func (e *Endpoint) healthLoop() {
	defer e.pool.wg.Done()
	cfg := e.pool.cfg.Health
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-e.pool.ctx.Done():
			return
		case <-t.C:
		}
		e.check(cfg.Timeout.Duration)
		t.Reset(cfg.Interval.Duration)
	}
}

// check runs one health check: ServerLive, ServerReady, then the READY
// model versions (RepositoryIndex with ready=true), and optionally the
// pending counts. A backend that is live and answers the index takes
// requests for the versions it has READY, whatever ServerReady says: with
// Triton's default --strict-readiness, ServerReady is false while any
// version loads or unloads (every rollout) and while any model failed to
// load, though the versions it serves are READY throughout. A backend that
// is not live (Triton answers ServerLive with UNAVAILABLE "Server exiting"
// on shutdown) or does not answer is out.
func (e *Endpoint) check(timeout time.Duration) {
	if e.pool.retired.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(e.pool.ctx, timeout)
	defer cancel()
	st := &health{models: map[string]bool{}}
	live, err := e.Client.ServerLive(ctx, &inference.ServerLiveRequest{})
	if err == nil && !live.Live {
		err = errNotLive
	}
	if err == nil {
		if r, rerr := e.Client.ServerReady(ctx, &inference.ServerReadyRequest{}); rerr == nil {
			st.serverReady = r.Ready
		}
		var idx *inference.RepositoryIndexResponse
		idx, err = e.Client.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{Ready: true})
		if err == nil {
			st.ready = true
			for _, m := range idx.Models {
				if m.State == "READY" || m.State == "" {
					st.models[m.Name] = true
					if m.Version != "" {
						st.models[m.Name+"/"+m.Version] = true
					}
				}
			}
		}
	}
	if st.ready && e.pool.opts.DialData != nil && e.Data() == nil {
		e.kickData() // back up: redial now, not after the dial backoff
	}
	if port := e.pool.cfg.PendingMetricsPort; port > 0 && st.ready {
		e.scrapePending(ctx, port)
	}
	old := e.state.Swap(st)
	if old != nil && old.serverReady != st.serverReady && st.ready {
		e.pool.log.Info("backend server readiness changed; routing by the versions it has READY", "endpoint", e.Addr, "server_ready", st.serverReady, "models", describeModels(st.models))
	}
	if old == nil || old.ready != st.ready || describeModels(old.models) != describeModels(st.models) || len(old.models) != len(st.models) {
		e.pool.mu.Lock()
		if e.pool.endpoints[e.Addr] == e { // not removed meanwhile (its series are gone)
			e.pool.rebuild()
			ready := 0.0
			if st.ready {
				ready = 1
			}
			e.pool.opts.Metrics.Ready.WithLabelValues(e.pool.name, e.Addr).Set(ready)
		}
		e.pool.mu.Unlock()
		if old != nil || !st.ready {
			e.pool.log.Info("backend health changed", "endpoint", e.Addr, "ready", st.ready, "models", describeModels(st.models), "error", err)
		}
	}
}

// scrapePending reads nv_inference_pending_request_count from the backend's
// metrics endpoint.
func (e *Endpoint) scrapePending(ctx context.Context, port int) {
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, strconv.Itoa(port))+"/metrics", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return
	}
	pending := map[string]int64{}
	if f := families["nv_inference_pending_request_count"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "model" {
					pending[l.GetValue()] += int64(m.GetGauge().GetValue())
				}
			}
		}
	}
	e.pending.Store(&pending)
}

// Data is the endpoint's data-plane connection, nil while (re)connecting.
func (e *Endpoint) Data() *h2.ClientConn {
	c := e.data.Load()
	if c == nil {
		return nil
	}
	select {
	case <-c.Unusable():
		return nil
	default:
		return c
	}
}

// keepData keeps a data-plane connection open to the backend: dialled at
// once, redialled (with backoff) as soon as one stops taking streams
// (GOAWAY, failure), closed when the endpoint goes.
func (e *Endpoint) keepData() {
	defer e.pool.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(e.pool.ctx, 10*time.Second)
		c, err := e.pool.opts.DialData(ctx, e.Addr)
		cancel()
		if err == nil {
			e.data.Store(c)
			e.pool.mu.Lock()
			if e.pool.endpoints[e.Addr] == e {
				e.pool.rebuild() // wakes requests waiting for a backend
			}
			e.pool.mu.Unlock()
		}
		e.dataTried.Store(true)
		if err != nil {
			e.pool.mu.Lock()
			if e.pool.endpoints[e.Addr] == e {
				e.pool.opts.Metrics.DialErrors.WithLabelValues(e.pool.name, e.Addr).Inc()
			}
			e.pool.mu.Unlock()
			e.pool.log.Debug("data connection failed", "endpoint", e.Addr, "error", err)
			select {
			case <-e.stop:
				return
			case <-e.pool.ctx.Done():
				return
			case <-time.After(backoff):
			case <-e.redial:
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		up := time.Now()
		select {
		case <-c.Unusable():
			e.data.CompareAndSwap(c, nil)
			// Streams still running on it finish; it closes itself. A
			// connection that did not last is not redialled at once.
			if time.Since(up) < time.Second {
				select {
				case <-e.stop:
					return
				case <-e.pool.ctx.Done():
					return
				case <-time.After(backoff):
				case <-e.redial:
				}
				backoff = min(2*backoff, 5*time.Second)
			} else {
				backoff = 50 * time.Millisecond
			}
			continue
		case <-e.stop:
		case <-e.pool.ctx.Done():
		}
		e.data.CompareAndSwap(c, nil)
		e.closeData(c)
		return
	}
}

// kickData cuts short keepData's wait before its next dial.
func (e *Endpoint) kickData() {
	select {
	case e.redial <- struct{}{}:
	default:
	}
}

// closeData closes a data connection once its streams are done (bounded).
func (e *Endpoint) closeData(c *h2.ClientConn) {
	deadline := time.Now().Add(30 * time.Second)
	for c.Streams() > 0 && time.Now().Before(deadline) {
		select {
		case <-e.pool.ctx.Done():
			deadline = time.Now()
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.Close()
}

// retire stops health checking and closes the connection once no request is
// in flight (or after a grace period).
func (e *Endpoint) retire() {
	e.stopped.Do(func() { close(e.stop) })
	deadline := time.Now().Add(30 * time.Second)
	for e.inflight.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-e.pool.ctx.Done():
			deadline = time.Now()
		case <-time.After(50 * time.Millisecond):
		}
	}
	e.Conn.Close()
}

func (e *Endpoint) close() {
	e.stopped.Do(func() { close(e.stop) })
	e.Conn.Close()
}
