package tritonlite_test

import (
	"context"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// harness is a tritonlite server on an in-memory gRPC connection.
type harness struct {
	srv     *tritonlite.Server
	client  inference.GRPCInferenceServiceClient
	reg     *prometheus.Registry
	crashed chan struct{}
	lite    *litetest.Server
}

type option func(*tritonlite.Options)

func start(t *testing.T, repo string, mode tritonlite.ControlMode, opts ...option) *harness {
	t.Helper()
	o := tritonlite.Options{ControlMode: mode, StrictReadiness: true}
	for _, f := range opts {
		f(&o)
	}
	s := litetest.Start(t, repo, litetest.Config{Options: o})
	return &harness{srv: s.Server, client: s.Client, reg: s.Registry, crashed: s.Crashed, lite: s}
}

func writeModel(t *testing.T, repo, name, config string, versions ...int) {
	t.Helper()
	litetest.WriteModel(t, repo, name, config, versions...)
}

func itoa(v int) string { return strconv.Itoa(v) }

var identityFP32 = litetest.Identity("ident")

const addSubInt32 = `name: "simple"
backend: "add_sub"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
`

func fp32Request(model string, rows int, vals ...float32) *inference.ModelInferRequest {
	req := &inference.ModelInferRequest{ModelName: model}
	tensor.SetRequestInputs(req, []tensor.Tensor{tensor.Of("INPUT0", []int64{int64(rows), 4}, vals)})
	return req
}

func seq(n int, from float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = from + float32(i)
	}
	return out
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Fatalf("got %s %q, want %s containing %q", st.Code(), st.Message(), code, msg)
	}
}

