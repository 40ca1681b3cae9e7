package tritonlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// metric reads a counter or gauge from the harness registry (-1 if absent).
func metric(t *testing.T, h *harness, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
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

func configParam(json string) map[string]*inference.ModelRepositoryParameter {
	return map[string]*inference.ModelRepositoryParameter{"config": {ParameterChoice: &inference.ModelRepositoryParameter_StringParam{StringParam: json}}}
}

const oneSlowInstance = `{"backend":"identity","max_batch_size":8,"input":[{"name":"INPUT0","data_type":"TYPE_FP32","dims":["4"]}],
"output":[{"name":"OUTPUT0","data_type":"TYPE_FP32","dims":["4"]}],"instance_group":[{"kind":"KIND_CPU","count":1}],
"parameters":{"fault_latency":{"string_value":"300ms"}}}`

// TestReloadKeepsMetrics: a version replaced by a reload hands its metric
// series to its successor; draining the old one must not reset them.
func TestReloadKeepsMetrics(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "m", litetest.Identity("m", `instance_group [ { kind: KIND_CPU count: 1 } ]`, param("fault_latency", "200ms")))
	h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.StartupModels = []string{"m"} })
	ctx := context.Background()
	var wg sync.WaitGroup
	infer := func() {
		defer wg.Done()
		if _, err := h.client.ModelInfer(ctx, fp32Request("m", 1, seq(4, 0)...)); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go infer() // running on the old version during the reload
	time.Sleep(50 * time.Millisecond)
	if _, err := h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "m", Parameters: configParam(oneSlowInstance)}); err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go infer()
	go infer() // waits for the new version's only instance
	wg.Wait()
	l := map[string]string{"model": "m", "version": "1"}
	if g := metric(t, h, "nv_inference_pending_request_count", l); g != 0 {
		t.Errorf("pending requests %v after everything finished, want 0", g)
	}
	if s := metric(t, h, "nv_inference_request_success", l); s != 3 {
		t.Errorf("nv_inference_request_success = %v, want 3", s)
	}
}

// TestCancelledCountedOnce: a client that gives up while its batch runs is
// one failed request, not a failure and a success.
func TestCancelledCountedOnce(t *testing.T) {
	for _, sched := range []string{"", `dynamic_batching { }`} {
		repo := t.TempDir()
		writeModel(t, repo, "m", litetest.Identity("m", `instance_group [ { kind: KIND_CPU count: 1 } ]`, sched, param("fault_latency", "300ms")))
		h := start(t, repo, tritonlite.ModeNone)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := h.client.ModelInfer(ctx, fp32Request("m", 1, seq(4, 0)...))
		cancel()
		wantCode(t, err, codes.DeadlineExceeded, "")
		time.Sleep(400 * time.Millisecond) // the execution ends
		st, err := h.client.ModelStatistics(context.Background(), &inference.ModelStatisticsRequest{Name: "m"})
		if err != nil {
			t.Fatal(err)
		}
		is := st.ModelStats[0].InferenceStats
		if is.Success.Count != 0 || is.Fail.Count != 1 {
			t.Errorf("%q: success %d, fail %d for one cancelled request", sched, is.Success.Count, is.Fail.Count)
		}
		if c := metric(t, h, "nv_inference_request_failure", map[string]string{"model": "m", "version": "1", "reason": "CANCELED"}); c != 1 {
			t.Errorf("%q: failure{CANCELED} = %v", sched, c)
		}
	}
}

// TestUnloadEndsHang: unloading a model ends its hung executions.
func TestUnloadEndsHang(t *testing.T) {
	for _, sched := range []string{"", `dynamic_batching { }`} {
		repo := t.TempDir()
		writeModel(t, repo, "m", litetest.Identity("m", sched, param("fault_hang_rate", "1")))
		h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.StartupModels = []string{"m"} })
		done := make(chan error, 1)
		go func() {
			_, err := h.client.ModelInfer(context.Background(), fp32Request("m", 1, seq(4, 0)...))
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := h.client.RepositoryModelUnload(ctx, &inference.RepositoryModelUnloadRequest{ModelName: "m"})
		cancel()
		if err != nil {
			t.Fatalf("%q: unload: %v", sched, err)
		}
		if err := <-done; status.Code(err) != codes.Unavailable {
			t.Errorf("%q: the hung request ended with %v, want UNAVAILABLE", sched, err)
		}
	}
}

