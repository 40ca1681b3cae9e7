// Regression tests from a review of the syncer: the comment on each test
// describes the bug it caught; the test checks the behaviour since.

package syncer_test

import (
	"context"
	"github.com/tritongate/tritongate/proto/inference"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
	"github.com/tritongate/tritongate/internal/source/s3/s3test"
)

// An MLflow version served through the artifacts proxy, whose download was
// cut by a crash (SIGKILL, OOM kill, node drain), leaves a file in the
// stage. The stage is reused (same digest), and the proxy download opens
// files with O_EXCL: every later reconcile fails with "file exists", for
// ever (the stage is kept for resuming; the error is not a digest mismatch,
// so it is never discarded).
func TestMLflowProxyLeftoverIsReplaced(t *testing.T) {
	reg := mlflowtest.New()
	mls := httptest.NewServer(reg)
	t.Cleanup(mls.Close)
	reg.CreateModel("shapes")
	if _, err := reg.CreateVersion("shapes", "mlflow-artifacts:/shapes/1"); err != nil {
		t.Fatal(err)
	}
	reg.PutArtifact("shapes/1/model.onnx", model(t, "example_dynamic_axes.onnx"))
	reg.PutArtifact("shapes/1/MLmodel", []byte("flavors:\n  onnx: {data: model.onnx}\n"))
	sources := realSources(t, s3test.New(t, "unused"))
	e := newEnv(t, sources)
	cat := parse(t, `
mlflow: {tracking_uri: "`+mls.URL+`"}
models:
  - {name: shapes, source: "mlflow:shapes", pools: [cpu], versions: {numbers: [1]}}
`)
	// What a kill in the middle of the download leaves: the stage with a
	// partial file.
	src, err := sources(cat, &cat.Models[0])
	if err != nil {
		t.Fatal(err)
	}
	desc, err := src.Describe(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.repo.Stage("shapes", 1, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.VersionDir, "MLmodel"), []byte("flav"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if res := e.syncer.Reconcile(context.Background(), cat); !res.OK() {
			t.Errorf("reconcile %d: %v", i+1, res.Err())
		}
	}
}

// A fresh process (after a crash or a restart) knows no version states, so
// gcStages keeps no stage of a model whose reconcile failed before fetch
// (a transient listing error, MLflow down, waiting for a heavy slot when
// the context ends): its partial download is deleted.
func TestPartialDownloadKeptOnTransientError(t *testing.T) {
	srcRoot := t.TempDir()
	src := filepath.Join(srcRoot, "digits")
	writeFile(t, filepath.Join(src, "1", "model.onnx"), model(t, "mnist.onnx"))
	e := newEnv(t, localSources)
	cat := parse(t, "models:\n  - {name: digits, source: "+src+", pools: [cpu], versions: {latest: 1}}\n")
	st, err := e.repo.Stage("digits", 1, "sha256:0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(st.VersionDir, ".model.onnx.tgpart") // a partial multi-GB download
	if err := os.WriteFile(big, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The source is briefly unavailable (here: the folder renamed away).
	if err := os.Rename(src, src+".away"); err != nil {
		t.Fatal(err)
	}
	res := e.syncer.Reconcile(context.Background(), cat)
	t.Logf("reconcile: %v", res.Err())
	if _, err := os.Stat(big); err != nil {
		t.Errorf("partial download of a wanted model deleted after a transient source error: %v", err)
	}
}

// WaitReady has no deadline of its own: a version that Triton reports
// UNAVAILABLE with reason "unloaded" (a Triton restarted between the load
// and the wait, someone unloading it) is waited for until the context ends
// — in `syncer watch`, for ever, with a heavy slot held and Watch stuck in
// Reconcile.
func TestWaitReadyFailsOnUnloaded(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "1", "config.pbtxt"), []byte(identCfg))
	e := newEnv(t, localSources)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, parse(t, "models:\n  - {name: ident, source: "+src+", pools: [cpu]}\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	if err := e.triton.Unload(ctx, "ident"); err != nil {
		t.Fatal(err)
	}
	idx, _ := e.triton.Index(ctx)
	t.Logf("index after unload: %+v", idx)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	err := e.triton.WaitReady(wctx, "ident", 1)
	t.Logf("WaitReady returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if time.Since(start) >= 3*time.Second {
		t.Errorf("WaitReady waited until the caller's deadline for a version Triton reports unloaded")
	}
}

// The catalog points a model at another source (a migration from S3 to
// MLflow, a fixed typo, another bucket) whose version numbers overlap: the
// markers' Origin is never compared, so the pool keeps serving the old
// source's bytes as "version 1" for ever, reported ready.
func TestSourceChangeRefetches(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(a, "1", "model.onnx"), model(t, "mnist.onnx"))
	writeFile(t, filepath.Join(b, "1", "model.onnx"), model(t, "example_dynamic_axes.onnx"))
	e := newEnv(t, localSources)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, parse(t, "models:\n  - {name: m, source: "+a+", pools: [cpu], versions: {numbers: [1]}}\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	if res := e.syncer.Reconcile(ctx, parse(t, "models:\n  - {name: m, source: "+b+", pools: [cpu], versions: {numbers: [1]}}\n")); !res.OK() {
		t.Fatal(res.Err())
	}
	mk, _ := e.repo.Marker("m", 1)
	if mk != nil && mk.Origin != b+"/1/" {
		t.Errorf("catalog says source %s; the pool serves version 1 from %s (reported ready)", b, mk.Origin)
	}
	md, err := e.lite.Client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "m", Version: "1"})
	if err != nil || len(md.Inputs) != 1 || md.Inputs[0].Name != "input_vectors" {
		t.Errorf("Triton still serves the old source's version 1: %v %v", md, err)
	}
}

// good A, bad X (reported), good B, bad X again: the second bad X is not
// reported (no log line, syncer_catalog_reads_total{result="error"} not
// incremented) because badTag is never reset when a good catalog arrives.
func TestBadCatalogReportedAgainAfterGoodOne(t *testing.T) {
	e := newEnv(t, localSources)
	cat := &memCatalog{}
	cat.set("models: []\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trigger := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { e.syncer.Watch(ctx, cat, time.Hour, 20*time.Millisecond, trigger, nil); close(done) }()
	errorsCounted := func() float64 {
		mfs, _ := e.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "syncer_catalog_reads_total" {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == "error" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	step := func(doc string) { cat.set(doc); time.Sleep(150 * time.Millisecond) }
	step("models: []\n")
	step("models: [{nme: x}]\n") // bad X
	first := errorsCounted()
	step("models: []\n# B\n")    // good B
	step("models: [{nme: x}]\n") // bad X again
	if got := errorsCounted(); got != first+1 {
		t.Errorf("catalog errors counted: %v after the first bad edit, %v after the same bad edit came back over a good one", first, got)
	}
	cancel()
	<-done
}
