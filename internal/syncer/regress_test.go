// Regression tests from a review of the syncer: the comment on each test
// describes the bug it caught; the test checks the behaviour since.

package syncer_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tritongate/tritongate/internal/syncer"
	"github.com/tritongate/tritongate/proto/inference"
)

const identCfg = `name: "ident"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
`

func identRequest() *inference.ModelInferRequest {
	return &inference.ModelInferRequest{ModelName: "ident",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1, 4},
			Contents: &inference.InferTensorContents{Fp32Contents: make([]float32, 4)}}}}
}

// A version whose warm-up fails is not routable in the first reconcile; in
// the next one it is READY in Triton, so it is not in `missing`, its
// warm-up is never retried, it is marked routable, and the old (good)
// version is unloaded and deleted.
func TestFailedWarmupIsRetriedAndOldVersionKept(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "config.pbtxt"), []byte(identCfg))
	e := newEnv(t, localSources)
	cat := parse(t, `
models:
  - {name: ident, source: `+src+`, pools: [cpu], versions: {latest: 1}, warmup: {requests: 2}}
`)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	// Version 2 fails every inference.
	writeFile(t, filepath.Join(src, "2", "config.pbtxt"), []byte(identCfg+
		`parameters { key: "fault_error_rate" value { string_value: "1" } }
parameters { key: "fault_error_code" value { string_value: "INTERNAL" } }
`))
	res := e.syncer.Reconcile(ctx, cat)
	if res.OK() || !strings.Contains(res.Err().Error(), "warm-up") {
		t.Fatalf("first reconcile after v2: %v, want a warm-up failure", res.Err())
	}
	t.Logf("reconcile 1: %v", res.Err())
	res = e.syncer.Reconcile(ctx, cat)
	t.Logf("reconcile 2: ok=%v err=%v; Triton: %s; on disk: %s; status v2: %+v", res.OK(), res.Err(), e.index(t), e.versionsOnDisk(t, "ident"), e.syncer.Status().Models["ident"].Versions[2])
	if res.OK() {
		_, err := e.lite.Client.ModelInfer(ctx, identRequest())
		t.Errorf("a version that never passed warm-up became the only routable one (old version deleted: on disk %q); an inference now: %v",
			e.versionsOnDisk(t, "ident"), err)
	}
}

// A config change written to disk but not loaded (the syncer crashed
// between WriteConfig and RepositoryModelLoad, or the load failed) is never
// loaded: the next reconcile finds config.pbtxt unchanged and every wanted
// version READY. Here a publish-only syncer (--triton none) stands in for
// the crash.
func TestConfigWrittenButNotLoadedIsLoaded(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "model.onnx"), model(t, "example_dynamic_axes.onnx"))
	e := newEnv(t, localSources)
	catA := parse(t, "pools: {cpu: {max_batch_size: 4}}\nmodels:\n  - {name: dyn, source: "+src+", pools: [cpu]}\n")
	catB := parse(t, "pools: {cpu: {max_batch_size: 16}}\nmodels:\n  - {name: dyn, source: "+src+", pools: [cpu]}\n")
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, catA); !res.OK() {
		t.Fatal(res.Err())
	}
	// "Crash" after WriteConfig of catalog B, before the load.
	filesOnly := syncer.New(syncer.Options{Pool: "cpu", Repo: e.repo, Sources: localSources, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if res := filesOnly.Reconcile(ctx, catB); !res.OK() {
		t.Fatal(res.Err())
	}
	// The restarted syncer reconciles catalog B.
	if res := e.syncer.Reconcile(ctx, catB); !res.OK() {
		t.Fatal(res.Err())
	}
	r, err := e.lite.Client.ModelConfig(ctx, &inference.ModelConfigRequest{Name: "dyn"})
	if err != nil {
		t.Fatal(err)
	}
	disk, _ := e.repo.ReadConfig("dyn")
	if got := r.Config.GetMaxBatchSize(); got != 16 {
		t.Errorf("Triton serves max_batch_size %d; config.pbtxt says 16 (%v); reconcile reported the model ready: %s",
			got, strings.Contains(string(disk), "max_batch_size: 16"), e.syncer.Status().Models["dyn"].State)
	}
}

// A model removed from the catalog keeps syncer_version_routable = 1.
func TestRoutableMetricGoesWithTheModel(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "config.pbtxt"), []byte(identCfg))
	e := newEnv(t, localSources)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, parse(t, "models:\n  - {name: ident, source: "+src+", pools: [cpu]}\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	if res := e.syncer.Reconcile(ctx, parse(t, "pools: {cpu: {kind: cpu}}\nmodels: []\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "syncer_version_routable" {
			for _, m := range mf.GetMetric() {
				t.Errorf("after the model left the catalog (and Triton, and the disk): syncer_version_routable%v = %v", m.GetLabel(), m.GetGauge().GetValue())
			}
		}
	}
}

