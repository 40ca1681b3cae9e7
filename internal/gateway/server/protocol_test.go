package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/gateway/server"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

const addSub = `name: "simple"
backend: "add_sub"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
`

// TestPlainTritonClientWorksUnchanged drives the gateway with the client
// generated from Triton's protos, as an application would, and compares every
// answer with the backend's own.
func TestPlainTritonClientWorksUnchanged(t *testing.T) {
	cpu := backend(t, map[string]string{"m": identity("m"), "simple": addSub})
	gpu := backend(t, map[string]string{"big": identity("big")})
	g := startGateway(t, "pools:\n"+pool("cpu", "{cpu}")+pool("gpu", "{gpu}")+`
routes:
  - {model: m, pool: cpu}
  - {model: simple, pool: cpu}
  - {model: big, pool: gpu}
`, addrs("cpu", cpu, "gpu", gpu))
	g.waitReady(t, "m", "")
	g.waitReady(t, "simple", "")
	g.waitReady(t, "big", "")
	ctx := context.Background()
	c := g.client

	t.Run("server", func(t *testing.T) {
		if r, err := c.ServerLive(ctx, &inference.ServerLiveRequest{}); err != nil || !r.Live {
			t.Errorf("ServerLive %v %v", r, err)
		}
		if r, err := c.ServerReady(ctx, &inference.ServerReadyRequest{}); err != nil || !r.Ready {
			t.Errorf("ServerReady %v %v", r, err)
		}
		if r, err := c.ServerMetadata(ctx, &inference.ServerMetadataRequest{}); err != nil || r.Name != "triton" {
			t.Errorf("ServerMetadata %v %v", r, err)
		}
	})
	t.Run("ready", func(t *testing.T) {
		for _, q := range []struct {
			name, version string
			want          bool
		}{{"m", "", true}, {"m", "1", true}, {"m", "2", false}, {"nope", "", false}} {
			r, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: q.name, Version: q.version})
			if err != nil || r.Ready != q.want {
				t.Errorf("ModelReady(%s, %q) = %v %v, want %v", q.name, q.version, r, err, q.want)
			}
		}
	})
	t.Run("metadata and config as the backend's", func(t *testing.T) {
		for _, b := range []struct {
			model string
			be    *litetest.Server
		}{{"m", cpu}, {"simple", cpu}, {"big", gpu}} {
			got, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: b.model})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := b.be.Client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: b.model})
			if !proto.Equal(got, want) {
				t.Errorf("metadata of %s through the gateway %v, directly %v", b.model, got, want)
			}
			gc, err := c.ModelConfig(ctx, &inference.ModelConfigRequest{Name: b.model, Version: "1"})
			if err != nil {
				t.Fatal(err)
			}
			wc, _ := b.be.Client.ModelConfig(ctx, &inference.ModelConfigRequest{Name: b.model, Version: "1"})
			if !proto.Equal(gc, wc) {
				t.Errorf("config of %s differs through the gateway", b.model)
			}
		}
		if _, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
			t.Errorf("metadata of an unknown model: %v, want NOT_FOUND", err)
		}
	})
	t.Run("statistics", func(t *testing.T) {
		if _, err := c.ModelInfer(ctx, request("m")); err != nil {
			t.Fatal(err)
		}
		st, err := c.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: "m"})
		if err != nil || len(st.ModelStats) != 1 || st.ModelStats[0].InferenceCount == 0 {
			t.Errorf("ModelStatistics %v %v", st, err)
		}
		if _, err := c.ModelStatistics(ctx, &inference.ModelStatisticsRequest{}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("statistics of every model: %v, want INVALID_ARGUMENT", err)
		}
	})
	t.Run("repository index over pools", func(t *testing.T) {
		idx, err := c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range idx.Models {
			names = append(names, m.Name+"/"+m.Version+"/"+m.State)
		}
		if got := strings.Join(names, " "); got != "big/1/READY m/1/READY simple/1/READY" {
			t.Errorf("index %s", got)
		}
		if _, err := c.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "m"}); status.Code(err) != codes.Unimplemented {
			t.Errorf("load through the gateway: %v, want UNIMPLEMENTED", err)
		}
	})
	t.Run("infer raw and typed", func(t *testing.T) {
		in0 := make([]int32, 16)
		in1 := make([]int32, 16)
		for i := range in0 {
			in0[i], in1[i] = int32(i), 1
		}
		raw := &inference.ModelInferRequest{ModelName: "simple", Id: "r1"}
		tensor.SetRequestInputs(raw, []tensor.Tensor{tensor.Of("INPUT0", []int64{1, 16}, in0), tensor.Of("INPUT1", []int64{1, 16}, in1)})
		typed := &inference.ModelInferRequest{ModelName: "simple", Id: "t1", Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 16}, Contents: &inference.InferTensorContents{IntContents: in0}},
			{Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, 16}, Contents: &inference.InferTensorContents{IntContents: in1}},
		}, Outputs: []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT1"}}}
		for _, req := range []*inference.ModelInferRequest{raw, typed} {
			got, err := c.ModelInfer(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			want, err := cpu.Client.ModelInfer(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("request %s: through the gateway %v, directly %v", req.Id, got, want)
			}
		}
	})
	t.Run("stream", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		stream, err := c.ModelStreamInfer(sctx)
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		for i := range n {
			req := request("m", float32(i), 0, 0, 0)
			req.Id = fmt.Sprint(i)
			if i == 7 {
				req.ModelName = "nope" // an error answers in the stream, which stays open
			}
			if i == 11 {
				req.ModelName = "big"
			}
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			id := r.InferResponse.GetId()
			seen[id] = true
			switch id {
			case "7":
				if !strings.Contains(r.ErrorMessage, "Request for unknown model: 'nope' is not found") {
					t.Errorf("error answer %q", r.ErrorMessage)
				}
				// Triton's answer to a request it could not issue: the id only.
				if r.InferResponse.GetModelName() != "" || len(r.InferResponse.GetParameters()) != 0 {
					t.Errorf("error answer carries %v, want only the id", r.InferResponse)
				}
			default:
				if r.ErrorMessage != "" {
					t.Errorf("request %s: %s", id, r.ErrorMessage)
					continue
				}
				out := outputOf(t, r.InferResponse)
				if fmt.Sprint(out[0]) != id {
					t.Errorf("response %s carries %v", id, out)
				}
				if p := r.InferResponse.GetParameters()["triton_final_response"]; !p.GetBoolParam() {
					t.Errorf("response %s: triton_final_response %v, want true (Triton's stream marks every response)", id, p)
				}
				if want := map[bool]string{true: "big", false: "m"}[id == "11"]; r.InferResponse.ModelName != want {
					t.Errorf("response %s from model %s, want %s", id, r.InferResponse.ModelName, want)
				}
			}
		}
		if len(seen) != n {
			t.Errorf("%d answers for %d requests", len(seen), n)
		}
	})
	t.Run("grpc health", func(t *testing.T) {
		r, err := healthpb.NewHealthClient(g.conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %v %v", r, err)
		}
	})
	t.Run("reflection", func(t *testing.T) {
		s, err := reflectpb.NewServerReflectionClient(g.conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.CloseSend()
		if err := s.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "inference.GRPCInferenceService"}}); err != nil {
			t.Fatal(err)
		}
		r, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if fd := r.GetFileDescriptorResponse(); fd == nil || len(fd.FileDescriptorProto) == 0 {
			t.Errorf("reflection cannot describe GRPCInferenceService: %v", r)
		}
	})
}

