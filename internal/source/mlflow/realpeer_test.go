package mlflow_test

// Regression tests for what a real MLflow 3 server does that the client and
// mlflowtest once did not (each confirmed against MLflow 3.17.2; the interop
// suite runs the same flows against the real server).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/mlflow"
	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
)

// MLflow's JSON leaves out a file_size of 0: an empty file (an empty
// __init__.py, an empty labels file) is listed without a size, and must not
// refuse the version.
func TestZeroByteArtifact(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	files := map[string][]byte{"model.onnx": []byte("onnx bytes"), "labels.txt": {}}
	v := putVersion(t, s, "ranker", "1/r/artifacts/model", files)
	src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
	ver, err := src.Describe(t.Context(), v)
	check(t, err)
	if len(ver.Files) != 2 || ver.Files[0].Path != "labels.txt" || ver.Files[0].Size != 0 {
		t.Fatalf("files %+v, want labels.txt of 0 bytes and model.onnx", ver.Files)
	}
	dir := t.TempDir()
	check(t, src.Fetch(t.Context(), ver, dir, nil))
	checkDir(t, dir, files)

	// A listing that leaves out the size of a file that is not empty: the
	// download's Content-Length tells, and the version is refused.
	s.PutArtifact("1/r/artifacts/model/labels.txt", []byte("now with content"))
	err = src.Fetch(t.Context(), ver, t.TempDir(), nil)
	wantErr(t, err, source.ErrDigestMismatch, "labels.txt", "expected 0")
}

// MLflow answers a missing alias with HTTP 400 INVALID_PARAMETER_VALUE,
// an unknown model with 404: both are "not found" to the syncer.
func TestMissingAliasIsNotFound(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
	_, err := src.Alias(t.Context(), "champion")
	wantErr(t, err, source.ErrNotFound, "HTTP 400 INVALID_PARAMETER_VALUE", "Registered model alias champion not found.")
	_, err = mlflow.NewSource(newClient(t, ts.URL), "nope", nil).Alias(t.Context(), "champion")
	wantErr(t, err, source.ErrNotFound, "HTTP 404 RESOURCE_DOES_NOT_EXIST")
	if n := s.Requests(); n != 2 {
		t.Errorf("%d requests, want 2 (not found is not retried)", n)
	}
}

