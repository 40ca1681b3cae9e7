package pool

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/gateway/config"
)

func TestBudgetBoundsRetries(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBudget(0.1, 1)
	b.now = func() time.Time { return now }
	retries := 0
	for range 500 {
		b.Request()
		if b.Retry() {
			retries++
		}
	}
	// 10% of 500 plus 1/s over the 10 s window.
	if retries != 60 {
		t.Errorf("%d retries for 500 requests, want 60", retries)
	}
	// Ten seconds on, the window has forgotten them.
	now = now.Add(10 * time.Second)
	if !b.Retry() {
		t.Error("the budget did not refill after the window")
	}
	// Within the window, the requests of earlier seconds still count.
	c := NewBudget(0.5, 0)
	c.now = func() time.Time { return now }
	for range 10 {
		c.Request()
	}
	now = now.Add(5 * time.Second)
	n := 0
	for c.Retry() {
		n++
	}
	if n != 5 {
		t.Errorf("%d retries allowed for 10 requests 5 s ago at ratio 0.5, want 5", n)
	}
}

func TestBackoffIsJitteredAndCapped(t *testing.T) {
	for n := 1; n < 20; n++ {
		for range 100 {
			d := Backoff(n, 5*time.Millisecond, 100*time.Millisecond)
			limit := min(5*time.Millisecond<<(n-1), 100*time.Millisecond)
			if d < 0 || d >= limit {
				t.Fatalf("Backoff(%d) = %v, want in [0, %v)", n, d, limit)
			}
		}
	}
	if Backoff(3, 0, 0) != 0 {
		t.Error("no backoff configured should not wait")
	}
}

func TestFailureAndTooLarge(t *testing.T) {
	cases := []struct {
		err             error
		failure, tooBig bool
	}{
		{status.Error(codes.Unavailable, "connection refused"), true, false},
		{status.Error(codes.ResourceExhausted, "Exceeds maximum queue size"), true, false},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (9000 vs. 4096)"), false, true},
		{status.Error(codes.Internal, "boom"), true, false},
		{status.Error(codes.InvalidArgument, "bad tensor"), false, false},
		{status.Error(codes.DeadlineExceeded, "late"), false, false},
		{status.Error(codes.NotFound, "no model"), false, false},
		{nil, false, false},
	}
	for _, c := range cases {
		if Failure(c.err) != c.failure || TooLarge(c.err) != c.tooBig {
			t.Errorf("%v: Failure %v TooLarge %v, want %v %v", c.err, Failure(c.err), TooLarge(c.err), c.failure, c.tooBig)
		}
	}
}

// testPool is a pool whose endpoints are never dialled for real (no health
// loop runs: health is set by hand).
func testPool(t *testing.T, addrs ...string) *Pool {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf("pools:\n  - {name: p, endpoints: [\"%s\"], health: {interval: 1h}, outlier: {interval: 1h}, breaker: {consecutive_failures: 2, open_for: 1h}}\n", strings.Join(addrs, `", "`))))
	if err != nil {
		t.Fatal(err)
	}
	p := &Pool{name: "p", cfg: cfg.Pools[0], endpoints: map[string]*Endpoint{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p.opts = Options{Config: cfg.Pools[0], Metrics: NewMetrics(nil)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	t.Cleanup(p.cancel)
	for _, a := range addrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		e := newEndpoint(p, a, conn)
		e.state.Store(&health{ready: true, models: map[string]bool{"m": true, "m/1": true}})
		p.endpoints[a] = e
	}
	p.mu.Lock()
	p.rebuild()
	p.mu.Unlock()
	return p
}

func TestPickPrefersTheLessLoaded(t *testing.T) {
	p := testPool(t, "a:1", "b:1")
	a, b := p.endpoints["a:1"], p.endpoints["b:1"]
	a.inflight.Store(5)
	for range 100 {
		e, err := p.Pick("m", "", nil)
		if err != nil || e != b {
			t.Fatalf("picked %v (%v), want the idle backend", e, err)
		}
	}
	// The scraped pending count adds to the load.
	pending := map[string]int64{"m": 10}
	b.pending.Store(&pending)
	if e, _ := p.Pick("m", "1", nil); e != a {
		t.Errorf("picked %s, want a (b has 10 pending)", e.Addr)
	}
}

func TestPickSkips(t *testing.T) {
	p := testPool(t, "a:1", "b:1", "c:1")
	a, b, c := p.endpoints["a:1"], p.endpoints["b:1"], p.endpoints["c:1"]
	// Excluded, ejected and open-breaker backends are not picked.
	b.ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	for range 2 {
		done, err := c.Begin()
		if err != nil {
			t.Fatal(err)
		}
		done(status.Error(codes.Unavailable, "down"))
	}
	if c.BreakerState() != "open" {
		t.Fatalf("breaker %s after 2 failures, want open", c.BreakerState())
	}
	for range 50 {
		if e, err := p.Pick("m", "1", nil); err != nil || e != a {
			t.Fatalf("picked %v %v, want a", e, err)
		}
	}
	if _, err := p.Pick("m", "1", []*Endpoint{a}); err == nil {
		t.Error("picked although every usable backend is excluded")
	}
	// Versions not READY anywhere are not routable.
	if _, err := p.Pick("m", "2", nil); err == nil || !p.Ready("m", "1") || p.Ready("m", "2") {
		t.Errorf("version 2 is loaded nowhere: %v", err)
	}
}

func TestScrapePending(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="m",version="1"} 3
nv_inference_pending_request_count{model="m",version="2"} 4
nv_inference_pending_request_count{model="other",version="1"} 1
`)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p := testPool(t, "127.0.0.1:1")
	p.cfg.PendingMetricsPort, _ = strconv.Atoi(port)
	e := p.endpoints["127.0.0.1:1"]
	e.scrapePending(context.Background(), p.cfg.PendingMetricsPort)
	if got := e.load("m"); got != 7 {
		t.Errorf("load of m = %d, want 7 pending", got)
	}
	if got := e.load("other"); got != 1 {
		t.Errorf("load of other = %d, want 1", got)
	}
}
