package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
	"github.com/tritongate/tritongate/internal/source/s3/s3test"
)

// noMLflowEnv clears MLflow's client variables.
func noMLflowEnv(t *testing.T) {
	for _, k := range []string{"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
		"MLFLOW_TRACKING_PASSWORD", "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_S3_IGNORE_TLS", "MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE"} {
		t.Setenv(k, "")
	}
}

// The catalog's mlflow.tracking_uri is enough: MLFLOW_TRACKING_URI need not
// be set. A version behind the artifacts proxy needs no AWS settings at
// all (no region, no credentials).
func TestMLflowFromTheCatalogAlone(t *testing.T) {
	noMLflowEnv(t)
	s3Env(t)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	onnx := testdata(t, "onnx", "node", "test_add", "model.onnx")
	s.CreateModel("adder")
	s.PutArtifact("0/models/m-1/artifacts/model.onnx", onnx)
	s.PutArtifact("0/models/m-1/artifacts/MLmodel", []byte("flavors: {onnx: {data: model.onnx}}\n"))
	lm := s.CreateLoggedModel("mlflow-artifacts:/0/models/m-1/artifacts")
	v, _ := s.CreateVersion("adder", "models:/"+lm)
	s.SetAlias("adder", "champion", v)

	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	os.WriteFile(cat, []byte("mlflow: {tracking_uri: \""+ts.URL+"\"}\nmodels:\n  - {name: adder, source: \"mlflow:adder\", pools: [cpu], versions: {aliases: [champion]}}\n"), 0o644)
	repo := filepath.Join(dir, "models")
	code, _, stderr := runSyncer("init", "--catalog", cat, "--pool", "cpu", "--repository", repo, "--triton", "none", "--progress", "log", "--retry", "10ms", "--timeout", "5s")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(repo, "adder", "1", "model.onnx")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(repo, "adder", "1", "MLmodel")); err == nil {
		t.Error("MLflow's MLmodel was published next to model.onnx")
	}

	// Without the catalog's URI and the variable, one line says what to set.
	os.WriteFile(cat, []byte("models:\n  - {name: adder, source: \"mlflow:adder\", pools: [cpu], versions: {aliases: [champion]}}\n"), 0o644)
	code, _, stderr = runSyncer("init", "--catalog", cat, "--pool", "cpu", "--repository", t.TempDir(), "--triton", "none", "--progress", "log", "--retry", "10ms", "--timeout", "200ms")
	if code != 1 || !strings.Contains(stderr, "set mlflow.tracking_uri in the catalog or MLFLOW_TRACKING_URI") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// A MinIO- or versitygw-backed MLflow names its S3 endpoint only in
// MLFLOW_S3_ENDPOINT_URL: s3:// artifacts are read there (path-style), as
// MLflow's own client does, not from AWS.
func TestMLflowS3EndpointFromMLflowsEnv(t *testing.T) {
	noMLflowEnv(t)
	s3Env(t)
	t.Setenv("AWS_REGION", "")
	srv := s3test.New(t, "mlflow")
	onnx := testdata(t, "onnx", "node", "test_add", "model.onnx")
	srv.PutVersion(t, "mlflow", "direct/1/abc/artifacts/model/", map[string][]byte{"model.onnx": onnx, "conda.yaml": []byte("name: x\n")})
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	s.CreateModel("adder")
	s.CreateVersion("adder", "s3://mlflow/direct/1/abc/artifacts/model")
	t.Setenv("MLFLOW_TRACKING_URI", ts.URL)
	t.Setenv("MLFLOW_S3_ENDPOINT_URL", srv.URL)

	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	os.WriteFile(cat, []byte("models:\n  - {name: adder, source: \"mlflow:adder\", pools: [cpu]}\n"), 0o644)
	repo := filepath.Join(dir, "models")
	code, _, stderr := runSyncer("init", "--catalog", cat, "--pool", "cpu", "--repository", repo, "--triton", "none", "--progress", "log", "--retry", "10ms", "--timeout", "5s")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(repo, "adder", "1", "model.onnx")); err != nil {
		t.Error(err)
	}
	if gets, _ := srv.Counts(); gets != 2 {
		t.Errorf("%d GETs from the MLflow S3 endpoint, want 2 (the manifest and model.onnx; conda.yaml is MLflow's)", gets)
	}
}