func TestBadInputIsRefusedClearly(t *testing.T) {
	b := backend(t, map[string]string{"m": identity("m")})
	g := startGateway(t, "max_message_bytes: 4096\npools:\n"+pool("cpu", "{b}")+"routes:\n  - {model: m, pool: cpu}\n", addrs("b", b))
	g.waitReady(t, "m", "")
	ctx := context.Background()
	huge := request("m")
	huge.RawInputContents[0] = make([]byte, 8192)
	cases := []struct {
		name string
		req  *inference.ModelInferRequest
		code codes.Code
		want string
	}{
		{"unknown model", &inference.ModelInferRequest{ModelName: "nope"}, codes.NotFound, "Request for unknown model: 'nope' is not found"},
		{"no model name", &inference.ModelInferRequest{}, codes.NotFound, "unknown model: ''"},
		{"oversize", huge, codes.ResourceExhausted, "larger than max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := g.client.ModelInfer(ctx, c.req)
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.want) {
				t.Errorf("got %v, want %s containing %q", err, c.code, c.want)
			}
		})
	}
	if n := served(t, b, "m"); n != 0 {
		t.Errorf("refused requests reached the backend (%d)", n)
	}
	if got := g.metric(t, "gateway_invalid_requests_total", map[string]string{"reason": "unknown_model"}); got != 2 {
		t.Errorf("invalid unknown_model %v, want 2", got)
	}
	// And the gateway still serves.
	if _, err := g.client.ModelInfer(ctx, request("m")); err != nil {
		t.Fatal(err)
	}
}