// TestConcurrentLoads: a bad load racing a good one never leaves the good
// one loaded into a state the server cannot see.
func TestConcurrentLoads(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "m", litetest.Identity("m"))
	h := start(t, repo, tritonlite.ModeExplicit)
	ctx := context.Background()
	for range 10 {
		var wg sync.WaitGroup
		var good error
		wg.Add(2)
		go func() {
			defer wg.Done()
			h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "m", Parameters: configParam(`{"name":"other","backend":"identity"}`)})
		}()
		go func() {
			defer wg.Done()
			_, good = h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "m"})
		}()
		wg.Wait()
		if good != nil {
			t.Fatal(good)
		}
		if r, _ := h.client.ModelReady(ctx, &inference.ModelReadyRequest{Name: "m"}); !r.GetReady() {
			t.Fatal("a load that succeeded left the model not ready")
		}
		h.client.RepositoryModelUnload(ctx, &inference.RepositoryModelUnloadRequest{ModelName: "m"})
	}
}

// TestPartialLoadAborts: as in Triton, if one selected version fails, the
// load serves none of the versions it created, and a failed reload leaves the
// serving versions as they were.
func TestPartialLoadAborts(t *testing.T) {
	var failV2 atomic.Bool
	failV2.Store(true)
	backends := tritonlite.Builtins()
	identity := backends["identity"]
	backends["picky"] = tritonlite.BackendFunc(func(ctx context.Context, inst tritonlite.Instance) (tritonlite.Executor, error) {
		if inst.Version == 2 && failV2.Load() {
			return nil, status.Error(codes.InvalidArgument, "version 2 is broken")
		}
		return identity.NewExecutor(ctx, inst)
	})
	repo := t.TempDir()
	writeModel(t, repo, "m", strings.Replace(litetest.Identity("m", `version_policy { all { } }`), `"identity"`, `"picky"`, 1), 1, 2)
	h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.Backends = backends })
	ctx := context.Background()
	infer := func(version string) error {
		r := fp32Request("m", 1, seq(4, 0)...)
		r.ModelVersion = version
		_, err := h.client.ModelInfer(ctx, r)
		return err
	}
	_, err := h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "m"})
	wantCode(t, err, codes.InvalidArgument, "load failed for model 'm': version 2 is at UNAVAILABLE state: Invalid argument: version 2 is broken;")
	wantCode(t, infer("1"), codes.Unavailable, "'m' version 1 is not at ready state")
	idx, _ := h.client.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if len(idx.Models) != 2 || idx.Models[0].Reason != "unloaded" || idx.Models[1].Reason != "Invalid argument: version 2 is broken" {
		t.Fatalf("index after a partial failure: %v", idx.Models)
	}

	failV2.Store(false)
	if _, err := h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "m"}); err != nil {
		t.Fatal(err)
	}
	// Version 2's files change (Triton loads an unchanged version again
	// only if it is not serving), and its reload fails.
	failV2.Store(true)
	if err := os.WriteFile(filepath.Join(repo, "m", "2", "changed"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "m"})
	wantCode(t, err, codes.InvalidArgument, "version 2 is broken")
	for _, v := range []string{"1", "2"} {
		if err := infer(v); err != nil {
			t.Errorf("version %s stopped serving after a failed reload: %v", v, err)
		}
	}
}

// TestOverrideDirsCleaned: files sent with load requests do not outlive the
// model, nor a load that failed.
func TestOverrideDirsCleaned(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	h := start(t, t.TempDir(), tritonlite.ModeExplicit)
	ctx := context.Background()
	load := func(name, cfg string) error {
		_, err := h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: name, Parameters: map[string]*inference.ModelRepositoryParameter{
			"config":        {ParameterChoice: &inference.ModelRepositoryParameter_StringParam{StringParam: cfg}},
			"file:1/README": {ParameterChoice: &inference.ModelRepositoryParameter_BytesParam{BytesParam: []byte("x")}},
		}})
		return err
	}
	good := `{"backend":"identity","max_batch_size":4,"input":[{"name":"INPUT0","data_type":"TYPE_FP32","dims":["4"]}],"output":[{"name":"OUTPUT0","data_type":"TYPE_FP32","dims":["4"]}]}`
	if err := load("r", good); err != nil {
		t.Fatal(err)
	}
	if err := load("bad", `{"name":"other","backend":"identity"}`); err == nil {
		t.Fatal("a config naming another model loaded")
	}
	if err := load("r", good); err != nil { // replaces the first override
		t.Fatal(err)
	}
	left := func() int {
		entries, _ := os.ReadDir(tmp)
		n := 0
		for _, e := range entries {
			if e.IsDir() {
				n++
			}
		}
		return n
	}
	if n := left(); n != 1 {
		t.Errorf("%d override dirs while one model is loaded from files, want 1", n)
	}
	h.srv.Close()
	if n := left(); n != 0 {
		t.Errorf("%d override dirs left after Close", n)
	}
}
