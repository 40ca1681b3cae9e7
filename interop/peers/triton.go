package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tritongate/tritongate/proto/inference"
)

// TritonOptions choose how the real tritonserver runs.
type TritonOptions struct {
	// Repository is the model repository (required).
	Repository string
	// StrictReadiness is --strict-readiness; nil leaves Triton's default
	// (true).
	StrictReadiness *bool
	// LoadModels are --load-model arguments ("*" for all).
	LoadModels []string
	// Extra flags, appended last.
	Extra []string
	// Wait is how long to wait for the server to be live (default 90 s).
	Wait time.Duration
}

// Triton is a running tritonserver (nvidia-pytriton's 2.51 build, Python
// backend) on loopback.
type Triton struct {
	GRPC    string // 127.0.0.1:port
	HTTP    string // http://127.0.0.1:port
	Metrics string // http://127.0.0.1:port/metrics
	Proc    *Proc
}

// TritonDir is nvidia-pytriton's tritonserver directory in the virtualenv
// (bin/, backends/, caches/).
func (e *Env) TritonDir(t testing.TB) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(e.Venv, "lib", "python3*", "site-packages", "pytriton", "tritonserver"))
	for _, m := range matches {
		if fileExists(filepath.Join(m, "bin", "tritonserver")) {
			if !fileExists(filepath.Join(m, "backends", "python", "triton_python_backend_stub")) {
				t.Fatalf("interop: %s has no Python backend stub: run interop/setup.sh", m)
			}
			return m
		}
	}
	t.Fatalf("interop: no nvidia-pytriton tritonserver in %s: run interop/setup.sh", e.Venv)
	return ""
}

// TritonEnv is the environment tritonserver runs with: BaseEnv (the venv's
// bin/ first on PATH, where the Python stub finds numpy) and
// LD_LIBRARY_PATH holding the venv Python's LIBDIR (libpython3.11.so.1.0).
func (e *Env) TritonEnv(t testing.TB) []string {
	t.Helper()
	out, stderr, err := Run(t, 30*time.Second, e.BaseEnv(), e.Python(), "-c", `import sysconfig; print(sysconfig.get_config_var("LIBDIR"))`)
	if err != nil {
		t.Fatalf("interop: the venv's python: %v\n%s", err, stderr)
	}
	libdir := strings.TrimSpace(out)
	var env []string
	ld := libdir
	for _, kv := range e.BaseEnv() {
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			if v != "" {
				ld += ":" + v
			}
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LD_LIBRARY_PATH="+ld)
}

// StartTriton starts the real tritonserver directly (not through pytriton's
// Python API) in explicit model control on free loopback ports, waits until
// it is live (and every --load-model model is loaded: Triton is ready or
// exits), and stops it when the test ends. Its log is in the test's temp
// dir and printed when the test fails.
func (e *Env) StartTriton(t testing.TB, o TritonOptions) *Triton {
	t.Helper()
	if o.Repository == "" {
		t.Fatal("StartTriton: no repository")
	}
	ts := e.TritonDir(t)
	grpcPort, httpPort, metricsPort := FreePort(t), FreePort(t), FreePort(t)
	args := []string{"--model-control-mode=explicit", "--model-repository", o.Repository,
		"--backend-directory", filepath.Join(ts, "backends"), "--cache-directory", filepath.Join(ts, "caches"),
		"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(grpcPort),
		"--http-address", "127.0.0.1", "--http-port", strconv.Itoa(httpPort),
		"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(metricsPort),
		"--exit-timeout-secs", "5"}
	if o.StrictReadiness != nil {
		args = append(args, "--strict-readiness="+strconv.FormatBool(*o.StrictReadiness))
	}
	for _, m := range o.LoadModels {
		args = append(args, "--load-model", m)
	}
	args = append(args, o.Extra...)
	tr := &Triton{GRPC: Addr(grpcPort), HTTP: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		Metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
	tr.Proc = e.Start(t, "tritonserver", e.TritonEnv(t), "", filepath.Join(ts, "bin", "tritonserver"), args...)
	wait := o.Wait
	if wait == 0 {
		wait = 90 * time.Second
	}
	WaitHTTP(t, tr.Proc, tr.HTTP+"/v2/health/live", wait)
	WaitTCP(t, tr.Proc, tr.GRPC, wait)
	return tr
}

// Version is the server's ServerMetadata version (HTTP /v2).
func (tr *Triton) Version(t testing.TB) string {
	t.Helper()
	res, err := httpClient.Get(tr.HTTP + "/v2")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var md struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.NewDecoder(res.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	return md.Version
}

// Client dials the server's gRPC endpoint.
func (tr *Triton) Client(t testing.TB) inference.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(tr.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return inference.NewGRPCInferenceServiceClient(conn)
}

// Load has the server load a model (RepositoryModelLoad), bounded by 2
// minutes.
func (tr *Triton) Load(t testing.TB, model string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := tr.Client(t).RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: model})
	return err
}

// TritonModel copies the model interop/triton/<name> (config.pbtxt and
// version 1, symbolic links resolved) into repo as model as, with version
// directories versions (default 1). The config's name is replaced by as.
func (e *Env) TritonModel(t testing.TB, repo, name, as string, versions ...int) string {
	t.Helper()
	src := filepath.Join(e.Root, "interop", "triton", name)
	cfg, err := os.ReadFile(filepath.Join(src, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(repo, as)
	if len(versions) == 0 {
		versions = []int{1}
	}
	for _, v := range versions {
		vd := filepath.Join(dst, strconv.Itoa(v))
		if err := os.MkdirAll(vd, 0o755); err != nil {
			t.Fatal(err)
		}
		CopyDir(t, filepath.Join(src, "1"), vd)
	}
	cfg = []byte(strings.Replace(string(cfg), `name: "`+name+`"`, `name: "`+as+`"`, 1))
	if err := os.WriteFile(filepath.Join(dst, "config.pbtxt"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// CopyDir copies the regular files of src (links followed, not recursive
// below one level of directories) into dst.
func CopyDir(t testing.TB, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range ents {
		s, d := filepath.Join(src, en.Name()), filepath.Join(dst, en.Name())
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		if fi.IsDir() {
			if en.Name() == "__pycache__" {
				continue
			}
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			CopyDir(t, s, d)
			continue
		}
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