// sameAnswer requires the gateway's error to be the backend's own: code and
// message.
func sameAnswer(t *testing.T, what string, direct, through error) {
	t.Helper()
	d, g := status.Convert(direct), status.Convert(through)
	if direct == nil || d.Code() != g.Code() || d.Message() != g.Message() {
		t.Errorf("%s:\n  backend: %v %q\n  gateway: %v %q", what, d.Code(), d.Message(), g.Code(), g.Message())
	}
}

// streamError sends one request on a ModelStreamInfer stream and returns its
// error_message as an error ("" : nil).
func streamError(t *testing.T, c inference.GRPCInferenceServiceClient, req *inference.ModelInferRequest) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(req); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	s.CloseSend()
	if r.GetErrorMessage() == "" {
		return nil
	}
	return status.Error(codes.Unknown, r.GetErrorMessage())
}

// TestBadTensorsGetTheBackendsAnswer: a request with bad tensors is answered
// by the backend, so the client reads Triton's message, in Triton's order of
// checks (which depends on the model: a wrong shape is reported before a
// wrong size), whether unary or on a stream.
func TestBadTensorsGetTheBackendsAnswer(t *testing.T) {
	b := backend(t, map[string]string{"simple": addSub, "s": `name: "s"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
`})
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+"routes:\n  - {model: simple, pool: cpu}\n  - {model: s, pool: cpu}\n", addrs("b", b))
	g.waitReady(t, "simple", "")
	g.waitReady(t, "s", "")
	in := func(name, dt string, shape ...int64) *inference.ModelInferRequest_InferInputTensor {
		return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape}
	}
	ints := func(n int) *inference.InferTensorContents {
		return &inference.InferTensorContents{IntContents: make([]int32, n)}
	}
	raw := func(n int) []byte { return make([]byte, n) }
	ok := []*inference.ModelInferRequest_InferInputTensor{in("INPUT0", "INT32", 1, 16), in("INPUT1", "INT32", 1, 16)}
	cases := []struct {
		name string
		req  *inference.ModelInferRequest
	}{
		{"short raw", &inference.ModelInferRequest{ModelName: "simple", Inputs: ok, RawInputContents: [][]byte{raw(60), raw(64)}}},
		{"wrong shape and size", &inference.ModelInferRequest{ModelName: "simple",
			Inputs: []*inference.ModelInferRequest_InferInputTensor{in("INPUT0", "INT32", 1, 8), ok[1]}, RawInputContents: [][]byte{raw(64), raw(64)}}},
		{"duplicate input", &inference.ModelInferRequest{ModelName: "simple", Inputs: []*inference.ModelInferRequest_InferInputTensor{ok[0], ok[0]}, RawInputContents: [][]byte{raw(64), raw(64)}}},
		{"missing raw", &inference.ModelInferRequest{ModelName: "simple", Inputs: ok, RawInputContents: [][]byte{raw(64)}}},
		{"negative dim", &inference.ModelInferRequest{ModelName: "simple",
			Inputs: []*inference.ModelInferRequest_InferInputTensor{in("INPUT0", "INT32", 1, -16), ok[1]}, RawInputContents: [][]byte{raw(64), raw(64)}}},
		{"typed count", &inference.ModelInferRequest{ModelName: "simple", Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 16}, Contents: ints(15)}, {Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, 16}, Contents: ints(16)}}}},
		{"typed and raw", &inference.ModelInferRequest{ModelName: "simple", Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 16}, Contents: ints(16)}, ok[1]}, RawInputContents: [][]byte{raw(64)}}},
		{"string count", &inference.ModelInferRequest{ModelName: "s", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("INPUT0", "BYTES", 1, 3)},
			RawInputContents: [][]byte{tensor.EncodeBytes([][]byte{[]byte("a")})}}},
		{"string length prefix", &inference.ModelInferRequest{ModelName: "s", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("INPUT0", "BYTES", 1, 1)},
			RawInputContents: [][]byte{{1, 0}}}},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, direct := b.Client.ModelInfer(ctx, c.req)
			_, through := g.client.ModelInfer(ctx, c.req)
			sameAnswer(t, "ModelInfer", direct, through)
			sameAnswer(t, "ModelStreamInfer", streamError(t, b.Client, c.req), streamError(t, g.client, c.req))
		})
	}
}

