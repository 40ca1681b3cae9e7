package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/gateway/config"
	"github.com/tritongate/tritongate/internal/gateway/server"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

func failing(name, code string) string {
	return identity(name, litetest.Param("fault_error_rate", "1"), litetest.Param("fault_error_code", code))
}

func TestFailingBackendIsEjectedAndTrafficContinues(t *testing.T) {
	a := backend(t, map[string]string{"m": identity("m")})
	b := backend(t, map[string]string{"m": identity("m")})
	bad := backend(t, map[string]string{"m": failing("m", "INTERNAL")})
	g := startGateway(t, `
pools:
  - name: cpu
    endpoints: [{a}, {b}, {bad}]
    health: {interval: 50ms}
    breaker: {consecutive_failures: 100000}
    outlier: {interval: 100ms, min_requests: 5, error_rate: 0.5, ejection_time: 1m, max_ejected_percent: 50}
routes:
  - {model: m, pool: cpu}
`, addrs("a", a, "b", b, "bad", bad))
	g.waitReady(t, "m", "")
	ejected := map[string]string{"endpoint": bad.Addr}
	deadline := time.Now().Add(10 * time.Second)
	failures := 0
	for g.metric(t, "gateway_backend_ejections_total", ejected) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the failing backend was never ejected (%d failures seen)", failures)
		}
		if _, err := g.client.ModelInfer(context.Background(), request("m")); err != nil {
			if status.Code(err) != codes.Internal {
				t.Fatalf("unexpected error %v", err)
			}
			failures++
		}
	}
	if failures == 0 {
		t.Fatal("the failing backend never failed a request: the test proves nothing")
	}
	before := served(t, bad, "m")
	_, errs := hammer(t, g, 300, 4, plain("m"))
	if len(errs) > 0 {
		t.Errorf("%d requests failed after the ejection, first: %v", len(errs), errs[0])
	}
	if after := served(t, bad, "m"); after != before {
		t.Errorf("the ejected backend got %d more requests", after-before)
	}
	if g.metric(t, "gateway_backend_ejected", ejected) != 1 {
		t.Error("gateway_backend_ejected is not 1 for the ejected backend")
	}
	// The healthy backends are never ejected (at most 50% of the pool may be).
	for _, x := range []*litetest.Server{a, b} {
		if g.metric(t, "gateway_backend_ejections_total", map[string]string{"endpoint": x.Addr}) != 0 {
			t.Errorf("healthy backend %s was ejected", x.Addr)
		}
	}
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	good := backend(t, map[string]string{"m": identity("m")})
	repo := t.TempDir()
	flaky := backendAt(t, repo, map[string]string{"m": failing("m", "UNAVAILABLE")})
	g := startGateway(t, `
defaults:
  retry: {max_attempts: 2, min_per_second: 1000, backoff_base: 1ms, backoff_max: 2ms}
pools:
  - name: cpu
    endpoints: [{good}, {flaky}]
    health: {interval: 50ms}
    breaker: {consecutive_failures: 3, open_for: 1s, half_open_requests: 1}
    outlier: {min_requests: 100000}
routes:
  - {model: m, pool: cpu}
`, addrs("good", good, "flaky", flaky))
	g.waitReady(t, "m", "")
	ep := map[string]string{"endpoint": flaky.Addr}
	for i := 0; g.metric(t, "gateway_breaker_state", ep) != 2; i++ {
		if i > 1000 {
			t.Fatal("the breaker never opened")
		}
		// The flaky backend answers UNAVAILABLE: the retry on the good one
		// hides it from the client.
		if _, err := g.client.ModelInfer(context.Background(), request("m")); err != nil {
			t.Fatalf("request %d failed despite a healthy backend to retry on: %v", i, err)
		}
	}
	if n := served(t, flaky, "m"); n != 3 {
		t.Errorf("the flaky backend got %d requests before its breaker opened, want 3 (consecutive_failures)", n)
	}
	openedAt := time.Now()
	for range 20 {
		if _, err := g.client.ModelInfer(context.Background(), request("m")); err != nil {
			t.Fatal(err)
		}
	}
	if time.Since(openedAt) < time.Second {
		if n := served(t, flaky, "m"); n != 3 {
			t.Errorf("the open breaker let %d requests through", n-3)
		}
	}
	// Repair the backend: after open_for the breaker lets a probe through
	// (half-open), which succeeds and closes it.
	litetest.WriteModel(t, repo, "m", identity("m"))
	if _, err := flaky.Client.RepositoryModelLoad(context.Background(), &inference.RepositoryModelLoadRequest{ModelName: "m"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.metric(t, "gateway_breaker_transitions_total", map[string]string{"endpoint": flaky.Addr, "to": "closed"}) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the breaker never closed again")
		}
		if _, err := g.client.ModelInfer(context.Background(), request("m")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := g.metric(t, "gateway_breaker_transitions_total", map[string]string{"endpoint": flaky.Addr, "to": "half-open"}); n != 1 {
		t.Errorf("half-open transitions %v, want 1", n)
	}
	before := served(t, flaky, "m")
	if _, errs := hammer(t, g, 200, 4, plain("m")); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	if served(t, flaky, "m") == before {
		t.Error("the repaired backend gets no traffic after its breaker closed")
	}
}

func TestRetriesStayWithinBudget(t *testing.T) {
	models := map[string]string{"m": failing("m", "UNAVAILABLE"), "internal": failing("internal", "INTERNAL")}
	a, b := backend(t, models), backend(t, models)
	g := startGateway(t, "defaults:\n  retry: {max_attempts: 3, budget_ratio: 0.1, min_per_second: 1, backoff_base: 1ms, backoff_max: 2ms}\npools:\n"+
		pool("cpu", "{a}", "{b}")+`
routes:
  - {model: m, pool: cpu}
  - {model: internal, pool: cpu}
`, addrs("a", a, "b", b))
	g.waitReady(t, "m", "")
	g.waitReady(t, "internal", "")
	const n = 300
	start := time.Now()
	for range n {
		_, err := g.client.ModelInfer(context.Background(), request("m"))
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v, want the backends' UNAVAILABLE", err)
		}
	}
	elapsed := time.Since(start)
	retries := g.metric(t, "gateway_retries_total", map[string]string{"model": "m"})
	// Budget: 10% of the requests plus 1/s over a 10 s window.
	limit := 0.1*n + 10*float64(1+int(elapsed/(10*time.Second)))
	t.Logf("%d failing requests made %v retries (budget %v)", n, retries, limit)
	if retries == 0 || retries > limit {
		t.Errorf("%v retries for %d requests, want between 1 and %v", retries, n, limit)
	}
	if got := served(t, a, "m") + served(t, b, "m"); float64(got) != n+retries {
		t.Errorf("backends saw %d attempts, want %v requests + retries", got, n+retries)
	}
	if g.metric(t, "gateway_retry_budget_exhausted_total", map[string]string{"model": "m"}) == 0 {
		t.Error("the budget never ran out")
	}
	// INTERNAL may have done work: never retried.
	for range 20 {
		if _, err := g.client.ModelInfer(context.Background(), request("internal")); status.Code(err) != codes.Internal {
			t.Fatalf("got %v, want INTERNAL", err)
		}
	}
	if got := served(t, a, "internal") + served(t, b, "internal"); got != 20 {
		t.Errorf("INTERNAL failures were retried: %d attempts for 20 requests", got)
	}
}

