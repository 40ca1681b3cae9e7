package server_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// fastPool is the pool settings tests use: quick health checks, and breaker
// and outlier ejection left at values no test reaches unless it sets its own.
const fastPool = `
    health: {interval: 50ms, timeout: 1s}
    breaker: {consecutive_failures: 100000}
    outlier: {interval: 100ms, min_requests: 100000}`

func pool(name string, endpoints ...string) string {
	return fmt.Sprintf("  - name: %s\n    endpoints: [%s]%s\n", name, strings.Join(endpoints, ", "), fastPool)
}

// outputOf returns OUTPUT0 of a response.
func outputOf(t *testing.T, r *inference.ModelInferResponse) []float32 {
	t.Helper()
	outs, err := tensor.ResponseOutputs(r)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tensor.Values[float32](outs[0])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hammer sends n requests from c goroutines and returns how many got each
// served version, and the errors.
func hammer(t *testing.T, g *gw, n, c int, mk func(i int) (context.Context, *inference.ModelInferRequest)) (map[string]int, []error) {
	t.Helper()
	var mu sync.Mutex
	versions := map[string]int{}
	var errs []error
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ctx, req := mk(i)
				r, err := g.client.ModelInfer(ctx, req)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					versions[r.ModelVersion]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return versions, errs
}

func plain(model string) func(int) (context.Context, *inference.ModelInferRequest) {
	return func(int) (context.Context, *inference.ModelInferRequest) {
		return context.Background(), request(model)
	}
}

func TestRoutesEachModelToItsPool(t *testing.T) {
	cpu := backend(t, map[string]string{"small": identity("small"), "big": identity("big")})
	gpu := backend(t, map[string]string{"big": identity("big"), "small": identity("small")})
	g := startGateway(t, "pools:\n"+pool("cpu", "{cpu}")+pool("gpu", "{gpu}")+`
routes:
  - {model: small, pool: cpu}
  - {model: big, pool: gpu}
`, addrs("cpu", cpu, "gpu", gpu))
	g.waitReady(t, "small", "")
	g.waitReady(t, "big", "")
	for _, model := range []string{"small", "big"} {
		_, errs := hammer(t, g, 50, 4, plain(model))
		if len(errs) > 0 {
			t.Fatalf("%s: %v", model, errs[0])
		}
	}
	for _, c := range []struct {
		b     *litetest.Server
		model string
		want  uint64
	}{{cpu, "small", 50}, {cpu, "big", 0}, {gpu, "big", 50}, {gpu, "small", 0}} {
		if got := served(t, c.b, c.model); got != c.want {
			t.Errorf("backend %s served %d requests for %s, want %d", c.b.Addr, got, c.model, c.want)
		}
	}
	if got := g.metric(t, "gateway_requests_total", map[string]string{"model": "big", "pool": "gpu", "code": "OK"}); got != 50 {
		t.Errorf("gateway_requests_total{model=big,pool=gpu,code=OK} = %v, want 50", got)
	}
	// The answer is the backend's, untouched.
	r, err := g.client.ModelInfer(context.Background(), request("small", 5, 6, 7, 8))
	if err != nil {
		t.Fatal(err)
	}
	if got := outputOf(t, r); fmt.Sprint(got) != "[5 6 7 8]" || r.ModelName != "small" || r.ModelVersion != "1" {
		t.Errorf("response %s v%s %v", r.ModelName, r.ModelVersion, got)
	}
}

func TestWeightedSplitWithinTwoPercent(t *testing.T) {
	b := backend(t, map[string]string{"m": identity("m", `version_policy { all {} }`)}, 1, 2)
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+`
routes:
  - model: m
    pool: cpu
    versions:
      - {version: "1", weight: 90}
      - {version: "2", weight: 10}
`, addrs("b", b))
	g.waitReady(t, "m", "1")
	g.waitReady(t, "m", "2")
	const n = 10000
	versions, errs := hammer(t, g, n, 16, plain("m"))
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	share := float64(versions["2"]) / n
	t.Logf("version 2 got %.2f%% of %d requests (want 10%%)", 100*share, n)
	if math.Abs(share-0.10) > 0.02 || versions["1"]+versions["2"] != n {
		t.Errorf("split %v: version 2 share %.3f, want 0.10 ± 0.02", versions, share)
	}
	if got := g.metric(t, "gateway_route_choices_total", map[string]string{"model": "m", "version": "2", "how": "split"}); int(got) != versions["2"] {
		t.Errorf("gateway_route_choices_total{version=2,how=split} = %v, want %d", got, versions["2"])
	}
	if got := g.metric(t, "gateway_requests_total", map[string]string{"model": "m", "version": "1", "code": "OK"}); int(got) != versions["1"] {
		t.Errorf("gateway_requests_total{version=1} = %v, want %d", got, versions["1"])
	}
}

