//go:build interop

package interop_test

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

	"github.com/tritongate/tritongate/interop/peers"
	"github.com/tritongate/tritongate/proto/inference"
)

// The real-Triton suites (make interop-triton runs only these): the real
// tritonserver 2.51 of nvidia-pytriton, Python backend, models from
// interop/triton.

// pythonONNXConfig is the config.pbtxt that serves an ONNX model on real
// Triton through interop/triton/onnx_runner: the config modelctl generates
// (Triton's ONNX auto-complete), with backend "python" instead of
// onnxruntime (none ships with this tritonserver).
func pythonONNXConfig(t *testing.T, env *peers.Env, model, name string) string {
	t.Helper()
	out, stderr, err := peers.Run(t, time.Minute, env.BaseEnv(), env.BinPath("modelctl"), "config", "generate", model, "--name", name)
	if err != nil {
		t.Fatalf("modelctl config generate: %v\n%s", err, stderr)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "platform:"), strings.HasPrefix(l, "default_model_filename:"):
			continue
		case strings.HasPrefix(l, "backend:"):
			l = `backend: "python"`
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// writeStoreVersion writes one version of a model into a file:// store:
// <store>/<model>/<v>/ with the files of interop/triton/<src>/1 (model.py),
// the given config.pbtxt (shipped with the version: the syncer takes it
// instead of generating one) and, when onnx is set, model.onnx. It is
// written beside and renamed in, so the syncer never sees half a version.
func writeStoreVersion(t *testing.T, env *peers.Env, store, model string, v int, src, config, onnx string) {
	t.Helper()
	tmp := filepath.Join(store, model, fmt.Sprintf(".tmp-%d", v))
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if src != "" {
		peers.CopyDir(t, filepath.Join(env.Root, "interop", "triton", src, "1"), tmp)
	}
	if onnx != "" {
		b, err := os.ReadFile(onnx)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "model.onnx"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.pbtxt"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(store, model, strconv.Itoa(v))); err != nil {
		t.Fatal(err)
	}
}

// readConfig is a config.pbtxt of interop/triton.
func readConfig(t *testing.T, env *peers.Env, model string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.Root, "interop", "triton", model, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// liteConfig turns a Python-backend config of interop/triton into the one
// tritonlite serves with a builtin backend.
func liteConfig(cfg, backend string) string {
	return strings.Replace(cfg, `backend: "python"`, `backend: "`+backend+`"`, 1)
}

func writeCatalogFile(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// versionStates is RepositoryIndex for one model: version → state (reason).
func versionStates(t *testing.T, c inference.GRPCInferenceServiceClient, model string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if err != nil {
		t.Fatalf("RepositoryIndex: %v", err)
	}
	out := map[string]string{}
	for _, m := range idx.GetModels() {
		if m.GetName() == model && m.GetVersion() != "" {
			out[m.GetVersion()] = m.GetState()
		}
	}
	return out
}

// waitUntil polls ok every 200ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func inferAdd(t *testing.T, c inference.GRPCInferenceServiceClient, model, version string) *inference.ModelInferResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw := make([]byte, 4*60)
	resp, err := c.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: model, ModelVersion: version,
		Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{3, 4, 5}},
			{Name: "y", Datatype: "FP32", Shape: []int64{3, 4, 5}},
		}, RawInputContents: [][]byte{raw, raw}})
	if err != nil {
		t.Fatalf("ModelInfer %s version %q: %v", model, version, err)
	}
	return resp
}