func TestDeadlines(t *testing.T) {
	hang := litetest.Param("fault_hang_rate", "1")
	var mu sync.Mutex
	var seen []time.Time // deadlines the backend saw
	b := litetest.Start(t, writeRepo(t, map[string]string{"hang": identity("hang", hang), "quick": identity("quick", hang), "m": identity("m")}),
		litetest.Config{TCP: true, Options: tritonlite.Options{ControlMode: tritonlite.ModeExplicit, StartupModels: []string{"*"}},
			ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if d, ok := ctx.Deadline(); ok && strings.HasSuffix(info.FullMethod, "/ModelInfer") {
					mu.Lock()
					seen = append(seen, d)
					mu.Unlock()
				}
				return h(ctx, req)
			})}})
	g := startGateway(t, "defaults:\n  deadline_margin: 500ms\npools:\n"+pool("cpu", "{b}")+`
routes:
  - {model: hang, pool: cpu}
  - {model: m, pool: cpu}
  - {model: quick, pool: cpu, timeout: 200ms}
`, addrs("b", b))
	for _, m := range []string{"hang", "quick", "m"} {
		g.waitReady(t, m, "")
	}
	t.Run("client deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
		defer cancel()
		_, err := g.client.ModelInfer(ctx, request("hang"))
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DEADLINE_EXCEEDED", err)
		}
	})
	t.Run("route timeout", func(t *testing.T) {
		_, err := g.client.ModelInfer(context.Background(), request("quick"))
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DEADLINE_EXCEEDED", err)
		}
	})
	t.Run("deadline shorter than the margin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := g.client.ModelInfer(ctx, request("m"))
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DEADLINE_EXCEEDED", err)
		}
	})
	t.Run("propagated minus the margin", func(t *testing.T) {
		mu.Lock()
		seen = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := g.client.ModelInfer(ctx, request("m")); err != nil {
			t.Fatal(err)
		}
		client, _ := ctx.Deadline()
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 {
			t.Fatalf("backend saw %d deadlines", len(seen))
		}
		// 500ms margin: the backend's deadline comes well before the client's.
		if !seen[0].Before(client) {
			t.Errorf("backend deadline %v is not before the client's %v", seen[0], client)
		}
	})
	if got := g.metric(t, "gateway_requests_total", map[string]string{"code": "DeadlineExceeded"}); got != 3 {
		t.Errorf("gateway_requests_total{code=DeadlineExceeded} = %v, want 3", got)
	}
	// Deadlines are not the backend's fault.
	if g.metric(t, "gateway_breaker_state", map[string]string{"endpoint": b.Addr}) != 0 {
		t.Error("the breaker counted deadlines as failures")
	}
}