func TestVersionPinAndRequestVersion(t *testing.T) {
	b := backend(t, map[string]string{"m": identity("m", `version_policy { all {} }`)}, 1, 2, 3)
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+`
routes:
  - model: m
    pool: cpu
    versions: [{version: "1", weight: 100}, {version: "2", weight: 0}]
  - model: other
    pool: cpu
    pin_header: x-canary
    versions: [{version: "1", weight: 1}]
`, addrs("b", b))
	for _, v := range []string{"1", "2", "3"} {
		g.waitReady(t, "m", v)
	}
	pinned := func(md ...string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), md...)
	}
	cases := []struct {
		name    string
		ctx     context.Context
		version string // in the request
		want    string
		how     string
	}{
		{"split", context.Background(), "", "1", "split"},
		{"pin to a weight-0 version", pinned("x-model-version", "2"), "", "2", "pin"},
		{"pin outside the split", pinned("x-model-version", "3"), "", "3", "pin"},
		{"request version", context.Background(), "3", "3", "request"},
		{"request version wins over the pin", pinned("x-model-version", "2"), "1", "1", "request"},
		{"another route's pin header is ignored", pinned("x-canary", "2"), "", "1", "split"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := g.metric(t, "gateway_route_choices_total", map[string]string{"model": "m", "how": c.how})
			for range 20 {
				req := request("m")
				req.ModelVersion = c.version
				r, err := g.client.ModelInfer(c.ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if r.ModelVersion != c.want {
					t.Fatalf("served by version %s, want %s", r.ModelVersion, c.want)
				}
			}
			if got := g.metric(t, "gateway_route_choices_total", map[string]string{"model": "m", "how": c.how}) - before; got != 20 {
				t.Errorf("choices by %s rose by %v, want 20", c.how, got)
			}
		})
	}
	t.Run("pin to a version nowhere loaded", func(t *testing.T) {
		_, err := g.client.ModelInfer(pinned("x-model-version", "9"), request("m"))
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "version 9") {
			t.Errorf("got %v, want UNAVAILABLE naming version 9", err)
		}
	})
}

func TestStickySplit(t *testing.T) {
	b := backend(t, map[string]string{"m": identity("m", `version_policy { all {} }`)}, 1, 2)
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+`
routes:
  - model: m
    pool: cpu
    sticky_header: x-user
    versions: [{version: "1", weight: 50}, {version: "2", weight: 50}]
`, addrs("b", b))
	g.waitReady(t, "m", "1")
	g.waitReady(t, "m", "2")
	const users, each = 200, 5
	var mu sync.Mutex
	got := map[string]map[string]bool{} // user → versions served
	_, errs := hammer(t, g, users*each, 8, func(i int) (context.Context, *inference.ModelInferRequest) {
		return metadata.AppendToOutgoingContext(context.Background(), "x-user", fmt.Sprintf("user-%d", i%users)), request("m")
	})
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	// hammer does not say who sent what: ask again per user, sequentially.
	for u := range users {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", fmt.Sprintf("user-%d", u))
		for range each {
			r, err := g.client.ModelInfer(ctx, request("m"))
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if got[fmt.Sprint(u)] == nil {
				got[fmt.Sprint(u)] = map[string]bool{}
			}
			got[fmt.Sprint(u)][r.ModelVersion] = true
			mu.Unlock()
		}
	}
	on2 := 0
	for u, vs := range got {
		if len(vs) != 1 {
			t.Fatalf("user %s was served by versions %v: a sticky split keeps a user on one", u, vs)
		}
		if vs["2"] {
			on2++
		}
	}
	t.Logf("%d of %d users on version 2", on2, users)
	if on2 < users*3/10 || on2 > users*7/10 {
		t.Errorf("%d of %d users on version 2, want about half", on2, users)
	}
	if c := g.metric(t, "gateway_route_choices_total", map[string]string{"model": "m", "how": "sticky"}); c != 2*users*each {
		t.Errorf("sticky choices %v, want %d", c, 2*users*each)
	}
	// Without the header the split is random.
	versions, errs := hammer(t, g, 200, 4, plain("m"))
	if len(errs) > 0 || versions["1"] == 0 || versions["2"] == 0 {
		t.Errorf("no header: %v %v", versions, errs)
	}
}

