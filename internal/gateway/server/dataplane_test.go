package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// load sends requests from n goroutines until stop, counting outcomes.
type load struct {
	stop     atomic.Bool
	ok, fail atomic.Int64
	first    atomic.Value
	wg       sync.WaitGroup
}

func startLoad(g *gw, n int, mk func() *inference.ModelInferRequest) *load {
	l := &load{}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stop.Load() {
				if _, err := g.client.ModelInfer(context.Background(), mk()); err != nil {
					l.fail.Add(1)
					l.first.CompareAndSwap(nil, err)
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) end(t *testing.T) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	t.Logf("%d requests ok, %d failed", l.ok.Load(), l.fail.Load())
	if l.fail.Load() > 0 {
		t.Errorf("%d requests failed, first: %v", l.fail.Load(), l.first.Load())
	}
	if l.ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}

// TestBackendLeavingLosesNothing: one backend stops gracefully (GOAWAY) and
// another is killed outright while requests are in flight on both; the
// gateway finishes or retries every request on the backend that stays.
func TestBackendLeavingLosesNothing(t *testing.T) {
	slow := identity("m", litetest.Param("fault_latency", "20ms"))
	a, b, c := backend(t, map[string]string{"m": slow}), backend(t, map[string]string{"m": slow}), backend(t, map[string]string{"m": slow})
	g := startGateway(t, "defaults:\n  retry: {max_attempts: 3, min_per_second: 1000}\npools:\n"+pool("cpu", "{a}", "{b}", "{c}")+"routes:\n  - {model: m, pool: cpu}\n",
		addrs("a", a, "b", b, "c", c))
	g.waitReady(t, "m", "")
	time.Sleep(100 * time.Millisecond) // every backend checked and connected
	l := startLoad(g, 16, func() *inference.ModelInferRequest { return request("m") })
	time.Sleep(300 * time.Millisecond)
	go a.GRPC().GracefulStop() // GOAWAY: streams in flight finish, new ones go elsewhere
	time.Sleep(300 * time.Millisecond)
	b.GRPC().Stop() // connections cut: requests in flight fail over (UNAVAILABLE, retried)
	time.Sleep(300 * time.Millisecond)
	l.end(t)
	if served(t, c, "m") == 0 {
		t.Error("the remaining backend served nothing")
	}
}

func TestClientCancelReachesTheBackend(t *testing.T) {
	b := backend(t, map[string]string{"hang": identity("hang", litetest.Param("fault_hang_rate", "1"))})
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+"routes:\n  - {model: hang, pool: cpu}\n", addrs("b", b))
	g.waitReady(t, "hang", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := g.client.ModelInfer(ctx, request("hang"))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for g.metric(t, "gateway_backend_in_flight_requests", map[string]string{"pool": "cpu"}) != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("got %v, want CANCELLED", err)
	}
	// The backend call ends too (no stream left hanging on the backend).
	deadline = time.Now().Add(5 * time.Second)
	for g.metric(t, "gateway_backend_in_flight_requests", map[string]string{"pool": "cpu"}) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the backend call outlived the client's cancel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := g.metric(t, "gateway_requests_total", map[string]string{"model": "hang", "code": "Canceled"}); got != 1 {
		t.Errorf("gateway_requests_total{code=Canceled} = %v, want 1", got)
	}
	// Cancels are not the backend's fault.
	if g.metric(t, "gateway_breaker_state", map[string]string{"endpoint": b.Addr}) != 0 {
		t.Error("a client's cancel counted against the backend")
	}
}

// TestCompressedAndLargeMessages: gzip-compressed calls take the full
// grpc-go path, large tensors the data plane with flow control both ways;
// answers match the backend's own.
func TestCompressedAndLargeMessages(t *testing.T) {
	wide := `name: "wide"
backend: "identity"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
`
	b := backend(t, map[string]string{"wide": wide, "m": identity("m")})
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+"routes:\n  - {model: wide, pool: cpu}\n  - {model: m, pool: cpu}\n", addrs("b", b))
	g.waitReady(t, "wide", "")
	g.waitReady(t, "m", "")
	for _, n := range []int{1, 1000, 1 << 21} { // up to 8 MiB of FP32
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(i % 1000)
		}
		req := &inference.ModelInferRequest{ModelName: "wide", Id: fmt.Sprint(n)}
		tensor.SetRequestInputs(req, []tensor.Tensor{tensor.Of("INPUT0", []int64{int64(n)}, vals)})
		big := grpc.MaxCallRecvMsgSize(64 << 20)
		for _, opts := range [][]grpc.CallOption{{big}, {big, grpc.UseCompressor(gzip.Name)}} {
			got, err := g.client.ModelInfer(context.Background(), req, opts...)
			if err != nil {
				t.Fatalf("%d values (compressed %v): %v", n, len(opts) > 1, err)
			}
			want, err := b.Client.ModelInfer(context.Background(), req, big)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("%d values (compressed %v): the answer differs from the backend's", n, len(opts) > 1)
			}
		}
	}
	// Both paths count requests.
	if got := g.metric(t, "gateway_requests_total", map[string]string{"model": "wide", "code": "OK"}); got != 6 {
		t.Errorf("gateway_requests_total{model=wide} = %v, want 6", got)
	}
	// A malformed request through the compressed path is refused the same way.
	bad := request("m")
	bad.RawInputContents[0] = bad.RawInputContents[0][:3]
	_, err := g.client.ModelInfer(context.Background(), bad, grpc.UseCompressor(gzip.Name))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "'INPUT0'") {
		t.Errorf("compressed malformed request: %v", err)
	}
}
