package tritonlite_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

var param = litetest.Param

// runConcurrently sends n requests at once and returns their errors.
func runConcurrently(h *harness, n int, mk func(i int) *inference.ModelInferRequest, check func(i int, resp *inference.ModelInferResponse)) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.client.ModelInfer(context.Background(), mk(i))
			errs[i] = err
			if err == nil && check != nil {
				check(i, resp)
			}
		}()
	}
	wg.Wait()
	return errs
}

func TestDynamicBatching(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "batched", `name: "batched" backend: "identity" max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ] output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 500000 }
instance_group [ { kind: KIND_CPU count: 1 } ]
`+param("fault_latency", "5ms"))
	h := start(t, repo, tritonlite.ModeNone)
	var mismatches atomic.Int32
	// 8 requests of width 3 and 4 of width 5: shapes differ past the batch
	// dimension, so the two kinds never share an execution.
	errs := runConcurrently(h, 12, func(i int) *inference.ModelInferRequest {
		width := 3
		if i >= 8 {
			width = 5
		}
		req := &inference.ModelInferRequest{ModelName: "batched"}
		tensor.SetRequestInputs(req, []tensor.Tensor{tensor.Of("INPUT0", []int64{1, int64(width)}, seq(width, float32(100*i)))})
		return req
	}, func(i int, resp *inference.ModelInferResponse) {
		outs, _ := tensor.ResponseOutputs(resp)
		width := 3
		if i >= 8 {
			width = 5
		}
		got, _ := tensor.Values[float32](outs[0])
		if !slices.Equal(got, seq(width, float32(100*i))) || !slices.Equal(outs[0].Shape, []int64{1, int64(width)}) {
			mismatches.Add(1)
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if mismatches.Load() > 0 {
		t.Fatalf("%d requests got someone else's rows", mismatches.Load())
	}
	st, err := h.client.ModelStatistics(context.Background(), &inference.ModelStatisticsRequest{Name: "batched"})
	if err != nil {
		t.Fatal(err)
	}
	s := st.ModelStats[0]
	if s.InferenceCount != 12 || s.ExecutionCount >= 12 || s.ExecutionCount < 3 {
		t.Fatalf("inference_count %d, execution_count %d: requests were not batched (or mixed shapes were)", s.InferenceCount, s.ExecutionCount)
	}
	var biggest uint64
	for _, b := range s.BatchStats {
		biggest = max(biggest, b.BatchSize)
	}
	if biggest < 2 || biggest > 4 {
		t.Fatalf("largest batch %d, want between 2 and the preferred size 4", biggest)
	}
}

func TestQueuePolicy(t *testing.T) {
	repo := t.TempDir()
	slowOne := `backend: "identity" max_batch_size: 1
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ] output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
` + param("fault_latency", "300ms")
	writeModel(t, repo, "full", `name: "full" `+slowOne+`dynamic_batching { default_queue_policy { max_queue_size: 2 } }`)
	writeModel(t, repo, "expiring", `name: "expiring" `+slowOne+`dynamic_batching { default_queue_policy { default_timeout_microseconds: 50000 } }`)
	writeModel(t, repo, "override", `name: "override" `+slowOne+`dynamic_batching { default_queue_policy { default_timeout_microseconds: 10000000 allow_timeout_override: true } }`)
	h := start(t, repo, tritonlite.ModeNone)

	count := func(errs []error, code codes.Code, msg string) (n int) {
		for _, err := range errs {
			if st, _ := status.FromError(err); err != nil && st.Code() == code && strings.Contains(st.Message(), msg) {
				n++
			} else if err != nil {
				t.Errorf("unexpected error %v", err)
			}
		}
		return n
	}
	errs := runConcurrently(h, 6, func(int) *inference.ModelInferRequest { return fp32Request("full", 1, seq(4, 0)...) }, nil)
	if n := count(errs, codes.Unavailable, "] Exceeds maximum queue size"); n < 1 || n > 3 {
		t.Fatalf("%d of 6 rejected for a full queue (1 running + 2 queued), want 3 (at least 1)", n)
	}
	errs = runConcurrently(h, 3, func(int) *inference.ModelInferRequest { return fp32Request("expiring", 1, seq(4, 0)...) }, nil)
	if n := count(errs, codes.Unavailable, "Request timeout expired"); n < 1 {
		t.Fatalf("no request timed out in the queue: %v", errs)
	}
	errs = runConcurrently(h, 3, func(int) *inference.ModelInferRequest {
		r := fp32Request("override", 1, seq(4, 0)...)
		r.Parameters = map[string]*inference.InferParameter{"timeout": {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: 50000}}}
		return r
	}, nil)
	if n := count(errs, codes.Unavailable, "Request timeout expired"); n < 1 {
		t.Fatalf("the request timeout did not override the queue policy: %v", errs)
	}
}

func TestFaults(t *testing.T) {
	repo := t.TempDir()
	base := strings.Replace(identityFP32, `name: "ident"`, "", 1)
	writeModel(t, repo, "failing", `name: "failing"`+base+param("fault_error_rate", "1")+param("fault_error_code", "RESOURCE_EXHAUSTED"))
	writeModel(t, repo, "flaky", `name: "flaky"`+base+param("fault_error_rate", "0.5")+param("fault_seed", "7"))
	writeModel(t, repo, "hanging", `name: "hanging"`+base+param("fault_hang_rate", "1"))
	writeModel(t, repo, "slow", `name: "slow"`+base+param("fault_latency", "30ms")+param("fault_latency_jitter", "5ms")+param("fault_latency_distribution", "exponential"))
	writeModel(t, repo, "crashing", `name: "crashing"`+base+param("fault_crash_after", "3"))
	writeModel(t, repo, "badfault", `name: "badfault"`+base+param("fault_error_rate", "2"))
	h := start(t, repo, tritonlite.ModeNone)
	ctx := context.Background()

	_, err := h.client.ModelInfer(ctx, fp32Request("failing", 1, seq(4, 0)...))
	wantCode(t, err, codes.ResourceExhausted, "injected fault")

	failed := 0
	for range 200 {
		if _, err := h.client.ModelInfer(ctx, fp32Request("flaky", 1, seq(4, 0)...)); err != nil {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Fatalf("fault_error_rate 0.5 failed %d of 200", failed)
	}

	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = h.client.ModelInfer(dctx, fp32Request("hanging", 1, seq(4, 0)...))
	cancel()
	wantCode(t, err, codes.DeadlineExceeded, "")

	t0 := time.Now()
	if _, err := h.client.ModelInfer(ctx, fp32Request("slow", 1, seq(4, 0)...)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 30*time.Millisecond {
		t.Fatalf("injected latency of at least 30ms took %v", d)
	}

	for i := range 3 {
		h.client.ModelInfer(ctx, fp32Request("crashing", 1, seq(4, 0)...))
		select {
		case <-h.crashed:
			if i != 2 {
				t.Fatalf("crashed on request %d, want the 3rd", i+1)
			}
		default:
			if i == 2 {
				t.Fatal("no crash on the 3rd request")
			}
		}
	}

	idx, _ := h.client.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	for _, m := range idx.Models {
		if m.Name == "badfault" && !strings.Contains(m.Reason, "parameter fault_error_rate = \"2\": must be between 0 and 1") {
			t.Fatalf("badfault: %v", m)
		}
	}
}

func TestPollMode(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	h := start(t, repo, tritonlite.ModePoll, func(o *tritonlite.Options) { o.PollInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.srv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ready := func(name string) bool {
		r, _ := h.client.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: name})
		return r.GetReady()
	}
	writeModel(t, repo, "simple", addSubInt32)
	waitFor("a new model to load", func() bool { return ready("simple") })

	writeModel(t, repo, "ident", strings.Replace(identityFP32, "count: 2", "count: 1", 1), 1, 2)
	waitFor("a changed model to reload", func() bool {
		c, err := h.client.ModelConfig(context.Background(), &inference.ModelConfigRequest{Name: "ident"})
		return err == nil && c.Config.InstanceGroup[0].Count == 1
	})
	if r, _ := h.client.ModelInfer(context.Background(), fp32Request("ident", 1, seq(4, 0)...)); r.GetModelVersion() != "2" {
		t.Fatalf("new version not served: %v", r)
	}
	if err := os.RemoveAll(filepath.Join(repo, "simple")); err != nil {
		t.Fatal(err)
	}
	waitFor("a removed model to unload", func() bool { return !ready("simple") })
	_, err := h.client.RepositoryModelUnload(context.Background(), &inference.RepositoryModelUnloadRequest{ModelName: "ident"})
	wantCode(t, err, codes.Unavailable, "explicit model load / unload is not allowed if polling is enabled")
}

func TestFileOverride(t *testing.T) {
	h := start(t, t.TempDir(), tritonlite.ModeExplicit)
	cfg := `{"backend":"identity","max_batch_size":4,"input":[{"name":"INPUT0","data_type":"TYPE_FP32","dims":["4"]}],"output":[{"name":"OUTPUT0","data_type":"TYPE_FP32","dims":["4"]}]}`
	p := func(v any) *inference.ModelRepositoryParameter {
		switch v := v.(type) {
		case string:
			return &inference.ModelRepositoryParameter{ParameterChoice: &inference.ModelRepositoryParameter_StringParam{StringParam: v}}
		default:
			return &inference.ModelRepositoryParameter{ParameterChoice: &inference.ModelRepositoryParameter_BytesParam{BytesParam: v.([]byte)}}
		}
	}
	ctx := context.Background()
	_, err := h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "remote",
		Parameters: map[string]*inference.ModelRepositoryParameter{"file:1/notes.txt": p([]byte("v1"))}})
	wantCode(t, err, codes.InvalidArgument, "Load parameter 'config' must be specified for model file override")
	_, err = h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "remote",
		Parameters: map[string]*inference.ModelRepositoryParameter{"config": p(cfg), "file:../../etc/x": p([]byte("x"))}})
	wantCode(t, err, codes.InvalidArgument, "must stay within model directory")
	_, err = h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "remote",
		Parameters: map[string]*inference.ModelRepositoryParameter{"config": p(cfg), "file:1/notes.txt": p([]byte("v1"))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ModelInfer(ctx, fp32Request("remote", 1, seq(4, 0)...)); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "remote",
		Parameters: map[string]*inference.ModelRepositoryParameter{"config": p(`{"bogus_field": 1}`)}})
	wantCode(t, err, codes.Internal, "failed to load 'remote', failed to poll from model repository")
	_, err = h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "remote",
		Parameters: map[string]*inference.ModelRepositoryParameter{"what": p("x")}})
	wantCode(t, err, codes.InvalidArgument, "unrecognized load parameter 'what'.")
}