func TestInferBuiltins(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	writeModel(t, repo, "simple", addSubInt32)
	h := start(t, repo, tritonlite.ModeNone)
	ctx := context.Background()

	resp, err := h.client.ModelInfer(ctx, fp32Request("ident", 2, seq(8, 1)...))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := tensor.ResponseOutputs(resp)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tensor.Values[float32](outs[0])
	if resp.ModelVersion != "1" || outs[0].Name != "OUTPUT0" || !slices.Equal(outs[0].Shape, []int64{2, 4}) || !slices.Equal(got, seq(8, 1)) {
		t.Fatalf("identity: %+v %v", outs[0], got)
	}

	a := make([]int32, 16)
	b := make([]int32, 16)
	for i := range a {
		a[i], b[i] = int32(i), 1
	}
	req := &inference.ModelInferRequest{ModelName: "simple", Id: "req-7",
		Outputs: []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT1"}}}
	tensor.SetRequestInputs(req, []tensor.Tensor{tensor.Of("INPUT0", []int64{1, 16}, a), tensor.Of("INPUT1", []int64{1, 16}, b)})
	resp, err = h.client.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	outs, _ = tensor.ResponseOutputs(resp)
	diff, _ := tensor.Values[int32](outs[0])
	if resp.Id != "req-7" || len(outs) != 1 || outs[0].Name != "OUTPUT1" || diff[5] != 4 {
		t.Fatalf("add_sub: %+v %v", resp, diff)
	}
}

// TestBadRequests: each bad request gets the code and message Triton gives.
func TestBadRequests(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	writeModel(t, repo, "simple", addSubInt32)
	writeModel(t, repo, "words", `name: "words" backend: "identity" max_batch_size: 0
input [ { name: "IN" data_type: TYPE_STRING dims: [ 2 ] } ] output [ { name: "OUT" data_type: TYPE_STRING dims: [ 2 ] } ]`)
	h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.StartupModels = []string{"*"} })
	ctx := context.Background()
	type rawIn struct {
		meta *inference.ModelInferRequest_InferInputTensor
		data []byte
	}
	in := func(name, dt string, shape []int64, data []byte) rawIn {
		return rawIn{&inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape}, data}
	}
	req := func(model, version string, inputs ...rawIn) *inference.ModelInferRequest {
		r := &inference.ModelInferRequest{ModelName: model, ModelVersion: version}
		for _, x := range inputs {
			r.Inputs = append(r.Inputs, x.meta)
			r.RawInputContents = append(r.RawInputContents, x.data)
		}
		return r
	}
	f16 := make([]byte, 16)
	tests := []struct {
		name string
		req  *inference.ModelInferRequest
		code codes.Code
		msg  string
	}{
		{"unknown model", req("nope", ""), codes.NotFound, "Request for unknown model: 'nope' is not found"},
		{"unknown version", fp32Request("ident", 1, seq(4, 0)...), codes.NotFound, "Request for unknown model: 'ident' version 9 is not found"},
		{"bad version", req("ident", "x"), codes.InvalidArgument, "failed to get model version from specified version string 'x'"},
		{"negative version", req("ident", "-2"), codes.InvalidArgument, "invalid model version specified '-2' , version should be an integral value > 0"},
		{"wrong input name", req("ident", "", in("IMAGE", "FP32", []int64{1, 4}, f16)), codes.InvalidArgument, "unexpected inference input 'IMAGE' for model 'ident'"},
		{"missing input", req("simple", "", in("INPUT0", "INT32", []int64{1, 16}, make([]byte, 64))), codes.InvalidArgument,
			"[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s)."},
		{"wrong dtype", req("ident", "", in("INPUT0", "INT32", []int64{1, 4}, f16)), codes.InvalidArgument,
			"[request id: <id_unknown>] inference input 'INPUT0' data-type is 'INT32', but model 'ident' expects 'FP32'"},
		{"wrong shape", req("ident", "", in("INPUT0", "FP32", []int64{1, 3}, f16)), codes.InvalidArgument,
			"[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'ident'. Expected [-1,4], got [1,3]. NOTE: Setting a non-zero max_batch_size"},
		{"no batch dim", req("ident", "", in("INPUT0", "FP32", nil, f16)), codes.InvalidArgument,
			"input 'INPUT0' has no shape but model requires batch dimension for 'ident'"},
		{"batch too big", req("ident", "", in("INPUT0", "FP32", []int64{9, 4}, make([]byte, 144))), codes.InvalidArgument,
			"[request id: <id_unknown>] inference request batch-size must be <= 8 for 'ident'"},
		{"byte size", req("ident", "", in("INPUT0", "FP32", []int64{2, 4}, f16)), codes.InvalidArgument,
			"[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'ident'. Expected 32, got 16"},
		{"wildcard in request", req("words", "", in("IN", "BYTES", []int64{-1}, nil)), codes.InvalidArgument,
			"All input dimensions should be specified for input 'IN' for model 'words', got [-1]"},
		{"non-batching shape", req("words", "", in("IN", "BYTES", []int64{3}, nil)), codes.InvalidArgument,
			"unexpected shape for input 'IN' for model 'words'. Expected [2], got [3]. "},
		{"bytes count", req("words", "", in("IN", "BYTES", []int64{2}, tensor.EncodeBytes([][]byte{[]byte("x")}))), codes.InvalidArgument, "expected 2 string elements for inference input 'IN' for model 'words', got 1"},
		{"bytes truncated", req("words", "", in("IN", "BYTES", []int64{2}, []byte{1, 0, 0, 0, 'a', 2, 0})), codes.InvalidArgument,
			"incomplete string length indicator for inference input 'IN' for model 'words', expecting 4 bytes but only 2 bytes available"},
		{"unknown output", func() *inference.ModelInferRequest {
			r := fp32Request("ident", 1, seq(4, 0)...)
			r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "PROBS"}}
			return r
		}(), codes.InvalidArgument, "unexpected inference output 'PROBS' for model 'ident'"},
		{"duplicate input", func() *inference.ModelInferRequest {
			r := fp32Request("ident", 1, seq(4, 0)...)
			r.Inputs = append(r.Inputs, r.Inputs[0])
			r.RawInputContents = append(r.RawInputContents, r.RawInputContents[0])
			return r
		}(), codes.InvalidArgument, "[request id: <id_unknown>] input 'INPUT0' already exists in request"},
		{"contents and raw", func() *inference.ModelInferRequest {
			r := fp32Request("ident", 1, seq(4, 0)...)
			r.Inputs[0].Contents = &inference.InferTensorContents{Fp32Contents: seq(4, 0)}
			return r
		}(), codes.InvalidArgument, "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'ident'"},
		{"timeout type", func() *inference.ModelInferRequest {
			r := fp32Request("ident", 1, seq(4, 0)...)
			r.Parameters = map[string]*inference.InferParameter{"timeout": {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "1s"}}}
			return r
		}(), codes.InvalidArgument, "invalid value type for 'timeout' parameter, expected int64_param."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unknown version" {
				tc.req.ModelVersion = "9"
			}
			_, err := h.client.ModelInfer(ctx, tc.req)
			wantCode(t, err, tc.code, tc.msg)
		})
	}
	// Typed contents work where raw is not used.
	r := &inference.ModelInferRequest{ModelName: "ident", Inputs: []*inference.ModelInferRequest_InferInputTensor{{
		Name: "INPUT0", Datatype: "FP32", Shape: []int64{1, 4}, Contents: &inference.InferTensorContents{Fp32Contents: seq(4, 3)}}}}
	if _, err := h.client.ModelInfer(ctx, r); err != nil {
		t.Fatal(err)
	}
	// The server is still fine after all of it.
	if _, err := h.client.ModelInfer(ctx, fp32Request("ident", 1, seq(4, 0)...)); err != nil {
		t.Fatal(err)
	}
}