// TestUnknownVersionGetsTheBackendsAnswer: a version no backend has READY,
// named by the request (or none, once the model is unloaded), is answered by
// a backend that is up, as Triton answers it; statistics of a model the
// gateway does not route get Triton's answer for a model it does not serve.
func TestUnknownVersionGetsTheBackendsAnswer(t *testing.T) {
	b := backend(t, map[string]string{"m": identity("m"), "gone": identity("gone")})
	g := startGateway(t, "pools:\n"+pool("cpu", "{b}")+"routes:\n  - {model: m, pool: cpu}\n  - {model: gone, pool: cpu}\n", addrs("b", b))
	g.waitReady(t, "m", "")
	g.waitReady(t, "gone", "")
	ctx := context.Background()
	compare := func(t *testing.T, model, version string) {
		t.Helper()
		req := request(model)
		req.ModelVersion = version
		_, direct := b.Client.ModelInfer(ctx, req)
		_, through := g.client.ModelInfer(ctx, req)
		sameAnswer(t, "ModelInfer", direct, through)
		sameAnswer(t, "ModelStreamInfer", streamError(t, b.Client, req), streamError(t, g.client, req))
		_, direct = b.Client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: model, Version: version})
		_, through = g.client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: model, Version: version})
		sameAnswer(t, "ModelMetadata", direct, through)
		_, direct = b.Client.ModelConfig(ctx, &inference.ModelConfigRequest{Name: model, Version: version})
		_, through = g.client.ModelConfig(ctx, &inference.ModelConfigRequest{Name: model, Version: version})
		sameAnswer(t, "ModelConfig", direct, through)
		_, direct = b.Client.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: model, Version: version})
		_, through = g.client.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: model, Version: version})
		sameAnswer(t, "ModelStatistics", direct, through)
	}
	t.Run("unknown version", func(t *testing.T) { compare(t, "m", "9") })
	t.Run("malformed version", func(t *testing.T) { compare(t, "m", "x") })
	t.Run("statistics of a model not routed", func(t *testing.T) {
		_, direct := b.Client.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: "nope"})
		_, through := g.client.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: "nope"})
		sameAnswer(t, "ModelStatistics", direct, through)
	})
	t.Run("unloaded model", func(t *testing.T) {
		if _, err := b.Client.RepositoryModelUnload(ctx, &inference.RepositoryModelUnloadRequest{ModelName: "gone"}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := g.client.ModelReady(ctx, &inference.ModelReadyRequest{Name: "gone"})
			if err == nil && !r.Ready {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the gateway still sees the unloaded model ready")
			}
			time.Sleep(20 * time.Millisecond)
		}
		compare(t, "gone", "")
		compare(t, "gone", "1")
	})
}

