package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// strictBackend is a tritonlite with Triton's default --strict-readiness.
func strictBackend(t *testing.T, repo, listen string) *litetest.Server {
	t.Helper()
	return litetest.Start(t, repo, litetest.Config{TCP: true, Listen: listen, Options: tritonlite.Options{
		ControlMode: tritonlite.ModeExplicit, StartupModels: []string{"m"}, StrictReadiness: true}})
}

// With strict readiness a server is not ready while any model failed to
// load (and while a version loads or unloads, during every rollout); the
// versions it has READY are served all the same, and a request for the
// broken model gets the backend's own answer, not the gateway's.
func TestServerNotReadyStillServesReadyVersions(t *testing.T) {
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "m", identity("m"))
	litetest.WriteModel(t, repo, "broken", "name: \"broken\"\nbackend: \"no_such_backend\"\n")
	b := strictBackend(t, repo, "")
	if _, err := b.Client.RepositoryModelLoad(context.Background(), &inference.RepositoryModelLoadRequest{ModelName: "broken"}); err == nil {
		t.Fatal("loading a model with an unknown backend succeeded")
	}
	if r, err := b.Client.ServerReady(context.Background(), &inference.ServerReadyRequest{}); err != nil || r.Ready {
		t.Fatalf("precondition: the strict backend should not be ready with a failed model (ready %v, %v)", r.GetReady(), err)
	}
	g := startGateway(t, `
pools:
  - name: cpu
    endpoints: [{b}]
    health: {interval: 50ms}
routes:
  - {model: m, pool: cpu}
  - {model: broken, pool: cpu}
`, addrs("b", b))
	g.waitReady(t, "m", "1")
	for i := range 20 {
		if _, err := g.client.ModelInfer(context.Background(), request("m", float32(i), 0, 0, 0)); err != nil {
			t.Fatalf("request %d through the gateway: %v", i, err)
		}
	}
	_, direct := b.Client.ModelInfer(context.Background(), request("broken"))
	_, via := g.client.ModelInfer(context.Background(), request("broken"))
	if status.Code(via) != status.Code(direct) || strings.Contains(status.Convert(via).Message(), "no ready backend") {
		t.Fatalf("broken model: gateway answered %v, the backend itself %v", via, direct)
	}
}

// A backend that restarts takes traffic again as soon as it is back, and a
// request that comes while it is down waits for it (within its deadline)
// instead of failing at once.
func TestRequestWaitsForARestartingBackend(t *testing.T) {
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "m", identity("m"))
	b := strictBackend(t, repo, "")
	g := startGateway(t, `
defaults: {no_backend_wait: 20s}
pools:
  - name: cpu
    endpoints: [{b}]
    health: {interval: 50ms, timeout: 200ms}
routes:
  - {model: m, pool: cpu}
`, addrs("b", b))
	g.waitReady(t, "m", "")
	b.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := g.client.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: "m"})
		if err == nil && !r.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway never noticed that its only backend went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := g.client.ModelInfer(ctx, request("m", 7, 0, 0, 0))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the request did not wait for a backend: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	strictBackend(t, repo, b.Addr) // the same address, as a restarted pod behind a Service
	if err := <-done; err != nil {
		t.Fatalf("the request that waited for the restarted backend failed: %v", err)
	}
	// And with no backend at all, the wait is bounded: UNAVAILABLE.
	g2 := startGateway(t, `
defaults: {no_backend_wait: 100ms}
pools:
  - name: cpu
    endpoints: [127.0.0.1:1]
    health: {interval: 50ms, timeout: 200ms}
routes:
  - {model: m, pool: cpu}
`, nil)
	_, err := g2.client.ModelInfer(context.Background(), request("m"))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("no backend at all: got %v, want UNAVAILABLE", err)
	}
}