// A syncer started with a --pool no model names (a typo: "cpu1") sees an
// empty desired state and unloads and deletes every model it published.
func TestUnknownPoolIsRefused(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "config.pbtxt"), []byte(identCfg))
	e := newEnv(t, localSources)
	ctx := context.Background()
	cat := parse(t, "models:\n  - {name: ident, source: "+src+", pools: [cpu]}\n")
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	typo := syncer.New(syncer.Options{Pool: "cpu1", Repo: e.repo, Triton: e.triton, Sources: localSources, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	res := typo.Reconcile(ctx, cat)
	if got := e.versionsOnDisk(t, "ident"); got == "" {
		t.Errorf("pool %q (not in the catalog): reconcile ok=%v, Models=%d; model unloaded (Triton: %q) and deleted from disk", "cpu1", res.OK(), res.Models, e.index(t))
	}
}

// Only versions with a marker are the syncer's, the docs say; removing a
// model deletes the whole directory, versions without a marker included.
func TestRemoveModelKeepsUnmarkedVersions(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "config.pbtxt"), []byte(identCfg))
	e := newEnv(t, localSources)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, parse(t, "models:\n  - {name: ident, source: "+src+", pools: [cpu]}\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	manual := filepath.Join(e.repo.Root, "ident", "9")
	writeFile(t, filepath.Join(manual, "model.onnx"), []byte("put there by hand"))
	if res := e.syncer.Reconcile(ctx, parse(t, "pools: {cpu: {kind: cpu}}\nmodels: []\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	if _, err := os.Stat(manual); err != nil {
		t.Errorf("version 9 (no marker, not published by the syncer) deleted with the model: %v", err)
	}
}

// A new version with another signature cannot run next to the old one
// under one config: the model is switched in one reload (the old version
// never runs under the new config), and the rollout completes.
func TestNewSignatureSwitchesInOneReload(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "model.onnx"), model(t, "mnist.onnx"))
	e := newEnv(t, localSources)
	cat := parse(t, "models:\n  - {name: digits, source: "+src+", pools: [cpu], versions: {latest: 1}}\n")
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	writeFile(t, filepath.Join(src, "2", "model.onnx"), model(t, "example_dynamic_axes.onnx"))
	res := e.syncer.Reconcile(ctx, cat)
	if !res.OK() {
		t.Fatalf("a new version with another signature is not rolled out: %v; Triton: %q; on disk %q", res.Err(), e.index(t), e.versionsOnDisk(t, "digits"))
	}
	if got := e.index(t); got != "digits/2:READY" || e.versionsOnDisk(t, "digits") != "2" {
		t.Errorf("after the switch: Triton %q, on disk %q", got, e.versionsOnDisk(t, "digits"))
	}
	md, err := e.lite.Client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "digits"})
	if err != nil || len(md.Inputs) != 1 || md.Inputs[0].Name != "input_vectors" {
		t.Errorf("metadata after the switch: %v %v", md, err)
	}
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Errorf("the reconcile after the switch: %v", res.Err())
	}
}

// Same with the fault parameters: after the failed warm-up of v2, v1 (the
// good version) runs under v2's config.
func TestOldVersionNeverRunsUnderNewConfig(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "config.pbtxt"), []byte(identCfg))
	e := newEnv(t, localSources)
	cat := parse(t, "models:\n  - {name: ident, source: "+src+", pools: [cpu], versions: {latest: 1}}\n")
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	writeFile(t, filepath.Join(src, "2", "config.pbtxt"), []byte(identCfg+
		`parameters { key: "fault_error_rate" value { string_value: "1" } }
`))
	res := e.syncer.Reconcile(ctx, cat)
	t.Logf("reconcile: %v", res.Err())
	req := identRequest()
	req.ModelVersion = "1"
	if _, err := e.lite.Client.ModelInfer(ctx, req); err != nil {
		t.Errorf("version 1, which was fine, fails after v2's warm-up failed: %v", err)
	}
}

// A new version wanted next to one already serving (numbers: [1, 2]) that
// fails its warm-up is taken back out; version 1 keeps serving under its
// own config.
func TestFailedWarmupNextToAWantedVersionIsTakenOut(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "config.pbtxt"), []byte(identCfg))
	e := newEnv(t, localSources)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, parse(t, "models:\n  - {name: ident, source: "+src+", pools: [cpu], versions: {numbers: [1]}}\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	writeFile(t, filepath.Join(src, "2", "config.pbtxt"), []byte(identCfg+
		`parameters { key: "fault_error_rate" value { string_value: "1" } }
`))
	res := e.syncer.Reconcile(ctx, parse(t, "models:\n  - {name: ident, source: "+src+", pools: [cpu], versions: {numbers: [1, 2]}}\n"))
	if res.OK() {
		t.Fatal("a version failing every inference passed its warm-up")
	}
	if got := e.index(t); got != "ident/1:READY" {
		t.Errorf("after the failed warm-up Triton serves %q, want only ident/1", got)
	}
	req := identRequest()
	req.ModelVersion = "1"
	if _, err := e.lite.Client.ModelInfer(ctx, req); err != nil {
		t.Errorf("version 1 after the failed warm-up of 2: %v", err)
	}
	if st := e.syncer.Status(); !st.Ready || st.InSync {
		t.Errorf("status: ready %v (version 1 serves), in sync %v", st.Ready, st.InSync)
	}
}
