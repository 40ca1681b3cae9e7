//go:build interop

package interop_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/mlflow"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/interop/peers"
	"github.com/tritongate/tritongate/proto/inference"
)

// mlStack is a real S3 server (versitygw) and a real MLflow tracking
// server whose artifacts live in it.
type mlStack struct {
	env    *peers.Env
	s3     *peers.S3
	ml     *peers.MLflow
	bucket string
	admin  []string // client credentials, with basic auth
}

func newMLStack(t *testing.T, direct, basicAuth bool) *mlStack {
	t.Helper()
	e := peers.Find(t)
	st := &mlStack{env: e, s3: e.StartS3(t), bucket: "mlflow"}
	st.ml = e.StartMLflow(t, peers.MLflowOptions{S3: st.s3, Bucket: st.bucket, Direct: direct, BasicAuth: basicAuth})
	if basicAuth {
		st.admin = []string{"MLFLOW_TRACKING_USERNAME=admin", "MLFLOW_TRACKING_PASSWORD=" + peers.AdminPassword}
	}
	return st
}

// ops runs interop/py/mlflow_ops.py as the ML engineer (the admin, with
// basic auth) and returns its last JSON line.
func (st *mlStack) ops(t *testing.T, args ...string) map[string]any {
	t.Helper()
	lines := st.env.Script(t, st.env.ClientEnv(st.ml, st.admin...), "mlflow_ops.py", args...)
	if len(lines) == 0 {
		t.Fatalf("mlflow_ops.py %s printed nothing", strings.Join(args, " "))
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Fatalf("mlflow_ops.py %s: %v: %s", strings.Join(args, " "), err, lines[len(lines)-1])
	}
	return out
}

// syncerEnv is the environment of a syncer in the pod: BaseEnv (nothing of
// MLflow's or AWS's) plus extra.
func (st *mlStack) syncerEnv(extra ...string) []string {
	return append(st.env.BaseEnv(), extra...)
}

// s3Env is what a syncer reading s3:// artifacts of a MinIO-style MLflow
// has: the keys and MLflow's MLFLOW_S3_ENDPOINT_URL (no region, no
// AWS_ENDPOINT_URL: as MLflow's own client needs).
func (st *mlStack) s3Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + st.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + st.s3.Secret, "MLFLOW_S3_ENDPOINT_URL=" + st.s3.Endpoint}
}

func addModel(t *testing.T, e *peers.Env) string {
	return filepath.Join(e.Root, "testdata", "onnx", "node", "test_add", "model.onnx")
}

// mlPool is a tritonlite in explicit model control: one pool.
type mlPool struct {
	addr   string
	repo   string
	client inference.GRPCInferenceServiceClient
}

func startMLPool(t *testing.T, e *peers.Env) *mlPool {
	t.Helper()
	p := &mlPool{repo: filepath.Join(t.TempDir(), "models")}
	if err := os.MkdirAll(p.repo, 0o755); err != nil {
		t.Fatal(err)
	}
	port := peers.FreePort(t)
	p.addr = peers.Addr(port)
	proc := e.Start(t, "tritonlite-pool", nil, e.Root, e.BinPath("tritonlite"), "--model-repository", p.repo,
		"--model-control-mode=explicit", "--grpc-address", "127.0.0.1", "--grpc-port", fmt.Sprint(port),
		"--metrics-port", fmt.Sprint(peers.FreePort(t)))
	peers.WaitTCP(t, proc, p.addr, 30*time.Second)
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.client = inference.NewGRPCInferenceServiceClient(conn)
	return p
}