// TestOversizeRequest: a message over the server's limit is refused by gRPC
// with RESOURCE_EXHAUSTED naming both sizes.
func TestOversizeRequest(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	s := litetest.Start(t, repo, litetest.Config{ServerOptions: []grpc.ServerOption{grpc.MaxRecvMsgSize(1 << 10)}})
	_, err := s.Client.ModelInfer(context.Background(), fp32Request("ident", 8, seq(600, 0)...))
	wantCode(t, err, codes.ResourceExhausted, "received message larger than max")
}

// TestPlainClient drives the server with nothing but a client generated from
// Triton's protos: metadata, config, load, infer, stream, unload.
func TestPlainClient(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "simple", addSubInt32)
	h := start(t, repo, tritonlite.ModeExplicit)
	c := h.client
	ctx := context.Background()

	if r, err := c.ServerLive(ctx, &inference.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("live: %v %v", r, err)
	}
	if r, _ := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "simple"}); r.Ready {
		t.Fatal("not loaded yet, must not be ready")
	}
	idx, err := c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if err != nil || len(idx.Models) != 1 || idx.Models[0].Name != "simple" || idx.Models[0].State != "" {
		t.Fatalf("index before load: %v %v", idx, err)
	}
	if _, err := c.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "simple"}); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "simple", Version: "1"}); !r.Ready {
		t.Fatal("loaded model not ready")
	}
	md, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "simple"})
	if err != nil || md.Platform != "add_sub" || !slices.Equal(md.Versions, []string{"1"}) || md.Inputs[1].Name != "INPUT1" || md.Inputs[1].Datatype != "INT32" || !slices.Equal(md.Inputs[1].Shape, []int64{-1, 16}) {
		t.Fatalf("metadata: %v %v", md, err)
	}
	mc, err := c.ModelConfig(ctx, &inference.ModelConfigRequest{Name: "simple"})
	if err != nil || mc.Config.MaxBatchSize != 8 || mc.Config.InstanceGroup[0].Kind != inference.ModelInstanceGroup_KIND_CPU {
		t.Fatalf("config: %v %v", mc, err)
	}

	// Infer with typed contents, as a minimal client would.
	a := make([]int32, 16)
	b := make([]int32, 16)
	for i := range a {
		a[i], b[i] = int32(i), int32(2*i)
	}
	req := &inference.ModelInferRequest{ModelName: "simple", Inputs: []*inference.ModelInferRequest_InferInputTensor{
		{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 16}, Contents: &inference.InferTensorContents{IntContents: a}},
		{Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, 16}, Contents: &inference.InferTensorContents{IntContents: b}},
	}}
	resp, err := c.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.RawOutputContents) != 2 || len(resp.RawOutputContents[0]) != 64 || resp.Outputs[0].Datatype != "INT32" {
		t.Fatalf("response %v", resp)
	}
	// OUTPUT0[3] = 3 + 6, little-endian int32 at byte 12.
	if got := int32(resp.RawOutputContents[0][12]); got != 9 {
		t.Fatalf("OUTPUT0[3] = %d", got)
	}

	// Streaming: several requests, one bad, on one stream.
	stream, err := c.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := &inference.ModelInferRequest{ModelName: "simple", Id: itoa(i), Inputs: req.Inputs}
		if i == 1 {
			r.ModelName = "missing"
		}
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	var ok, bad int
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.ErrorMessage != "" {
			bad++
			if !strings.Contains(m.ErrorMessage, "'missing' is not found") {
				t.Errorf("stream error %q", m.ErrorMessage)
			}
		} else {
			ok++
		}
	}
	if ok != 2 || bad != 1 {
		t.Fatalf("stream: %d ok, %d errors", ok, bad)
	}

	st, err := c.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: "simple"})
	if err != nil || st.ModelStats[0].InferenceCount != 3 || st.ModelStats[0].ExecutionCount != 3 || st.ModelStats[0].InferenceStats.Success.Count != 3 {
		t.Fatalf("statistics: %v %v", st, err)
	}

	if _, err := c.RepositoryModelUnload(ctx, &inference.RepositoryModelUnloadRequest{ModelName: "simple"}); err != nil {
		t.Fatal(err)
	}
	idx, _ = c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if idx.Models[0].State != "UNAVAILABLE" || idx.Models[0].Reason != "unloaded" {
		t.Fatalf("index after unload: %v", idx)
	}
	_, err = c.ModelInfer(ctx, req)
	wantCode(t, err, codes.NotFound, "Request for unknown model: 'simple' has no available versions")
	_, err = c.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "nothere"})
	wantCode(t, err, codes.Internal, "failed to load 'nothere', failed to poll from model repository")
}

