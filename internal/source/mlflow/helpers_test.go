package mlflow_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/mlflow"
	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
)

// newServer starts an mlflowtest server.
func newServer(t *testing.T) (*mlflowtest.Server, *httptest.Server) {
	t.Helper()
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// newClient makes a client for url with fast retries; edit adjusts the
// options.
func newClient(t *testing.T, url string, edit ...func(*mlflow.Options)) *mlflow.Client {
	t.Helper()
	o := mlflow.Options{BaseURL: url, Backoff: time.Millisecond, Timeout: 30 * time.Second}
	for _, e := range edit {
		e(&o)
	}
	c, err := mlflow.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr fails unless err wraps want (nil: any error) and its message
// contains every one of parts.
func wantErr(t *testing.T, err, want error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %v", err, want)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// manifest is the JSON manifest of files.
func manifest(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var m source.Manifest
	for p, b := range files {
		m.Files = append(m.Files, source.ManifestEntry{Path: p, Size: int64(len(b)), SHA256: sha(b)})
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// onnxFlavor is what mlflow.onnx.log_model writes for a model.
func onnxFlavor() map[string][]byte {
	return map[string][]byte{
		"MLmodel":          []byte("flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.16.0\n"),
		"model.onnx":       []byte("\x08\x07\x12\x07pytorch fake onnx bytes"),
		"conda.yaml":       []byte("name: mlflow-env\n"),
		"python_env.yaml":  []byte("python: 3.11\n"),
		"requirements.txt": []byte("onnx==1.16.0\n"),
		"code/helpers.py":  []byte("# nested file\n"),
		"weights.bin":      []byte("external tensor data"),
	}
}

// served is files without those of the MLflow model format
// (mlflow.FlavorFile): what a source describes and fetches.
func served(files map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for p, b := range files {
		if !mlflow.FlavorFile(p) {
			out[p] = b
		}
	}
	return out
}

// putVersion registers a new version of model whose artifacts are files,
// stored behind the proxy under root ("1/<run>/artifacts/model").
func putVersion(t *testing.T, s *mlflowtest.Server, model, root string, files map[string][]byte) int64 {
	t.Helper()
	for p, b := range files {
		s.PutArtifact(root+"/"+p, b)
	}
	return must[int64](t)(s.CreateVersion(model, "mlflow-artifacts:/"+root))
}