// An artifacts proxy in front of S3 copies the whole file before it
// answers: the wait for the headers grows with the file's size, so a large
// file arrives in one request instead of timing out and starting the copy
// again on every retry.
func TestSlowProxyHeaders(t *testing.T) {
	const size = 512 << 10
	s := mlflowtest.New()
	check(t, s.CreateModel("ranker"))
	v := must[int64](t)(s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model"))
	s.PutArtifact("1/r/artifacts/model/model.onnx", make([]byte, size))
	var downloads atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/model.onnx") {
			downloads.Add(1)
			select { // "copying from S3": 400 ms for half a MiB
			case <-time.After(400 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	for _, tc := range []struct {
		name      string
		rate      int64
		ok        bool
		downloads int32
	}{
		// 100 ms + 512 KiB at 1 MiB/s = 600 ms: enough.
		{"wait scaled by size", 1 << 20, true, 1},
		// At 1 GiB/s the wait is about the 100 ms timeout: too short, and
		// each retry starts the server's copy again.
		{"wait not scaled", 1 << 30, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			downloads.Store(0)
			c := newClient(t, ts.URL, func(o *mlflow.Options) {
				o.Timeout = 100 * time.Millisecond
				o.DownloadRate = tc.rate
				o.Retries = 2
			})
			src := mlflow.NewSource(c, "ranker", nil)
			ver, err := src.Describe(t.Context(), v)
			check(t, err)
			err = src.Fetch(t.Context(), ver, t.TempDir(), nil)
			if tc.ok {
				check(t, err)
			} else {
				wantErr(t, err, nil, "no answer within", "gave up after 3 attempts")
			}
			if n := downloads.Load(); n != tc.downloads {
				t.Errorf("%d download requests, want %d", n, tc.downloads)
			}
		})
	}
}

// Download URIs MLflow's own client reads: runs:/<run>/<path> (a version
// created with source="runs:/..."), models:/<model id> (an MLflow 3 logged
// model), file: URIs and absolute paths (a server with
// --no-serve-artifacts and a local root, where the path is mounted).
func TestDownloadURIs(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	files := map[string][]byte{"model.onnx": []byte("the model"), "weights.bin": []byte("w")}
	for p, b := range files {
		s.PutArtifact("3/runid/artifacts/model/"+p, b)
		s.PutArtifact("3/models/m-1/artifacts/"+p, b)
	}
	run := s.CreateRun("mlflow-artifacts:/3/runid/artifacts")
	lm := s.CreateLoggedModel("mlflow-artifacts:/3/models/m-1/artifacts")
	local := t.TempDir()
	for p, b := range files {
		check(t, os.WriteFile(filepath.Join(local, p), b, 0o644))
	}
	check(t, os.WriteFile(filepath.Join(local, "MLmodel"), []byte("flavors: {}"), 0o644))
	for _, tc := range []struct {
		source, origin string
	}{
		{"runs:/" + run + "/model", "mlflow-artifacts:/3/runid/artifacts/model"},
		{"models:/" + lm, "mlflow-artifacts:/3/models/m-1/artifacts"},
		{"file://" + local, "file://" + local},
		{local, local},
	} {
		t.Run(tc.source, func(t *testing.T) {
			v := must[int64](t)(s.CreateVersion("ranker", tc.source))
			src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
			ver, err := src.Describe(t.Context(), v)
			check(t, err)
			if !strings.Contains(ver.Origin, tc.origin) {
				t.Errorf("origin %q, want it to name %s", ver.Origin, tc.origin)
			}
			dir := t.TempDir()
			check(t, src.Fetch(t.Context(), ver, dir, nil))
			checkDir(t, dir, files)
		})
	}
}

// MLflow answers routes it does not have with an HTML 404: a wrong base
// URL must not read as "model not found" (the syncer would drop the model).
func TestWrongBaseURL(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	c := newClient(t, ts.URL+"/not-mlflow")
	_, err := mlflow.NewSource(c, "ranker", nil).Alias(t.Context(), "champion")
	wantErr(t, err, nil, "HTTP 404", "not an MLflow API answer", "tracking URI")
	if errIs(err, source.ErrNotFound) {
		t.Errorf("a wrong URL reads as not found: %v", err)
	}
}

func errIs(err, target error) bool {
	for e := err; e != nil; {
		if e == target {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// As MLflow's client: 408 is retried; the 503 of an endpoint the server
// runs without (--no-serve-artifacts) is not.
func TestRetriesLikeMLflow(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	v := putVersion(t, s, "ranker", "1/r/artifacts/model", map[string][]byte{"model.onnx": []byte("m")})
	c := newClient(t, ts.URL)
	s.FailNext(2, http.StatusRequestTimeout)
	_, err := c.GetModelVersion(t.Context(), "ranker", "1")
	check(t, err)
	if n := s.Requests(); n != 3 {
		t.Errorf("%d requests after two 408s, want 3", n)
	}

	s.NoServeArtifacts()
	_, err = mlflow.NewSource(c, "ranker", nil).Describe(t.Context(), v)
	wantErr(t, err, nil, "HTTP 503", "--no-serve-artifacts")
	if strings.Contains(err.Error(), "gave up") {
		t.Errorf("a disabled endpoint was retried: %v", err)
	}
	if n := s.Calls("mlflow-artifacts/artifacts"); n != 1 {
		t.Errorf("%d listings, want 1", n)
	}
}

// MLFLOW_TRACKING_CLIENT_CERT_PATH: a PEM file with the client's
// certificate and key, for servers that ask for one.
func TestClientCertificate(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syncer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	check(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	check(t, err)
	pemFile := filepath.Join(t.TempDir(), "client.pem")
	check(t, os.WriteFile(pemFile, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...), 0o600))
	leaf, err := x509.ParseCertificate(der)
	check(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)

	s := mlflowtestServerWithModel(t)
	ts := httptest.NewUnstartedServer(s)
	ts.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	check(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644))

	env := map[string]string{"MLFLOW_TRACKING_URI": ts.URL, "MLFLOW_TRACKING_SERVER_CERT_PATH": caFile}
	for _, withCert := range []bool{false, true} {
		if withCert {
			env["MLFLOW_TRACKING_CLIENT_CERT_PATH"] = pemFile
		}
		o, err := mlflow.OptionsFromEnv(func(k string) string { return env[k] })
		check(t, err)
		o.Retries = -1
		c, err := mlflow.New(o)
		check(t, err)
		_, err = c.GetModelVersionByAlias(t.Context(), "ranker", "champion")
		if withCert {
			check(t, err)
		} else if err == nil {
			t.Error("the server took a client without a certificate")
		}
	}
}

// MLFLOW_REGISTRY_URI: registry calls go to the registry's server; the
// artifacts proxy (mlflow-artifacts:/) stays the tracking server's.
func TestRegistryURI(t *testing.T) {
	registry, rts := newServer(t)
	tracking, tts := newServer(t)
	check(t, registry.CreateModel("ranker"))
	v := must[int64](t)(registry.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model"))
	tracking.PutArtifact("1/r/artifacts/model/model.onnx", []byte("m"))
	c := newClient(t, tts.URL, func(o *mlflow.Options) { o.RegistryURL = rts.URL })
	src := mlflow.NewSource(c, "ranker", nil)
	ver, err := src.Describe(t.Context(), v)
	check(t, err)
	check(t, src.Fetch(t.Context(), ver, t.TempDir(), nil))
	if registry.Calls("mlflow/model-versions/get") != 1 || tracking.Calls("mlflow/model-versions/get") != 0 {
		t.Errorf("registry calls: %d to the registry, %d to the tracking server", registry.Calls("mlflow/model-versions/get"), tracking.Calls("mlflow/model-versions/get"))
	}
	if tracking.Calls("mlflow-artifacts/artifacts") != 1 || registry.Calls("mlflow-artifacts/artifacts") != 0 {
		t.Errorf("listings: %d on the tracking server, %d on the registry", tracking.Calls("mlflow-artifacts/artifacts"), registry.Calls("mlflow-artifacts/artifacts"))
	}
}

// Files of the MLflow model format that Triton never reads (MLmodel,
// conda.yaml, code/...) are not downloaded, and an unusual name among them
// (what code_paths copies: a leading dot, a space) never refuses the
// version. Elsewhere the same names still refuse.
func TestFlavorFilesNeverDecide(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	all := onnxFlavor()
	all["code/featurizer/.hidden"] = []byte("x")
	all["code/featurizer/my transform.py"] = []byte("X = 1\n")
	all["code/featurizer/__init__.py"] = nil
	all["metadata/MLmodel"] = []byte("flavors: {}")
	all["input_example.json"] = []byte("{}")
	v := putVersion(t, s, "ranker", "1/r/artifacts/model", all)
	src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
	ver, err := src.Describe(t.Context(), v)
	check(t, err)
	var paths []string
	for _, f := range ver.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "model.onnx weights.bin" {
		t.Errorf("files %s, want model.onnx weights.bin", got)
	}
	if n := s.Calls("mlflow-artifacts/artifacts"); n != 1 {
		t.Errorf("%d listings, want 1 (code/ and metadata/ not walked)", n)
	}
	dir := t.TempDir()
	check(t, src.Fetch(t.Context(), ver, dir, nil))
	checkDir(t, dir, served(all))

	s.PutArtifact("2/r/artifacts/model/model.onnx", []byte("m"))
	s.PutArtifact("2/r/artifacts/model/my weights.bin", []byte("w"))
	v2 := must[int64](t)(s.CreateVersion("ranker", "mlflow-artifacts:/2/r/artifacts/model"))
	_, err = src.Describe(t.Context(), v2)
	wantErr(t, err, nil, `"my weights.bin"`, "not allowed")
}

// A version the syncer refused is asked about again at every retry: one
// registry call (get) tells that nothing changed, and its artifacts are
// not listed again; a change to the version describes it anew.
func TestUnchangedVersionDescribedOnce(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	v := putVersion(t, s, "ranker", "1/r/artifacts/model", map[string][]byte{"model.onnx": []byte("m"), "sub/w.bin": []byte("w")})
	src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
	first := must[source.Version](t)(src.Describe(t.Context(), v))
	listings := s.Calls("mlflow-artifacts/artifacts")
	for range 3 {
		again := must[source.Version](t)(src.Describe(t.Context(), v))
		if again.Digest != first.Digest {
			t.Fatalf("digest changed: %s, %s", again.Digest, first.Digest)
		}
	}
	if n := s.Calls("mlflow-artifacts/artifacts"); n != listings {
		t.Errorf("%d more listings for an unchanged version", n-listings)
	}
	if n := s.Calls("mlflow/model-versions/get-download-uri"); n != 1 {
		t.Errorf("%d download URI calls, want 1", n)
	}
	if n := s.Calls("mlflow/model-versions/get"); n != 4 {
		t.Errorf("%d get calls, want 4 (one per Describe)", n)
	}
	check(t, s.TouchVersion("ranker", v))
	must[source.Version](t)(src.Describe(t.Context(), v))
	if n := s.Calls("mlflow/model-versions/get-download-uri"); n != 2 {
		t.Errorf("an updated version was not described again (%d download URI calls)", n)
	}

	// A refused version is refused again, unasked, while it is unchanged.
	bad := must[int64](t)(s.CreateVersion("ranker", "gs://bucket/ranker/2"))
	for i := range 3 {
		if _, err := src.Describe(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "gs://") {
			t.Fatalf("describe %d of a gs:// version: %v", i, err)
		}
	}
	if n := s.Calls("mlflow/model-versions/get-download-uri"); n != 3 {
		t.Errorf("a refused, unchanged version was described %d times, want once", n-2)
	}
	check(t, s.TouchVersion("ranker", bad))
	src.Describe(t.Context(), bad)
	if n := s.Calls("mlflow/model-versions/get-download-uri"); n != 4 {
		t.Errorf("an updated refused version was not described again (%d download URI calls)", n)
	}
}

// With MLflow's basic-auth app, READ on the registered model resolves the
// version, but its artifacts are checked against the experiment that
// logged them: the error says so.
func TestArtifactsForbiddenNamesExperiment(t *testing.T) {
	s := mlflowtest.New()
	check(t, s.CreateModel("ranker"))
	v := must[int64](t)(s.CreateVersion("ranker", "mlflow-artifacts:/7/run/artifacts/model"))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/2.0/mlflow-artifacts/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error_code": "PERMISSION_DENIED", "message": "Permission denied"}`)
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	_, err := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil).Describe(t.Context(), v)
	wantErr(t, err, source.ErrAccessDenied, "HTTP 403 PERMISSION_DENIED", "READ on the experiment 7")
}

// MLflow pages by offset and, unless told otherwise, orders by last
// update: a version updated between two pages moves and would be skipped.
// The client orders by version number.
func TestSearchOrderAcrossUpdates(t *testing.T) {
	s := mlflowtest.New()
	check(t, s.CreateModel("ranker"))
	for range 5 {
		must[int64](t)(s.CreateVersion("ranker", "s3://b/k"))
	}
	s.SetPageSize(2)
	var pages atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		if strings.HasSuffix(r.URL.Path, "/model-versions/search") && pages.Add(1) == 1 {
			s.TouchVersion("ranker", 1) // updated while the client reads the pages
		}
	}))
	t.Cleanup(ts.Close)
	got, err := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil).List(t.Context())
	check(t, err)
	if len(got) != 5 {
		t.Errorf("List = %v, want all 5 versions", got)
	}
}

// MLflow's version search answers an unknown model name with no versions
// (HTTP 200); List then asks for the model, so a misspelt name in the
// catalog is reported as unknown, in MLflow's words, not as a model with
// nothing to serve.
func TestListUnknownModel(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("empty"))
	c := newClient(t, ts.URL)
	if vs, err := c.SearchModelVersions(t.Context(), "nope"); err != nil || len(vs) != 0 {
		t.Fatalf("search of an unknown model: %v, %v (MLflow answers no versions)", vs, err)
	}
	_, err := mlflow.NewSource(c, "nope", nil).List(t.Context())
	if !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "Registered Model with name=nope not found") {
		t.Errorf("unknown model: %v", err)
	}
	if got, err := mlflow.NewSource(c, "empty", nil).List(t.Context()); err != nil || len(got) != 0 {
		t.Errorf("a model without versions: %v, %v", got, err)
	}
}