func writeRepo(t *testing.T, models map[string]string) string {
	repo := t.TempDir()
	for name, cfg := range models {
		litetest.WriteModel(t, repo, name, cfg)
	}
	return repo
}

func TestReloadUnderLoadLosesNothing(t *testing.T) {
	models := map[string]string{"m": identity("m", `version_policy { all {} }`)}
	a, b := backend(t, models, 1, 2), backend(t, models, 1, 2)
	one := "pools:\n" + pool("cpu", "{a}") + `
routes:
  - model: m
    pool: cpu
    versions: [{version: "1", weight: 1}]
`
	two := "pools:\n" + pool("cpu", "{a}", "{b}") + `
routes:
  - model: m
    pool: cpu
    versions: [{version: "1", weight: 1}, {version: "2", weight: 1}]
`
	ad := addrs("a", a, "b", b)
	g := startGateway(t, one, ad)
	g.waitReady(t, "m", "1")
	parse := func(y string) *config.Config {
		for k, v := range ad {
			y = strings.ReplaceAll(y, "{"+k+"}", v)
		}
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cfgs := []*config.Config{parse(two), parse(one)}
	var stop atomic.Bool
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := g.client.ModelInfer(context.Background(), request("m")); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	const reloads = 20
	for i := range reloads {
		time.Sleep(50 * time.Millisecond)
		if err := g.srv.Reload(cfgs[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	// A reload that cannot be applied keeps the configuration in effect.
	broken := parse(two)
	broken.Pools[0].TLS = &config.TLS{CA: "/nonexistent/ca.pem"}
	if err := g.srv.Reload(broken); err == nil {
		t.Error("a reload with a missing CA file succeeded")
	}
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests over %d reloads, %d failed", ok.Load(), reloads, failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during reloads, first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Errorf("only %d requests made: the test did not load the gateway", ok.Load())
	}
	if got := g.metric(t, "gateway_config_reloads_total", map[string]string{"result": "ok"}); got != reloads+1 {
		t.Errorf("reloads ok %v, want %d", got, reloads+1)
	}
	if got := g.metric(t, "gateway_config_reloads_total", map[string]string{"result": "error"}); got != 1 {
		t.Errorf("reloads error %v, want 1", got)
	}
	// Both backends and both versions served under the two-backend config.
	for _, x := range []*litetest.Server{a, b} {
		if served(t, x, "m") == 0 {
			t.Errorf("backend %s served nothing", x.Addr)
		}
	}
}

func TestDrainFinishesRequestsInFlight(t *testing.T) {
	b := backend(t, map[string]string{"slow": identity("slow", litetest.Param("fault_latency", "300ms"))})
	g := startGateway(t, "drain_delay: 100ms\ndrain_timeout: 10s\npools:\n"+pool("cpu", "{b}")+`
routes:
  - {model: slow, pool: cpu}
`, addrs("b", b))
	g.waitReady(t, "slow", "")
	const n = 16
	errs := make(chan error, n)
	var started sync.WaitGroup
	for range n {
		started.Add(1)
		go func() {
			started.Done()
			_, err := g.client.ModelInfer(context.Background(), request("slow"))
			errs <- err
		}()
	}
	started.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for g.metric(t, "gateway_in_flight_requests", nil) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := g.metric(t, "gateway_in_flight_requests", nil); got != n {
		t.Fatalf("%v requests in flight, want %d", got, n)
	}
	drained := make(chan struct{})
	go func() {
		g.srv.Drain()
		close(drained)
	}()
	// Readiness turns false at once.
	time.Sleep(20 * time.Millisecond)
	if r, err := g.client.ServerReady(context.Background(), &inference.ServerReadyRequest{}); err != nil || r.Ready {
		t.Errorf("ServerReady while draining: %v %v, want false", r, err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("request in flight lost in the drain: %v", err)
		}
	}
	<-drained
	if got := served(t, b, "slow"); got != n {
		t.Errorf("backend served %d, want %d", got, n)
	}
	// A new request after the drain is refused.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := g.client.ModelInfer(ctx, request("slow")); err == nil {
		t.Error("a request after the drain succeeded")
	}
}

func TestTraceContextReachesBackends(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	var mu sync.Mutex
	var got []metadata.MD
	repo := writeRepo(t, map[string]string{"m": identity("m")})
	b := litetest.Start(t, repo, litetest.Config{TCP: true, Options: tritonlite.Options{ControlMode: tritonlite.ModeExplicit, StartupModels: []string{"*"}},
		ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if strings.HasSuffix(info.FullMethod, "/ModelInfer") {
				md, _ := metadata.FromIncomingContext(ctx)
				mu.Lock()
				got = append(got, md)
				mu.Unlock()
			}
			return h(ctx, req)
		})}})
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+"routes:\n  - {model: m, pool: cpu}\n", addrs("b", b),
		func(o *server.Options) { o.TracerProvider = tp })
	g.waitReady(t, "m", "")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01", "x-request-id", "req-42", "x-tenant", "acme")
	if _, err := g.client.ModelInfer(ctx, request("m")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("backend saw %d requests", len(got))
	}
	md := got[0]
	tp0 := md.Get("traceparent")
	if len(tp0) != 1 || !strings.Contains(tp0[0], traceID) || strings.Contains(tp0[0], "00f067aa0ba902b7") {
		t.Errorf("backend traceparent %v: want the client's trace with the gateway's span as parent", tp0)
	}
	if v := md.Get("x-request-id"); len(v) != 1 || v[0] != "req-42" {
		t.Errorf("x-request-id %v, want req-42", v)
	}
	if v := md.Get("x-tenant"); len(v) != 1 || v[0] != "acme" {
		t.Errorf("client header x-tenant %v not forwarded", v)
	}
	var names []string
	for _, s := range spans.Ended() {
		if !strings.HasSuffix(s.Name(), "/ModelInfer") {
			continue // health checks
		}
		names = append(names, fmt.Sprintf("%s(%s)", s.Name(), s.SpanKind()))
		if s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %s in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
	}
	if len(names) < 2 {
		t.Errorf("gateway spans %v, want a server and a client span", names)
	}
}