// ready returns the model's READY versions, ascending.
func (p *mlPool) ready(t *testing.T, model string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	idx, err := p.client.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{Ready: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range idx.Models {
		if m.Name == model && m.State == "READY" {
			out = append(out, m.Version)
		}
	}
	slices.Sort(out)
	return out
}

// waitReady waits until exactly want are the model's READY versions.
func (p *mlPool) waitReady(t *testing.T, model string, d time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := p.ready(t, model)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: READY versions %v after %s, want %v", model, got, d, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// addRequest is a request for test_add's x + y (FP32 [3,4,5]).
func addRequest(model string) *inference.ModelInferRequest {
	x := make([]byte, 60*4)
	for i := range 60 {
		binary.LittleEndian.PutUint32(x[4*i:], math.Float32bits(float32(i)))
	}
	req := &inference.ModelInferRequest{ModelName: model}
	tensor.SetRequestInputs(req, []tensor.Tensor{
		{Name: "x", DataType: tensor.FP32, Shape: []int64{3, 4, 5}, Data: x},
		{Name: "y", DataType: tensor.FP32, Shape: []int64{3, 4, 5}, Data: x},
	})
	return req
}

// infer sends requests from 4 clients until stop is closed and counts the
// answers; a failure keeps its first error.
type inferLoad struct {
	ok, failed atomic.Int64
	first      atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(p *mlPool, model string) *inferLoad {
	l := &inferLoad{stop: make(chan struct{})}
	for range 4 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := p.client.ModelInfer(ctx, addRequest(model))
				cancel()
				if err == nil && len(resp.RawOutputContents) != 1 {
					err = fmt.Errorf("%d outputs", len(resp.RawOutputContents))
				}
				if err != nil {
					l.failed.Add(1)
					l.first.CompareAndSwap(nil, err)
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *inferLoad) end() (ok, failed int64, first error) {
	close(l.stop)
	l.wg.Wait()
	first, _ = l.first.Load().(error)
	return l.ok.Load(), l.failed.Load(), first
}

func writeCatalog(t *testing.T, trackingURI, models string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "catalog.yaml")
	body := "pools:\n  cpu: {kind: cpu}\n"
	if trackingURI != "" {
		body = "mlflow: {tracking_uri: \"" + trackingURI + "\"}\n" + body
	}
	if err := os.WriteFile(p, []byte(body+"models:\n"+models), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncerInit runs `syncer init` for pool cpu and returns its exit error
// and stderr.
func syncerInit(t *testing.T, e *peers.Env, env []string, catalog, repo, triton string) (string, error) {
	return syncerInitFor(t, e, env, catalog, repo, triton, 2*time.Minute)
}

// syncerInitFor is syncerInit giving up after timeout (init retries what
// fails until then).
func syncerInitFor(t *testing.T, e *peers.Env, env []string, catalog, repo, triton string, timeout time.Duration) (string, error) {
	t.Helper()
	_, stderr, err := peers.Run(t, timeout+time.Minute, env, e.BinPath("syncer"), "init", "--catalog", catalog, "--pool", "cpu",
		"--repository", repo, "--triton", triton, "--progress", "log", "--timeout", timeout.String(), "--retry", "500ms")
	return stderr, err
}

// TestMLflowEngineerFlow: what a data scientist does in MLflow 3, for real —
// mlflow.onnx.log_model (a logged model, with code files: an empty
// __init__.py, a name with a space, a dot file), registered with the alias
// champion; a version from a run's artifacts (runs:/); one uploaded
// straight to S3 and registered by source — is served by a tritonlite pool
// after one `syncer init` configured by the catalog alone, and `syncer
// watch` follows the alias with 0 failed requests. Both artifact modes:
// MLflow's artifacts proxy (mlflow-artifacts:/, the syncer needs no S3
// access at all) and a direct s3:// artifact root on a MinIO-style
// endpoint named only in MLFLOW_S3_ENDPOINT_URL.
func TestMLflowEngineerFlow(t *testing.T) {
	for _, mode := range []struct {
		name   string
		direct bool
	}{{"proxied", false}, {"direct", true}} {
		t.Run(mode.name, func(t *testing.T) {
			st := newMLStack(t, mode.direct, false)
			e := st.env
			onnx := addModel(t, e)
			v1 := st.ops(t, "log-onnx", "adder", onnx, "--alias", "champion", "--code")
			if src, _ := v1["source"].(string); !strings.HasPrefix(src, "models:/m-") {
				t.Errorf("log_model's version source is %q, want models:/m-<id> (MLflow 3)", src)
			}
			v2 := st.ops(t, "log-run", "adder", onnx, "--runs-uri")
			if src, _ := v2["source"].(string); !strings.HasPrefix(src, "runs:/") {
				t.Errorf("version 2's source is %q, want runs:/...", src)
			}
			data, err := os.ReadFile(onnx)
			if err != nil {
				t.Fatal(err)
			}
			st.s3.Put(t, st.bucket, "uploaded/adder/model.onnx", data)
			v3 := st.ops(t, "register-source", "adder", "s3://"+st.bucket+"/uploaded/adder")
			if v1["version"] != "1" || v2["version"] != "2" || v3["version"] != "3" {
				t.Fatalf("versions %v %v %v", v1["version"], v2["version"], v3["version"])
			}

			pool := startMLPool(t, e)
			catalog := writeCatalog(t, st.ml.URL, "  - {name: adder, source: \"mlflow:adder\", pools: [cpu], versions: {aliases: [champion]}}\n")
			// The catalog's tracking URI alone; in proxy mode no AWS
			// settings at all (every artifact is mlflow-artifacts:/).
			var env []string
			if mode.direct {
				env = st.syncerEnv(st.s3Env()...)
			} else {
				env = st.syncerEnv()
			}
			if stderr, err := syncerInit(t, e, env, catalog, pool.repo, pool.addr); err != nil {
				t.Fatalf("syncer init: %v\n%s", err, stderr)
			}
			pool.waitReady(t, "adder", 10*time.Second, "1")
			published, err := os.ReadDir(filepath.Join(pool.repo, "adder", "1"))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range published {
				if f.Name() != "model.onnx" && f.Name() != ".tritongate.json" { // the syncer's marker
					t.Errorf("published %s next to model.onnx (MLflow's files are not Triton's)", f.Name())
				}
			}

			// The alias moves to the run's version, then to the one
			// uploaded to S3, under load; watch follows.
			env = st.syncerEnv(st.s3Env()...)
			watchPort := peers.FreePort(t)
			w := e.Start(t, "syncer-watch", env, "", e.BinPath("syncer"), "watch", "--catalog", catalog, "--pool", "cpu",
				"--repository", pool.repo, "--triton", pool.addr, "--progress", "log", "--interval", "1s",
				"--listen", peers.Addr(watchPort))
			peers.WaitHTTP(t, w, "http://"+peers.Addr(watchPort)+"/readyz", 60*time.Second)
			load := startLoad(pool, "adder")
			st.ops(t, "alias", "adder", "champion", "2")
			pool.waitReady(t, "adder", 60*time.Second, "2")
			st.ops(t, "alias", "adder", "champion", "3")
			pool.waitReady(t, "adder", 60*time.Second, "3")
			ok, failed, first := load.end()
			t.Logf("%d requests answered while champion moved 1 -> 2 -> 3, %d failed", ok, failed)
			if failed != 0 || ok == 0 {
				t.Errorf("%d of %d requests failed while the alias moved; first: %v", failed, ok+failed, first)
			}
		})
	}
}

// countingProxy stands between a client and the real MLflow server,
// counting requests by path; with token set it refuses requests without
// "Authorization: Bearer <token>" (as an authenticating gateway in front of
// MLflow does). after, if set, runs after each answer.
type countingProxy struct {
	URL   string
	mu    sync.Mutex
	paths map[string]int
	after func(r *http.Request)
}

func newCountingProxy(t *testing.T, target, token string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{paths: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error_code": "UNAUTHENTICATED", "message": "a bearer token is required"}`, http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		p.paths[r.URL.Path]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
		p.mu.Lock()
		after := p.after
		p.mu.Unlock()
		if after != nil {
			after(r)
		}
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *countingProxy) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.paths {
		n += c
	}
	return n
}

func (p *countingProxy) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paths[path]
}

func (p *countingProxy) setAfter(f func(r *http.Request)) {
	p.mu.Lock()
	p.after = f
	p.mu.Unlock()
}

// TestMLflowAuth: basic auth (mlflow server --app-name basic-auth) and a
// token. A user with READ on the registered model only resolves the
// version but cannot read its artifacts (the app checks them by
// experiment): the syncer says so in one line; with READ on the
// experiment too, the version serves. A wrong password is the server's 401.
// A token (MLFLOW_TRACKING_TOKEN) is sent as a bearer token by the syncer
// as by MLflow's own client.
func TestMLflowAuth(t *testing.T) {
	t.Run("basic", func(t *testing.T) {
		st := newMLStack(t, false, true)
		e := st.env
		st.ops(t, "log-onnx", "adder", addModel(t, e), "--alias", "champion")
		st.ops(t, "create-user", "reader", "reader-password-1")
		st.ops(t, "grant-model", "reader", "adder", "READ")
		exp := st.ops(t, "experiment-of", "adder", "1")["experiment_id"].(string)
		catalog := writeCatalog(t, st.ml.URL, "  - {name: adder, source: \"mlflow:adder\", pools: [cpu], versions: {aliases: [champion]}}\n")
		reader := st.syncerEnv("MLFLOW_TRACKING_USERNAME=reader", "MLFLOW_TRACKING_PASSWORD=reader-password-1")

		stderr, err := syncerInitFor(t, e, reader, catalog, filepath.Join(t.TempDir(), "models"), "none", 5*time.Second)
		want := "needs READ on the experiment " + exp
		if err == nil || !strings.Contains(stderr, want) || !strings.Contains(stderr, "403") {
			t.Errorf("READ on the model only: err %v, stderr lacks %q (and the 403):\n%s", err, want, stderr)
		}
		if i := strings.Index(stderr, "403"); i >= 0 {
			t.Logf("READ on the model only: ...%s", stderr[max(0, i-200):min(len(stderr), i+400)])
		}

		wrong := st.syncerEnv("MLFLOW_TRACKING_USERNAME=reader", "MLFLOW_TRACKING_PASSWORD=nope")
		stderr, err = syncerInitFor(t, e, wrong, catalog, filepath.Join(t.TempDir(), "models"), "none", 5*time.Second)
		if err == nil || !strings.Contains(stderr, "401") {
			t.Errorf("wrong password: err %v, want the server's 401:\n%s", err, stderr)
		}

		st.ops(t, "grant-experiment", "reader", exp, "READ")
		repo := filepath.Join(t.TempDir(), "models")
		if stderr, err := syncerInit(t, e, reader, catalog, repo, "none"); err != nil {
			t.Fatalf("READ on the model and the experiment: %v\n%s", err, stderr)
		}
		if _, err := os.Stat(filepath.Join(repo, "adder", "1", "model.onnx")); err != nil {
			t.Error(err)
		}
	})
	t.Run("token", func(t *testing.T) {
		st := newMLStack(t, false, false)
		e := st.env
		proxy := newCountingProxy(t, st.ml.URL, "s3cr3t-token")
		// MLflow's own client logs through the token-checking proxy...
		env := append(e.ClientEnv(st.ml, "MLFLOW_TRACKING_TOKEN=s3cr3t-token"), "MLFLOW_TRACKING_URI="+proxy.URL)
		e.Script(t, env, "mlflow_ops.py", "log-onnx", "adder", addModel(t, e), "--alias", "champion")
		// ... and the syncer reads through it with the same variable.
		catalog := writeCatalog(t, "", "  - {name: adder, source: \"mlflow:adder\", pools: [cpu], versions: {aliases: [champion]}}\n")
		repo := filepath.Join(t.TempDir(), "models")
		env = st.syncerEnv("MLFLOW_TRACKING_URI="+proxy.URL, "MLFLOW_TRACKING_TOKEN=s3cr3t-token")
		if stderr, err := syncerInit(t, e, env, catalog, repo, "none"); err != nil {
			t.Fatalf("with the token: %v\n%s", err, stderr)
		}
		if _, err := os.Stat(filepath.Join(repo, "adder", "1", "model.onnx")); err != nil {
			t.Error(err)
		}
		env = st.syncerEnv("MLFLOW_TRACKING_URI=" + proxy.URL)
		stderr, err := syncerInitFor(t, e, env, catalog, filepath.Join(t.TempDir(), "models"), "none", 5*time.Second)
		if err == nil || !strings.Contains(stderr, "401") {
			t.Errorf("without the token: err %v, want a 401:\n%s", err, stderr)
		}
	})
}

// TestMLflowRegistry: the registry's states and answers as the real server
// gives them — more than one page of versions (with a version updated
// between pages), PENDING and FAILED registrations, a deleted version (its
// alias goes with it), a deleted model, an unknown model and version, a
// missing alias, a wrong base URL, and a server that does not serve
// artifacts (--no-serve-artifacts) asked for a proxied one.
func TestMLflowRegistry(t *testing.T) {
	st := newMLStack(t, false, false)
	e := st.env
	ctx := context.Background()
	data, err := os.ReadFile(addModel(t, e))
	if err != nil {
		t.Fatal(err)
	}
	st.s3.Put(t, st.bucket, "uploaded/adder/model.onnx", data)
	uri := "s3://" + st.bucket + "/uploaded/adder"
	got := st.ops(t, "register-many", "adder", uri, "7")
	if fmt.Sprint(got["versions"]) != "[1 2 3 4 5 6 7]" {
		t.Fatalf("registered %v", got["versions"])
	}
	proxy := newCountingProxy(t, st.ml.URL, "")
	client := func(t *testing.T, base string, page int) *mlflow.Client {
		c, err := mlflow.New(mlflow.Options{BaseURL: base, SearchPageSize: page, Retries: 2, Backoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := client(t, proxy.URL, 3)

	t.Run("pages", func(t *testing.T) {
		// After the first page, version 1 is updated: with MLflow's default
		// order (last update first) it would move to the first page and be
		// skipped; ordered by version number it is not.
		var once sync.Once
		proxy.setAfter(func(r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/model-versions/search") {
				once.Do(func() { st.ops(t, "update", "adder", "1", "retrained") })
			}
		})
		defer proxy.setAfter(nil)
		before := proxy.count("/api/2.0/mlflow/model-versions/search")
		vs, err := c.SearchModelVersions(ctx, "adder")
		if err != nil {
			t.Fatal(err)
		}
		var nums []string
		for _, v := range vs {
			nums = append(nums, v.GetVersion())
		}
		if strings.Join(nums, ",") != "1,2,3,4,5,6,7" {
			t.Errorf("versions over pages of 3: %v", nums)
		}
		if n := proxy.count("/api/2.0/mlflow/model-versions/search") - before; n != 3 {
			t.Errorf("%d search pages, want 3", n)
		}
	})

	src := mlflow.NewSource(c, "adder", nil)
	t.Run("pending and failed", func(t *testing.T) {
		db := filepath.Join(st.ml.Dir, "mlflow.db")
		st.ops(t, "set-status", db, "adder", "5", "PENDING_REGISTRATION")
		st.ops(t, "set-status", db, "adder", "6", "FAILED_REGISTRATION", "copy failed")
		list, err := src.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(list) != "[1 2 3 4 7]" {
			t.Errorf("READY versions %v, want [1 2 3 4 7]", list)
		}
		for _, n := range []int64{5, 6} {
			_, err := src.Describe(ctx, n)
			if err == nil || !strings.Contains(err.Error(), "REGISTRATION") {
				t.Errorf("describe %d: %v, want its status named", n, err)
			}
		}
	})

	t.Run("deleted version and alias", func(t *testing.T) {
		st.ops(t, "alias", "adder", "champion", "7")
		if n, err := src.Alias(ctx, "champion"); err != nil || n != 7 {
			t.Fatalf("champion = %d, %v", n, err)
		}
		st.ops(t, "delete-version", "adder", "7")
		if _, err := src.Alias(ctx, "champion"); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("alias of a deleted version: %v, want not found", err)
		}
		if _, err := src.Alias(ctx, "nope"); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "Registered model alias nope not found") {
			t.Errorf("missing alias: %v, want not found with MLflow's message", err)
		}
		list, err := src.List(ctx)
		if err != nil || fmt.Sprint(list) != "[1 2 3 4]" {
			t.Errorf("after deleting 7: %v, %v", list, err)
		}
		if _, err := c.GetModelVersion(ctx, "adder", "7"); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "Model Version (name=adder, version=7) not found") {
			t.Errorf("deleted version: %v", err)
		}
	})

	t.Run("unknown and deleted model", func(t *testing.T) {
		if _, err := mlflow.NewSource(c, "nope", nil).List(ctx); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("unknown model: %v", err)
		}
		if _, err := mlflow.NewSource(c, "nope", nil).Alias(ctx, "champion"); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "Registered Model with name=nope not found") {
			t.Errorf("alias of an unknown model: %v", err)
		}
		st.ops(t, "delete-model", "adder")
		if _, err := src.Alias(ctx, "champion"); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("deleted model: %v", err)
		}
	})

	t.Run("wrong base URL", func(t *testing.T) {
		// A path prefix the server does not have: Flask's HTML 404, which
		// is not "model not found".
		_, err := mlflow.NewSource(client(t, st.ml.URL+"/mlflow", 0), "adder", nil).List(ctx)
		if err == nil || errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "tracking") {
			t.Errorf("wrong base URL: %v, want an error about the tracking URI, not not-found", err)
		}
	})

	t.Run("artifacts not served", func(t *testing.T) {
		// The server is restarted with --no-serve-artifacts: versions
		// logged through its proxy are answered with 503 "Endpoint ...
		// disabled", which is not retried, and refused again, unasked,
		// while the version is unchanged.
		st.ops(t, "log-onnx", "proxied", addModel(t, e))
		st.ml.Proc.Stop()
		direct := e.StartMLflow(t, peers.MLflowOptions{S3: st.s3, Bucket: st.bucket, Direct: true, Dir: st.ml.Dir})
		dp := newCountingProxy(t, direct.URL, "")
		dsrc := mlflow.NewSource(client(t, dp.URL, 0), "proxied", nil)
		_, err := dsrc.Describe(ctx, 1)
		if err == nil || !strings.Contains(err.Error(), "disabled") {
			t.Fatalf("describe: %v, want the server's 'disabled' answer", err)
		}
		if n := dp.count("/api/2.0/mlflow-artifacts/artifacts"); n != 1 {
			t.Errorf("the disabled endpoint was asked %d times, want 1", n)
		}
		before := dp.total()
		if _, err := dsrc.Describe(ctx, 1); err == nil {
			t.Fatal("described on the second try")
		}
		if n := dp.total() - before; n != 1 {
			t.Errorf("second describe of an unchanged refused version: %d requests, want 1 (the version)", n)
		}
	})
}
