package syncer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tritongate/tritongate/internal/catalog"
	"github.com/tritongate/tritongate/internal/modelrepo"
	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/local"
	"github.com/tritongate/tritongate/internal/syncer"
	"github.com/tritongate/tritongate/internal/triton"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/internal/tritonlite/ort"
	"github.com/tritongate/tritongate/proto/inference"
)

// model returns the bytes of one of the bundled ONNX models.
func model(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "onnx", "models", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// env is a pool under test: a repository, a tritonlite serving it in
// explicit mode (ONNX Runtime), and a syncer.
type env struct {
	repo   *modelrepo.Repo
	triton *triton.Client
	lite   *litetest.Server
	syncer *syncer.Syncer
	reg    *prometheus.Registry
}

func newEnv(t testing.TB, sources syncer.SourceFor) *env {
	t.Helper()
	wd, _ := os.Getwd()
	if err := ort.Init(ort.LibraryPath(wd)); err != nil {
		t.Fatalf("ONNX Runtime: %v", err)
	}
	base := t.TempDir()
	repo, err := modelrepo.Open(filepath.Join(base, "models"), filepath.Join(base, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	backends := tritonlite.Builtins()
	backends["onnxruntime"] = ort.Backend{}
	lite := litetest.Start(t, repo.Root, litetest.Config{TCP: true, Options: tritonlite.Options{ControlMode: tritonlite.ModeExplicit, Backends: backends}})
	tc, err := triton.Dial(lite.Addr, triton.Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	reg := prometheus.NewRegistry()
	s := syncer.New(syncer.Options{Pool: "cpu", Repo: repo, Triton: tc, Sources: sources, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &env{repo: repo, triton: tc, lite: lite, syncer: s, reg: reg}
}

func localSources(c *catalog.Catalog, m *catalog.Model) (source.Source, error) {
	_, where, err := catalog.SourceOf(m.Source)
	if err != nil {
		return nil, err
	}
	return local.New(where), nil
}

func parse(t *testing.T, yaml string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Parse("catalog.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) index(t *testing.T) string {
	t.Helper()
	idx, err := e.triton.Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range idx {
		if v.State == "READY" {
			out = append(out, fmt.Sprintf("%s/%d:%s", v.Model, v.Version, v.State))
		}
	}
	return strings.Join(out, " ")
}

func (e *env) versionsOnDisk(t *testing.T, model string) string {
	t.Helper()
	inv, err := e.repo.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	m := inv[model]
	if m == nil {
		return ""
	}
	var out []string
	for _, v := range m.Versions {
		out = append(out, fmt.Sprint(v.Number))
	}
	return strings.Join(out, ",")
}

func mnistRequest() *inference.ModelInferRequest {
	req := &inference.ModelInferRequest{ModelName: "digits"}
	req.Inputs = []*inference.ModelInferRequest_InferInputTensor{{Name: "Input3", Datatype: "FP32", Shape: []int64{1, 1, 28, 28},
		Contents: &inference.InferTensorContents{Fp32Contents: make([]float32, 784)}}}
	return req
}

// TestVersionSwitchWithoutFailures: a local folder source; the latest
// version is synced, loaded and served; a new version appears and replaces
// it while a client keeps inferring, without one failure; the old version is
// unloaded and deleted; the model leaves the catalog and goes.
func TestVersionSwitchWithoutFailures(t *testing.T) {
	src := t.TempDir()
	onnx := model(t, "mnist.onnx")
	writeFile(t, filepath.Join(src, "1", "model.onnx"), onnx)
	writeFile(t, filepath.Join(src, "2", "model.onnx"), onnx)
	e := newEnv(t, localSources)
	cat := parse(t, `
models:
  - name: digits
    source: `+src+`
    pools: [cpu]
    versions: {latest: 1}
    warmup: {requests: 3}
`)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	if got := e.index(t); got != "digits/2:READY" {
		t.Fatalf("Triton has %s, want digits/2:READY", got)
	}
	if got := e.versionsOnDisk(t, "digits"); got != "2" {
		t.Fatalf("on disk: %s", got)
	}
	cfg, _ := e.repo.ReadConfig("digits")
	if !strings.Contains(string(cfg), "versions: [ 2 ]") || !strings.Contains(string(cfg), "KIND_CPU") {
		t.Errorf("config.pbtxt:\n%s", cfg)
	}
	st := e.syncer.Status()
	if !st.Ready || st.Models["digits"].Versions[2].State != "routable" {
		t.Errorf("status %+v", st.Models["digits"])
	}

	// Clients loop while version 3 replaces version 2.
	var res syncer.Result
	ok, failed, firstErr := whileInferring(e, "digits", func() {
		writeFile(t, filepath.Join(src, "3", "model.onnx"), onnx)
		res = e.syncer.Reconcile(ctx, cat)
	})
	if !res.OK() {
		t.Fatal(res.Err())
	}
	t.Logf("%d inferences during the switch, %d failed", ok, failed)
	if failed > 0 {
		t.Errorf("%d inferences failed during the switch: %v", failed, firstErr)
	}
	if got := e.index(t); got != "digits/3:READY" {
		t.Errorf("after the switch Triton has %s", got)
	}
	if got := e.versionsOnDisk(t, "digits"); got != "3" {
		t.Errorf("after the switch on disk: %s", got)
	}

	// Nothing changed: nothing happens.
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}

	// The model leaves the catalog.
	if res := e.syncer.Reconcile(ctx, parse(t, "pools: {cpu: {kind: cpu}}\nmodels: []\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	if got := e.versionsOnDisk(t, "digits"); got != "" {
		t.Errorf("removed model still on disk: %s", got)
	}
	if got := e.index(t); got != "" {
		t.Errorf("removed model still loaded: %s", got)
	}
}

// TestBadModelDoesNotStopOthers: a version that is not a valid model is
// not published; the other models sync.
func TestBadModelDoesNotStopOthers(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "good", "1", "model.onnx"), model(t, "mnist.onnx"))
	writeFile(t, filepath.Join(src, "bad", "1", "model.onnx"), []byte("not an onnx model"))
	writeFile(t, filepath.Join(src, "empty", "1", "README"), []byte("no model here"))
	e := newEnv(t, localSources)
	cat := parse(t, `
defaults: {pools: [cpu], warmup: {requests: 1}}
models:
  - {name: good, source: `+src+`/good}
  - {name: bad, source: `+src+`/bad}
  - {name: empty, source: `+src+`/empty}
  - {name: missing, source: `+src+`/missing}
`)
	res := e.syncer.Reconcile(context.Background(), cat)
	if res.OK() || len(res.Failed) != 3 {
		t.Fatalf("failed: %v", res.Failed)
	}
	for name, want := range map[string]string{"bad": "model.onnx", "empty": "no model.onnx", "missing": "not found"} {
		if err := res.Failed[name]; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to mention %q", name, err, want)
		}
	}
	if got := e.index(t); got != "good/1:READY" {
		t.Errorf("Triton has %s", got)
	}
	for _, m := range []string{"bad", "empty", "missing"} {
		if got := e.versionsOnDisk(t, m); got != "" {
			t.Errorf("%s published: %s", m, got)
		}
	}
	if st := e.syncer.Status(); st.Ready || st.Models["bad"].State != "error" || st.Models["good"].State != "ready" {
		t.Errorf("status %+v", st)
	}

	// The refused version is not downloaded again while it is the same...
	fetched := func() float64 {
		mfs, _ := e.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "syncer_fetched_bytes_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return -1
	}
	before := fetched()
	res = e.syncer.Reconcile(context.Background(), cat)
	if !strings.Contains(fmt.Sprint(res.Failed["bad"]), "model.onnx") || fetched() != before {
		t.Errorf("second reconcile: bad %v; fetched %v bytes more", res.Failed["bad"], fetched()-before)
	}
	// ...and is once it changes.
	writeFile(t, filepath.Join(src, "bad", "1", "model.onnx"), model(t, "mnist.onnx"))
	if res = e.syncer.Reconcile(context.Background(), cat); res.Failed["bad"] != nil || fetched() == before {
		t.Errorf("after the fix: %v", res.Failed["bad"])
	}
}

// TestConfigOverridesPerPool: the pool's settings and the model's override
// end up in config.pbtxt, which Triton loads.
func TestConfigOverridesPerPool(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "7", "model.onnx"), model(t, "example_dynamic_axes.onnx"))
	fixed := t.TempDir() // mnist cannot batch: the pool's batching is not for it
	writeFile(t, filepath.Join(fixed, "1", "model.onnx"), model(t, "mnist.onnx"))
	e := newEnv(t, localSources)
	cat := parse(t, `
pools:
  cpu: {instances: 3, max_batch_size: 16, dynamic_batching: {max_queue_delay_microseconds: 200}}
models:
  - name: dyn
    source: `+src+`
    pools: [cpu]
    versions: {numbers: [7]}
    config: {cpu: {instances: 1}}
  - {name: fixed, source: `+fixed+`, pools: [cpu]}
`)
	if res := e.syncer.Reconcile(context.Background(), cat); !res.OK() {
		t.Fatal(res.Err())
	}
	b, _ := e.repo.ReadConfig("dyn")
	src2, err := pbtxt.Parse("config.pbtxt", b)
	if err != nil {
		t.Fatal(err)
	}
	c := src2.Config
	if c.GetMaxBatchSize() != 16 || c.GetInstanceGroup()[0].GetCount() != 1 || c.GetDynamicBatching().GetMaxQueueDelayMicroseconds() != 200 {
		t.Errorf("config.pbtxt:\n%s", b)
	}
	r, err := e.lite.Client.ModelConfig(context.Background(), &inference.ModelConfigRequest{Name: "dyn"})
	if err != nil || r.Config.GetMaxBatchSize() != 16 {
		t.Errorf("Triton's config: %v %v", r, err)
	}
	r, err = e.lite.Client.ModelConfig(context.Background(), &inference.ModelConfigRequest{Name: "fixed"})
	if err != nil || r.Config.GetMaxBatchSize() != 0 || r.Config.GetDynamicBatching() != nil || r.Config.GetInstanceGroup()[0].GetCount() != 3 {
		t.Errorf("Triton's config of the model that cannot batch: %v %v", r, err)
	}
}