// TestSuccessiveReloadsKeepPoolsInUse: a request that started two reloads
// ago still finishes on its pool, although the second reload replaced it
// (the first kept it).
func TestSuccessiveReloadsKeepPoolsInUse(t *testing.T) {
	b := backend(t, map[string]string{"slow": identity("slow", litetest.Param("fault_latency", "600ms"))})
	o := backend(t, map[string]string{"x": identity("x")})
	base := func(cpuHealth, otherHealth string) string {
		return `drain_timeout: 10s
pools:
  - {name: cpu, endpoints: [{b}], health: {interval: ` + cpuHealth + `}}
  - {name: other, endpoints: [{o}], health: {interval: ` + otherHealth + `}}
routes:
  - {model: slow, pool: cpu}
  - {model: x, pool: other}
`
	}
	ad := addrs("b", b, "o", o)
	g := startGateway(t, base("50ms", "50ms"), ad)
	g.waitReady(t, "slow", "")
	parse := func(y string) *config.Config {
		for k, v := range ad {
			y = strings.ReplaceAll(y, "{"+k+"}", v)
		}
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	errc := make(chan error, 1)
	go func() {
		_, err := g.client.ModelInfer(context.Background(), request("slow"))
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for g.metric(t, "gateway_in_flight_requests", nil) != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := g.srv.Reload(parse(base("50ms", "60ms"))); err != nil { // replaces "other" only
		t.Fatal(err)
	}
	if err := g.srv.Reload(parse(base("60ms", "60ms"))); err != nil { // replaces "cpu"
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("a request in flight across two reloads failed: %v", err)
	}
}

// TestHungBackendTripsItsBreaker: a backend that takes requests and never
// answers fails them once it has had the route's whole timeout, so its
// breaker opens; deadlines the clients set themselves say nothing about the
// backend and leave it alone.
func TestHungBackendTripsItsBreaker(t *testing.T) {
	good := backend(t, map[string]string{"m": identity("m")})
	hung := backend(t, map[string]string{"m": identity("m", litetest.Param("fault_hang_rate", "1"))})
	g := startGateway(t, `
defaults:
  retry: {max_attempts: 1}
pools:
  - name: cpu
    endpoints: [{good}, {hung}]
    health: {interval: 50ms}
    breaker: {consecutive_failures: 3, open_for: 1m}
    outlier: {min_requests: 100000}
routes:
  - {model: m, pool: cpu, timeout: 100ms}
  - {model: patient, pool: cpu, timeout: 1m}
`, addrs("good", good, "hung", hung))
	g.waitReady(t, "m", "")
	ep := map[string]string{"endpoint": hung.Addr}
	// Client deadlines shorter than the route's timeout: not the backend's fault.
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		g.client.ModelInfer(ctx, request("m"))
		cancel()
	}
	if g.metric(t, "gateway_breaker_state", ep) != 0 {
		t.Fatal("client deadlines opened the backend's breaker")
	}
	// The route's own timeout: the backend's fault.
	timeouts := 0
	for i := 0; g.metric(t, "gateway_breaker_state", ep) != 2; i++ {
		if i > 200 {
			t.Fatal("the hung backend's breaker never opened")
		}
		if _, err := g.client.ModelInfer(context.Background(), request("m")); status.Code(err) == codes.DeadlineExceeded {
			timeouts++
		}
	}
	if timeouts != 3 {
		t.Errorf("%d requests timed out before the breaker opened, want 3", timeouts)
	}
	for range 50 {
		if _, err := g.client.ModelInfer(context.Background(), request("m")); err != nil {
			t.Fatalf("with the hung backend's circuit open: %v", err)
		}
	}
}