func TestMetrics(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	h := start(t, repo, tritonlite.ModeNone)
	for range 5 {
		if _, err := h.client.ModelInfer(context.Background(), fp32Request("ident", 2, seq(8, 0)...)); err != nil {
			t.Fatal(err)
		}
	}
	h.client.ModelInfer(context.Background(), fp32Request("ident", 1, seq(3, 0)...)) // a bad request
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels map[string]string) float64 {
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if matches(m, labels) {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	l := map[string]string{"model": "ident", "version": "1"}
	checks := map[string]float64{
		"nv_inference_request_success":       5,
		"nv_inference_count":                 10,
		"nv_inference_exec_count":            5,
		"nv_inference_pending_request_count": 0,
	}
	for name, want := range checks {
		if got := value(name, l); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// A request the model's config refuses never reaches the model: Triton
	// counts it nowhere (TRITONSERVER_ServerInferAsync returns the error).
	for _, reason := range []string{"OTHER", "REJECTED", "BACKEND", "CANCELED"} {
		if got := value("nv_inference_request_failure", map[string]string{"model": "ident", "version": "1", "reason": reason}); got > 0 {
			t.Errorf("nv_inference_request_failure{reason=%s} = %v after a refused request, want none", reason, got)
		}
	}
	for _, name := range []string{"nv_inference_request_duration_us", "nv_inference_compute_infer_duration_us", "nv_inference_queue_duration_us"} {
		if got := value(name, l); got < 0 {
			t.Errorf("%s missing", name)
		}
	}
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}
