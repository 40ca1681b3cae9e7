package syncer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/catalog"
	"github.com/tritongate/tritongate/internal/source/s3/s3test"
)

// manyModels puts n small models in S3 (one version each, with a manifest)
// and returns a catalog serving all of them on the cpu pool.
func manyModels(t testing.TB, n int) (*s3test.Server, *catalog.Catalog) {
	t.Helper()
	onnx, err := os.ReadFile(filepath.Join("..", "..", "testdata", "onnx", "node", "test_add", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s3 := s3test.New(t, "models")
	var b strings.Builder
	b.WriteString("defaults: {pools: [cpu], versions: {latest: 1}, warmup: {requests: 0}}\nmodels:\n")
	for i := range n {
		name := fmt.Sprintf("m%04d", i)
		s3.PutVersion(t, "models", name+"/1/", map[string][]byte{"model.onnx": onnx})
		fmt.Fprintf(&b, "  - {name: %s, source: \"s3://models/%s/\"}\n", name, name)
	}
	c, err := catalog.Parse("catalog.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return s3, c
}

// TestNoChangeResyncOf1000Models: once 1000 models are in place and loaded,
// a resync with nothing changed downloads nothing: zero object GETs at the
// S3 server (one listing per model resolves "latest"), and Triton is left
// alone. The time it takes is logged (and measured by
// BenchmarkNoChangeResync), not asserted.
func TestNoChangeResyncOf1000Models(t *testing.T) {
	s3, cat := manyModels(t, 1000)
	e := newEnv(t, realSources(t, s3))
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	if gets, _ := s3.Counts(); gets != 2000 {
		t.Errorf("the first sync made %d object GETs, want 2000 (a manifest and a model per version)", gets)
	}
	if n := strings.Count(e.index(t), ":READY"); n != 1000 {
		t.Fatalf("%d models ready, want 1000", n)
	}
	s3.Reset()
	start := time.Now()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	took := time.Since(start)
	gets, lists := s3.Counts()
	t.Logf("no-change resync of 1000 models: %v, %d object GETs, %d listings", took, gets, lists)
	if gets != 0 {
		t.Errorf("a resync with nothing changed made %d object GETs", gets)
	}
	if lists != 1000 {
		t.Errorf("%d listings, want one per model", lists)
	}
}

// BenchmarkNoChangeResync times a resync of 1000 models in place, loaded in
// tritonlite, with nothing changed.
func BenchmarkNoChangeResync(b *testing.B) {
	s3, cat := manyModels(b, 1000)
	e := newEnv(b, realSources(b, s3))
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		b.Fatal(res.Err())
	}
	s3.Reset()
	b.ResetTimer()
	for b.Loop() {
		if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
			b.Fatal(res.Err())
		}
	}
	b.StopTimer()
	if gets, _ := s3.Counts(); gets != 0 {
		b.Fatalf("%d object GETs", gets)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/resync")
}