// TestRealTritonSyncer: syncer init, then syncer watch, against the real
// tritonserver from a file:// store: an ONNX model (testdata's test_add)
// served through the Python-backend ONNX runner, its config shipped with
// each version. Triton accepts the config; a new version dropped into the
// store is loaded next to the old one (latest: 2).
func TestRealTritonSyncer(t *testing.T) {
	env := peers.Find(t)
	work := t.TempDir()
	store, repo := filepath.Join(work, "store"), filepath.Join(work, "mnt", "models")
	for _, d := range []string{store, repo} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	onnx := filepath.Join(env.Root, "testdata", "onnx", "node", "test_add", "model.onnx")
	cfg := pythonONNXConfig(t, env, onnx, "add")
	writeStoreVersion(t, env, store, "add", 1, "onnx_runner", cfg, onnx)
	catDir := filepath.Join(work, "catalog")
	if err := os.MkdirAll(catDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cat := writeCatalogFile(t, catDir, fmt.Sprintf(`pools:
  cpu: {kind: cpu, instances: 1}
models:
  - name: add
    source: file://%s/add
    pools: [cpu]
    versions: {latest: 2}
    warmup: {requests: 1}
`, store))

	tr := env.StartTriton(t, peers.TritonOptions{Repository: repo})
	t.Logf("tritonserver %s at %s", tr.Version(t), tr.GRPC)
	c := tr.Client(t)

	start := time.Now()
	out, stderr, err := peers.Run(t, 3*time.Minute, env.BaseEnv(), env.BinPath("syncer"), "init", "--catalog", cat, "--pool", "cpu",
		"--repository", repo, "--triton", tr.GRPC, "--timeout", "2m", "--retry", "2s")
	if err != nil {
		t.Fatalf("syncer init: %v\n%s%s", err, out, stderr)
	}
	t.Logf("syncer init: %s", time.Since(start).Round(time.Millisecond))
	if got := versionStates(t, c, "add"); got["1"] != "READY" {
		t.Fatalf("after syncer init: %v, want version 1 READY", got)
	}
	if r := inferAdd(t, c, "add", ""); r.GetModelVersion() != "1" || len(r.GetRawOutputContents()) != 1 {
		t.Fatalf("infer: %v", r)
	}
	// Triton accepted the generated config and reports it back.
	mc, err := c.ModelConfig(context.Background(), &inference.ModelConfigRequest{Name: "add"})
	if err != nil {
		t.Fatalf("ModelConfig: %v", err)
	}
	if mc.GetConfig().GetBackend() != "python" || len(mc.GetConfig().GetInput()) != 2 {
		t.Fatalf("config Triton loaded: %v", mc.GetConfig())
	}

	port := peers.FreePort(t)
	w := env.Start(t, "syncer-watch", nil, "", env.BinPath("syncer"), "watch", "--catalog", cat, "--pool", "cpu",
		"--repository", repo, "--triton", tr.GRPC, "--interval", "1s", "--listen", peers.Addr(port))
	peers.WaitHTTP(t, w, fmt.Sprintf("http://%s/readyz", peers.Addr(port)), time.Minute)

	writeStoreVersion(t, env, store, "add", 2, "onnx_runner", cfg, onnx)
	waitUntil(t, 90*time.Second, "version 2 READY next to version 1", func() bool {
		s := versionStates(t, c, "add")
		return s["1"] == "READY" && s["2"] == "READY"
	})
	if r := inferAdd(t, c, "add", "1"); r.GetModelVersion() != "1" {
		t.Errorf("version 1 answered as %s", r.GetModelVersion())
	}
	if r := inferAdd(t, c, "add", ""); r.GetModelVersion() != "2" {
		t.Errorf("latest answered as version %s, want 2", r.GetModelVersion())
	}
	// Version 3 retires version 1 (latest: 2).
	writeStoreVersion(t, env, store, "add", 3, "onnx_runner", cfg, onnx)
	waitUntil(t, 90*time.Second, "versions 2 and 3 READY, 1 unloaded", func() bool {
		s := versionStates(t, c, "add")
		return s["2"] == "READY" && s["3"] == "READY" && s["1"] != "READY"
	})
	if _, err := os.Stat(filepath.Join(repo, "add", "1")); !os.IsNotExist(err) {
		t.Errorf("version 1 still in the repository (%v)", err)
	}
}

// loadtestSummary is the part of loadtest's --json this suite reads.
type loadtestSummary struct {
	Summary struct {
		Requests int64            `json:"requests"`
		OK       int64            `json:"ok"`
		Errors   int64            `json:"errors"`
		Codes    map[string]int64 `json:"errors_by_code"`
	} `json:"summary"`
}

// rollout runs bin/loadtest at 100 req/s open loop through gw on model
// while versions 2..6 are dropped into the store one after the other
// (syncer watch running), each once the previous one serves; returns the
// loadtest summary, the command, and for how many versions a poll saw the
// new version LOADING beside the serving one (the window a slow load opens).
func rollout(t *testing.T, env *peers.Env, gw string, c inference.GRPCInferenceServiceClient, store, model, src, cfg string) (loadtestSummary, string, int) {
	t.Helper()
	const versions = 5
	out := filepath.Join(t.TempDir(), "rollout.json")
	args := []string{"run", "--target", gw, "--model", model, "--rate", "100", "--duration", "45s", "--timeout", "10s", "--quiet", "--json", out}
	cmd := "bin/loadtest " + strings.Join(args, " ")
	lt := env.Start(t, "loadtest", nil, "", env.BinPath("loadtest"), args...)
	time.Sleep(3 * time.Second)
	sawLoading := 0
	for v := 2; v < 2+versions; v++ {
		writeStoreVersion(t, env, store, model, v, src, cfg, "")
		loading := false
		waitUntil(t, 40*time.Second, fmt.Sprintf("version %d the only one READY", v), func() bool {
			s := versionStates(t, c, model)
			if s[strconv.Itoa(v)] == "LOADING" && s[strconv.Itoa(v-1)] == "READY" {
				loading = true
			}
			if s[strconv.Itoa(v)] != "READY" {
				return false
			}
			for k, st := range s {
				if k != strconv.Itoa(v) && st == "READY" {
					return false
				}
			}
			return true
		})
		if loading {
			sawLoading++
		}
		t.Logf("version %d serving alone (seen LOADING beside %d: %v)", v, v-1, loading)
		if done, _ := lt.Exited(); done {
			t.Fatalf("loadtest ended before version %d was rolled out: raise --duration", v)
		}
	}
	if err := lt.Wait(90 * time.Second); err != nil {
		t.Logf("loadtest: %v\n%s", err, lt.Output())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("loadtest wrote no JSON: %v\n%s", err, lt.Output())
	}
	var s loadtestSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s, cmd, sawLoading
}

// TestRealTritonRollout: 5 successive versions of a model whose load takes
// 1.5 s, rolled out by syncer watch under 100 req/s open-loop load through
// the gateway; the acceptance target is 0 failed requests. Against the
// real tritonserver with its default flags (strict readiness true), and
// against tritonlite with its load delay.
func TestRealTritonRollout(t *testing.T) {
	env := peers.Find(t)
	for _, target := range []string{"triton", "tritonlite"} {
		t.Run(target, func(t *testing.T) {
			work := t.TempDir()
			store, repo := filepath.Join(work, "store"), filepath.Join(work, "mnt", "models")
			for _, d := range []string{store, repo, filepath.Join(work, "catalog")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cfg := readConfig(t, env, "slow")
			src := "slow"
			if target == "tritonlite" {
				cfg, src = liteConfig(cfg, "identity"), ""
			}
			writeStoreVersion(t, env, store, "slow", 1, src, cfg, "")
			cat := writeCatalogFile(t, filepath.Join(work, "catalog"), fmt.Sprintf(`pools:
  cpu: {kind: cpu, instances: 1}
models:
  - name: slow
    source: file://%s/slow
    pools: [cpu]
    versions: {latest: 1}
    warmup: {requests: 1}
`, store))
			var backend string
			var c inference.GRPCInferenceServiceClient
			if target == "triton" {
				tr := env.StartTriton(t, peers.TritonOptions{Repository: repo})
				backend, c = tr.GRPC, tr.Client(t)
			} else {
				port, metrics := peers.FreePort(t), peers.FreePort(t)
				args := []string{"--model-repository", repo, "--model-control-mode", "explicit",
					"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(port),
					"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(metrics)}
				// The config's tritonlite_load_delay (1.5 s) is the delay;
				// --load-delay is there for models without one.
				args = append(args, "--load-delay", "1s")
				p := env.Start(t, "tritonlite", nil, env.Root, env.BinPath("tritonlite"), args...)
				backend = peers.Addr(port)
				peers.WaitTCP(t, p, backend, 30*time.Second)
				c = dial(t, backend)
			}
			out, stderr, err := peers.Run(t, 3*time.Minute, env.BaseEnv(), env.BinPath("syncer"), "init", "--catalog", cat, "--pool", "cpu",
				"--repository", repo, "--triton", backend, "--timeout", "2m", "--retry", "2s")
			if err != nil {
				t.Fatalf("syncer init: %v\n%s%s", err, out, stderr)
			}
			port := peers.FreePort(t)
			w := env.Start(t, "syncer-watch", nil, "", env.BinPath("syncer"), "watch", "--catalog", cat, "--pool", "cpu",
				"--repository", repo, "--triton", backend, "--interval", "1s", "--listen", peers.Addr(port))
			peers.WaitHTTP(t, w, fmt.Sprintf("http://%s/readyz", peers.Addr(port)), time.Minute)
			gw := runGateway(t, env, backend, "", []string{"slow"}, []string{"slow"}) // default health settings

			s, cmd, loading := rollout(t, env, gw, c, store, "slow", src, cfg)
			t.Logf("ROLLOUT %s: %d failed of %d (codes %v), new version seen LOADING beside the serving one for %d of 5: %s",
				target, s.Summary.Errors, s.Summary.Requests, s.Summary.Codes, loading, cmd)
			// The load window must be there for 0 failed to mean anything.
			if loading < 3 {
				t.Errorf("the new version was seen LOADING beside the serving one for only %d of 5 versions: the load is too fast to test the rollout", loading)
			}
			if s.Summary.Requests < 1000 {
				t.Errorf("only %d requests sent", s.Summary.Requests)
			}
			if s.Summary.Errors != 0 {
				t.Errorf("%d of %d requests failed during the rollout of 5 versions (codes %v), want 0", s.Summary.Errors, s.Summary.Requests, s.Summary.Codes)
			}
		})
	}
}
