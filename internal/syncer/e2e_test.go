package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tritongate/tritongate/internal/catalog"
	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/local"
	"github.com/tritongate/tritongate/internal/source/mlflow"
	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
	s3src "github.com/tritongate/tritongate/internal/source/s3"
	"github.com/tritongate/tritongate/internal/source/s3/s3test"
	"github.com/tritongate/tritongate/internal/syncer"
	"github.com/tritongate/tritongate/proto/inference"
)

// realSources builds sources as cmd/syncer does, against the fakes.
func realSources(t testing.TB, s3 *s3test.Server) func(c *catalog.Catalog, m *catalog.Model) (source.Source, error) {
	cl, err := s3src.NewClient(context.Background(), s3src.ClientOptions{Region: s3test.Region, Endpoint: s3.URL, PathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	store := s3src.NewStore(s3src.Options{Client: cl, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond, Retries: 1})
	return func(c *catalog.Catalog, m *catalog.Model) (source.Source, error) {
		kind, where, err := catalog.SourceOf(m.Source)
		if err != nil {
			return nil, err
		}
		switch kind {
		case catalog.S3:
			return store.Model(where)
		case catalog.MLflow:
			mc, err := mlflow.New(mlflow.Options{BaseURL: c.MLflow.TrackingURI, Retries: -1})
			if err != nil {
				return nil, err
			}
			return mlflow.NewSource(mc, where, store), nil
		}
		return local.New(where), nil
	}
}

// whileInferring runs change while 4 clients send mnist inferences to
// model in a loop (and 50 ms after it), and counts what succeeded and
// what failed.
func whileInferring(e *env, model string, change func()) (ok, failed int64, firstErr error) {
	ctx := context.Background()
	var stop atomic.Bool
	var okN, failedN atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req := mnistRequest()
				req.ModelName = model
				if _, err := e.lite.Client.ModelInfer(ctx, req); err != nil {
					failedN.Add(1)
					first.CompareAndSwap(nil, err)
				} else {
					okN.Add(1)
				}
			}
		}()
	}
	change()
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	firstErr, _ = first.Load().(error)
	return okN.Load(), failedN.Load(), firstErr
}

// TestEndToEnd: models from S3 and from the MLflow registry (artifacts in
// S3 and behind MLflow's artifacts proxy) sync, load and serve; moving the
// champion alias to a new version makes it the one served, with no failed
// inference while it happens; a resync with nothing changed GETs nothing.
func TestEndToEnd(t *testing.T) {
	mnist := model(t, "mnist.onnx")
	dyn := model(t, "example_dynamic_axes.onnx")
	s3 := s3test.New(t, "models", "mlflow")
	s3.PutVersion(t, "models", "digits/1/", map[string][]byte{"model.onnx": mnist})
	s3.PutVersion(t, "models", "digits/2/", map[string][]byte{"model.onnx": mnist})
	s3.Put(t, "models", "digits/README", []byte("not a version"))
	for _, v := range []string{"1", "2"} {
		s3.Put(t, "mlflow", "artifacts/ranker/"+v+"/model.onnx", mnist) // no manifest: MD5 of the ETag
		s3.Put(t, "mlflow", "artifacts/ranker/"+v+"/MLmodel", []byte("flavors:\n  onnx: {data: model.onnx}\n"))
	}
	reg := mlflowtest.New()
	mls := httptest.NewServer(reg)
	t.Cleanup(mls.Close)
	reg.CreateModel("ranker")
	for _, v := range []string{"1", "2"} {
		if _, err := reg.CreateVersion("ranker", "s3://mlflow/artifacts/ranker/"+v+"/"); err != nil {
			t.Fatal(err)
		}
	}
	reg.SetAlias("ranker", "champion", 1)
	reg.CreateModel("shapes")
	if _, err := reg.CreateVersion("shapes", "mlflow-artifacts:/shapes/1"); err != nil {
		t.Fatal(err)
	}
	reg.PutArtifact("shapes/1/model.onnx", dyn)

	e := newEnv(t, realSources(t, s3))
	cat := parse(t, `
mlflow: {tracking_uri: "`+mls.URL+`"}
defaults: {pools: [cpu], warmup: {requests: 2}}
models:
  - {name: digits, source: "s3://models/digits/", versions: {latest: 1}}
  - {name: ranker, source: "mlflow:ranker", versions: {aliases: [champion]}}
  - {name: shapes, source: "mlflow:shapes", versions: {numbers: [1]}}
`)
	ctx := context.Background()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	if got := e.index(t); got != "digits/2:READY ranker/1:READY shapes/1:READY" {
		t.Fatalf("Triton has %q", got)
	}
	for _, m := range []string{"digits", "ranker"} {
		req := mnistRequest()
		req.ModelName = m
		if _, err := e.lite.Client.ModelInfer(ctx, req); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	md, err := e.lite.Client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "shapes"})
	if err != nil || len(md.Inputs) == 0 {
		t.Errorf("shapes metadata %v %v", md, err)
	}

	// The champion moves to version 2 while clients infer.
	var res syncer.Result
	ok, failed, firstErr := whileInferring(e, "ranker", func() {
		reg.SetAlias("ranker", "champion", 2)
		res = e.syncer.Reconcile(ctx, cat)
	})
	if !res.OK() {
		t.Fatal(res.Err())
	}
	t.Logf("%d inferences while the alias moved, %d failed", ok, failed)
	if failed > 0 || ok == 0 {
		t.Errorf("%d of %d inferences failed while the alias moved: %v", failed, ok+failed, firstErr)
	}
	if got := e.index(t); got != "digits/2:READY ranker/2:READY shapes/1:READY" {
		t.Errorf("after the alias moved Triton has %q", got)
	}

	// Nothing changed: no object is downloaded again.
	s3.Reset()
	if res := e.syncer.Reconcile(ctx, cat); !res.OK() {
		t.Fatal(res.Err())
	}
	if gets, lists := s3.Counts(); gets != 0 {
		t.Errorf("a resync with nothing changed made %d GETs (%d listings)", gets, lists)
	}
}