func TestVersionsAndReload(t *testing.T) {
	repo := t.TempDir()
	cfg := strings.Replace(identityFP32, `max_batch_size: 8`, "max_batch_size: 8\nversion_policy { latest { num_versions: 2 } }", 1)
	writeModel(t, repo, "ident", cfg, 1, 2, 3)
	h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.StartupModels = []string{"ident"} })
	ctx := context.Background()
	idx, _ := h.client.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	var states []string
	for _, m := range idx.Models {
		states = append(states, m.Version+":"+m.State)
	}
	if !slices.Equal(states, []string{"2:READY", "3:READY"}) {
		t.Fatalf("states %v", states)
	}
	resp, err := h.client.ModelInfer(ctx, fp32Request("ident", 1, seq(4, 0)...))
	if err != nil || resp.ModelVersion != "3" {
		t.Fatalf("latest: %v %v", resp, err)
	}
	r := fp32Request("ident", 1, seq(4, 0)...)
	r.ModelVersion = "2"
	if resp, err := h.client.ModelInfer(ctx, r); err != nil || resp.ModelVersion != "2" {
		t.Fatalf("v2: %v %v", resp, err)
	}
	r.ModelVersion = "1"
	_, err = h.client.ModelInfer(ctx, r)
	wantCode(t, err, codes.NotFound, "'ident' version 1 is not found")

	// Reload with a policy of one specific version while requests run.
	slow := `parameters { key: "fault_latency" value { string_value: "20ms" } }`
	writeModel(t, repo, "ident", cfg+slow, 1, 2, 3)
	var wg sync.WaitGroup
	var failures sync.Map
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := h.client.ModelInfer(ctx, fp32Request("ident", 1, seq(4, float32(w))...)); err != nil {
					failures.Store(err.Error(), true)
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	override := `{"name":"ident","backend":"identity","max_batch_size":8,"version_policy":{"specific":{"versions":["1"]}},
	 "input":[{"name":"INPUT0","data_type":"TYPE_FP32","dims":["4"]}],"output":[{"name":"OUTPUT0","data_type":"TYPE_FP32","dims":["4"]}]}`
	_, err = h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "ident",
		Parameters: map[string]*inference.ModelRepositoryParameter{"config": {ParameterChoice: &inference.ModelRepositoryParameter_StringParam{StringParam: override}}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	wg.Wait()
	failures.Range(func(k, _ any) bool {
		t.Errorf("request failed during reload: %v", k)
		return true
	})
	resp, err = h.client.ModelInfer(ctx, fp32Request("ident", 1, seq(4, 0)...))
	if err != nil || resp.ModelVersion != "1" {
		t.Fatalf("after reload: %v %v", resp, err)
	}
	idx, _ = h.client.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{Ready: true})
	if len(idx.Models) != 1 || idx.Models[0].Version != "1" {
		t.Fatalf("ready index %v", idx)
	}
}