// TestDNSPoolFollowsTheRecords resolves a pool's name through an injected
// resolver whose answer changes, as a headless Service's does when pods come
// and go.
func TestDNSPoolFollowsTheRecords(t *testing.T) {
	models := map[string]string{"m": identity("m")}
	a := backend(t, models)
	_, port, _ := net.SplitHostPort(a.Addr)
	b := litetest.Start(t, writeRepo(t, models), litetest.Config{TCP: true, Listen: "127.0.0.2:" + port,
		Options: tritonlite.Options{ControlMode: tritonlite.ModeExplicit, StartupModels: []string{"*"}}})
	var mu sync.Mutex
	records := []string{"127.0.0.1"}
	lookup := func(_ context.Context, host string) ([]string, error) {
		if host != "triton-cpu.models.svc.cluster.local" {
			return nil, fmt.Errorf("no such host %s", host)
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), records...), nil
	}
	g := startGateway(t, `
pools:
  - name: cpu
    dns: dns:///triton-cpu.models.svc.cluster.local:`+port+`
    refresh: 50ms
    health: {interval: 50ms}
routes:
  - {model: m, pool: cpu}
`, nil, func(o *server.Options) { o.LookupHost = lookup })
	g.waitReady(t, "m", "")
	set := func(r ...string) {
		mu.Lock()
		records = r
		mu.Unlock()
	}
	waitBackends := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for g.metric(t, "gateway_backend_ready", nil) != float64(want) || len(gatherLabels(t, g, "gateway_backend_ready")) != want {
			if time.Now().After(deadline) {
				t.Fatalf("pool never had %d ready backends (%v)", want, gatherLabels(t, g, "gateway_backend_ready"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send := func() {
		t.Helper()
		if _, errs := hammer(t, g, 100, 4, plain("m")); len(errs) > 0 {
			t.Fatal(errs[0])
		}
	}
	send()
	if served(t, a, "m") != 100 || served(t, b, "m") != 0 {
		t.Fatalf("one record: a served %d, b %d", served(t, a, "m"), served(t, b, "m"))
	}
	set("127.0.0.1", "127.0.0.2")
	waitBackends(2)
	send()
	if served(t, b, "m") == 0 {
		t.Error("the new pod behind the name gets no traffic")
	}
	set("127.0.0.2")
	waitBackends(1)
	before := served(t, a, "m")
	send()
	if served(t, a, "m") != before {
		t.Error("the pod gone from the records still gets traffic")
	}
}

// gatherLabels lists the endpoint labels of a metric's series.
func gatherLabels(t *testing.T, g *gw, name string) []string {
	fams, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "endpoint" {
						out = append(out, l.GetValue())
					}
				}
			}
		}
	}
	return out
}

// TestLeastLoadedBackendGetsMore: with one backend 20 ms slower, power of two
// choices on in-flight requests sends most traffic to the fast one.
func TestLeastLoadedBackendGetsMore(t *testing.T) {
	fast := backend(t, map[string]string{"m": identity("m")})
	slow := backend(t, map[string]string{"m": identity("m", litetest.Param("fault_latency", "20ms"))})
	g := startGateway(t, "pools:\n"+pool("cpu", "{fast}", "{slow}")+"routes:\n  - {model: m, pool: cpu}\n", addrs("fast", fast, "slow", slow))
	g.waitReady(t, "m", "")
	time.Sleep(100 * time.Millisecond) // both checked
	if _, errs := hammer(t, g, 400, 8, plain("m")); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	f, s := served(t, fast, "m"), served(t, slow, "m")
	t.Logf("fast backend served %d, slow %d", f, s)
	if f < 3*s {
		t.Errorf("fast backend served %d, slow %d: want the fast one to take most", f, s)
	}
}