// waitMetric polls until a metric reaches want (shadow results arrive
// asynchronously).
func (g *gw) waitMetric(t *testing.T, name string, labels map[string]string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := g.metric(t, name, labels)
		if v >= want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShadowComparesOutputs(t *testing.T) {
	double := strings.Replace(identity("m"), `backend: "identity"`, `backend: "double"`, 1)
	primary := backend(t, map[string]string{"m": identity("m"), "twin": identity("twin")})
	shadow := backend(t, map[string]string{"m": double})
	g := startGateway(t, "pools:\n"+pool("primary", "{primary}")+pool("shadow", "{shadow}")+`
routes:
  - model: m
    pool: primary
    shadow: {pool: shadow, fraction: 1, max_concurrency: 64}
  - model: twin
    pool: primary
    shadow: {model: m, fraction: 1, max_concurrency: 64}
`, addrs("primary", primary, "shadow", shadow))
	g.waitReady(t, "m", "")
	g.waitReady(t, "twin", "")
	time.Sleep(100 * time.Millisecond) // the shadow pool's first health check
	cases := []struct {
		model, result string
	}{
		{"m", "mismatch"}, // shadow doubles
		{"twin", "match"}, // shadow is another identity model
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			const n = 40
			for i := range n {
				r, err := g.client.ModelInfer(context.Background(), request(c.model, 1, 2, 3, float32(i)))
				if err != nil {
					t.Fatal(err)
				}
				if got := outputOf(t, r); fmt.Sprint(got) != fmt.Sprint([]float32{1, 2, 3, float32(i)}) {
					t.Fatalf("the primary's answer changed: %v", got)
				}
			}
			got := g.waitMetric(t, "gateway_shadow_requests_total", map[string]string{"model": c.model, "result": c.result}, n)
			if got != n {
				t.Errorf("gateway_shadow_requests_total{model=%s,result=%s} = %v, want %d", c.model, c.result, got, n)
			}
			if c.result == "mismatch" {
				// |2x − x| peaks at the largest input (39 for i = 39).
				if v := g.metric(t, "gateway_shadow_max_abs_diff", map[string]string{"model": c.model}); v != n {
					t.Errorf("max abs diff observations %v, want %d", v, n)
				}
			}
		})
	}
	// m's copies went to the shadow pool; twin's to m in its own pool.
	if a, b := served(t, shadow, "m"), served(t, primary, "m"); a != 40 || b != 80 {
		t.Errorf("m served %d times by the shadow pool and %d by the primary, want 40 and 80", a, b)
	}
}

func TestShadowNeverDelaysOrFailsThePrimary(t *testing.T) {
	primary := backend(t, map[string]string{"m": identity("m")})
	hang := backend(t, map[string]string{"m": identity("m", litetest.Param("fault_hang_rate", "1"))})
	g := startGateway(t, "pools:\n"+pool("primary", "{primary}")+pool("shadow", "{hang}")+`
routes:
  - model: m
    pool: primary
    timeout: 30s
    shadow: {pool: shadow, fraction: 1, max_concurrency: 2, max_bytes: 200}
`, addrs("primary", primary, "hang", hang))
	g.waitReady(t, "m", "")
	time.Sleep(100 * time.Millisecond)
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := g.client.ModelInfer(ctx, request("m"))
		cancel()
		if err != nil {
			t.Fatalf("primary failed while its shadow hangs: %v", err)
		}
	}
	// Two copies hang in their slots; the other 18 are dropped.
	if got := g.metric(t, "gateway_shadow_requests_total", map[string]string{"model": "m", "result": "dropped"}); got != 18 {
		t.Errorf("dropped shadow copies %v, want 18", got)
	}
	// A request over max_bytes is not copied.
	big := request("m")
	big.Id = strings.Repeat("x", 300)
	if _, err := g.client.ModelInfer(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	if got := g.metric(t, "gateway_shadow_requests_total", map[string]string{"model": "m", "result": "skipped_size"}); got != 1 {
		t.Errorf("skipped_size %v, want 1", got)
	}
}