func TestFailedLoadIsolated(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	writeModel(t, repo, "broken", `name: "broken" backend: "add_sub" max_batch_size: 0
input [ { name: "A" data_type: TYPE_BOOL dims: [ 1 ] }, { name: "B" data_type: TYPE_BOOL dims: [ 1 ] } ] output [ { name: "C" data_type: TYPE_BOOL dims: [ 1 ] } ]`)
	writeModel(t, repo, "nobackend", `name: "nobackend" backend: "tensorflow_magic" input [ { name: "A" data_type: TYPE_FP32 dims: [ 1 ] } ]`)
	writeModel(t, repo, "badconfig", `name: "badconfig" backend: "identity" max_batch_size: -3`)
	h := start(t, repo, tritonlite.ModeNone)
	ctx := context.Background()
	idx, _ := h.client.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	got := map[string]*inference.RepositoryIndexResponse_ModelIndex{}
	for _, m := range idx.Models {
		got[m.Name] = m
	}
	if m := got["broken"]; m.State != "UNAVAILABLE" || !strings.HasPrefix(m.Reason, "Invalid argument: add_sub model 'broken': datatype TYPE_BOOL is not supported") {
		t.Errorf("broken: %v", m)
	}
	if m := got["nobackend"]; m.State != "UNAVAILABLE" || m.Reason != "Invalid argument: unable to find backend library for backend 'tensorflow_magic', try specifying runtime on the model configuration." {
		t.Errorf("nobackend: %v", m)
	}
	if m := got["badconfig"]; m.State != "" || m.Version != "" {
		t.Errorf("badconfig (a failed poll: name only): %v", m)
	}
	if m := got["ident"]; m.State != "READY" {
		t.Errorf("ident: %v", m)
	}
	if _, err := h.client.ModelInfer(ctx, fp32Request("ident", 1, seq(4, 0)...)); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.client.ServerReady(ctx, &inference.ServerReadyRequest{}); r.Ready {
		t.Error("strict readiness: a failed model must make the server not ready")
	}
	_, err := h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "ident"})
	wantCode(t, err, codes.Unavailable, "explicit model load / unload is not allowed if polling is enabled")
}

// TestLoadErrorMessage: a load that fails returns Triton's message.
func TestLoadErrorMessage(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "broken", `name: "broken" backend: "identity" max_batch_size: 0
input [ { name: "A" data_type: TYPE_INT32 dims: [ 1 ] } ] output [ { name: "B" data_type: TYPE_FP32 dims: [ 1 ] } ]`)
	h := start(t, repo, tritonlite.ModeExplicit)
	_, err := h.client.RepositoryModelLoad(context.Background(), &inference.RepositoryModelLoadRequest{ModelName: "broken"})
	wantCode(t, err, codes.InvalidArgument, "load failed for model 'broken': version 1 is at UNAVAILABLE state: Invalid argument: identity model 'broken': output 'B' is TYPE_FP32 but input 'A' is TYPE_INT32;\n")
}