// TestBadSourcesAreNamedAndContained: a corrupted download, a missing
// object, a refused object and a traversal key are each refused with an
// error naming the model, version and object; nothing of them is
// published; the other models are in place.
func TestBadSourcesAreNamedAndContained(t *testing.T) {
	mnist := model(t, "mnist.onnx")
	s3 := s3test.New(t, "models")
	s3.PutVersion(t, "models", "good/1/", map[string][]byte{"model.onnx": mnist})
	// corrupt: the manifest's digest is not the file's.
	s3.Put(t, "models", "corrupt/1/model.onnx", mnist)
	s3.Put(t, "models", "corrupt/1/"+source.ManifestFile, []byte(fmt.Sprintf(`{"files":[{"path":"model.onnx","size":%d,"sha256":"%s"}]}`, len(mnist), strings.Repeat("0", 64))))
	s3.PutVersion(t, "models", "missing/1/", map[string][]byte{"model.onnx": mnist})
	s3.Refuse("models/missing/1/model.onnx", 404)
	s3.PutVersion(t, "models", "denied/1/", map[string][]byte{"model.onnx": mnist})
	s3.Refuse("models/denied/1/model.onnx", 403)
	s3.Put(t, "models", "escape/1/model.onnx", mnist)
	s3.Put(t, "models", "escape/1/sub/../../../etc/passwd", []byte("x"))
	e := newEnv(t, realSources(t, s3))
	cat := parse(t, `
defaults: {pools: [cpu], versions: {numbers: [1]}}
models:
  - {name: good, source: "s3://models/good/"}
  - {name: corrupt, source: "s3://models/corrupt/"}
  - {name: missing, source: "s3://models/missing/"}
  - {name: denied, source: "s3://models/denied/"}
  - {name: escape, source: "s3://models/escape/"}
`)
	res := e.syncer.Reconcile(context.Background(), cat)
	want := map[string]struct {
		is   error
		text string
	}{
		"corrupt": {source.ErrDigestMismatch, "s3://models/corrupt/1/model.onnx"},
		"missing": {source.ErrNotFound, "s3://models/missing/1/model.onnx"},
		"denied":  {source.ErrAccessDenied, "s3://models/denied/1/model.onnx"},
		"escape":  {nil, "escape/1/sub/../../../etc/passwd"},
	}
	if len(res.Failed) != len(want) {
		t.Errorf("failed: %v", res.Failed)
	}
	for name, w := range want {
		err := res.Failed[name]
		if err == nil {
			t.Errorf("%s: synced", name)
			continue
		}
		full := fmt.Sprintf("model %s: %v", name, err)
		if (w.is != nil && !errors.Is(err, w.is)) || !strings.Contains(full, w.text) || !strings.Contains(full, "version 1") {
			t.Errorf("%s: %q, want %v naming %q and the version", name, full, w.is, w.text)
		}
		if got := e.versionsOnDisk(t, name); got != "" {
			t.Errorf("%s published: %s", name, got)
		}
	}
	t.Logf("errors as reported:\n%v", res.Err())
	if got := e.index(t); got != "good/1:READY" {
		t.Errorf("Triton has %q", got)
	}
	// A bad catalog is refused whole; the last good one stays (see Watch).
	if _, err := catalog.Parse("catalog.yaml", []byte("models:\n  - name: x\n    source: s3://models/x/\n    pools: [cpu]\n    verisons: {latest: 1}\n")); err == nil ||
		!strings.Contains(err.Error(), "catalog.yaml:5:5: models[0].verisons: unknown field") {
		t.Errorf("bad catalog: %v", err)
	}
}
