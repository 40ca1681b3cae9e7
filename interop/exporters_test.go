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

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/interop/peers"
	"github.com/tritongate/tritongate/proto/inference"
)

// exported is one model of interop/py/export_models.py's manifest.
type exported struct {
	Name, File, Exporter, What string
	Inputs, Outputs            []exportedTensor
	Tolerance                  float64
	Servable                   bool
	Refusal                    string
}

type exportedTensor struct {
	Name     string            `json:"name"`
	Datatype string            `json:"datatype"`
	Shape    []int64           `json:"shape"`
	Data     []json.RawMessage `json:"data"`
}

// tensor is t in Triton's raw layout.
func (t exportedTensor) tensor(tb testing.TB) tensor.Tensor {
	tb.Helper()
	var err error
	out := tensor.Tensor{Name: t.Name, Shape: t.Shape}
	switch t.Datatype {
	case "FP32":
		v := make([]float32, len(t.Data))
		for i, d := range t.Data {
			var f float64
			err = json.Unmarshal(d, &f)
			v[i] = float32(f)
		}
		out = tensor.Of(t.Name, t.Shape, v)
	case "INT64":
		v := make([]int64, len(t.Data))
		for i, d := range t.Data {
			err = json.Unmarshal(d, &v[i])
		}
		out = tensor.Of(t.Name, t.Shape, v)
	case "BYTES":
		elems := make([][]byte, len(t.Data))
		for i, d := range t.Data {
			var s string
			err = json.Unmarshal(d, &s)
			elems[i] = []byte(s)
		}
		out.DataType, out.Data = tensor.Bytes, tensor.EncodeBytes(elems)
	default:
		tb.Fatalf("tensor %s: datatype %s not handled here", t.Name, t.Datatype)
	}
	if err != nil {
		tb.Fatalf("tensor %s: %v", t.Name, err)
	}
	return out
}

// TestExporters: models from the real exporters (skl2onnx, onnxmltools for
// LightGBM and XGBoost), exported at test time by the interop venv's
// pinned packages. Each is inspected, configured (valid by Triton's rules
// with auto-complete off), built into one repository (the one that cannot
// be served, ZipMap's sequence of maps, is refused with Triton's message
// and does not stop the others), served by tritonlite, and its outputs for
// the same inputs equal ONNX Runtime's Python API within the model's
// tolerance. The syncer places every good model of a store with a bad one
// in it, and says which failed.
func TestExporters(t *testing.T) {
	env := peers.Find(t)
	work := t.TempDir()
	exports := filepath.Join(work, "exports")
	if err := os.MkdirAll(exports, 0o755); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := peers.Run(t, 5*time.Minute, env.BaseEnv(), env.Python(), filepath.Join(env.Root, "interop", "py", "export_models.py"), "--out", exports)
	if err != nil {
		t.Fatalf("export_models.py: %v\n%s", err, stderr)
	}
	var manifest struct{ Models []exported }
	if err := json.Unmarshal([]byte(out), &manifest); err != nil {
		t.Fatalf("export_models.py printed %q: %v", out, err)
	}
	if len(manifest.Models) < 7 {
		t.Fatalf("%d models exported", len(manifest.Models))
	}
	modelctl := env.BinPath("modelctl")

	// inspect and config generate, one model at a time.
	var sources []string
	for _, m := range manifest.Models {
		t.Logf("%-24s %s: %s", m.Name, m.Exporter, m.What)
		if _, stderr, err := peers.Run(t, time.Minute, env.BaseEnv(), modelctl, "inspect", m.File); err != nil {
			t.Errorf("%s: modelctl inspect: %v %s", m.Name, err, stderr)
		}
		_, stderr, err := peers.Run(t, time.Minute, env.BaseEnv(), modelctl, "config", "generate", m.File, "--name", m.Name)
		switch {
		case m.Servable && err != nil:
			t.Errorf("%s: modelctl config generate: %v %s", m.Name, err, stderr)
		case !m.Servable && (err == nil || !strings.Contains(stderr, m.Refusal)):
			t.Errorf("%s: modelctl config generate: %v %q, want the refusal %q", m.Name, err, stderr, m.Refusal)
		}
		sources = append(sources, m.Name+"="+m.File)
	}

	// repo build: the servable models are built, the other reported.
	repo := filepath.Join(work, "repo")
	_, stderr, err = peers.Run(t, 2*time.Minute, env.BaseEnv(), modelctl, append(append([]string{"repo", "build"}, sources...), "--out", repo)...)
	if err == nil || !strings.Contains(stderr, "sklearn_logreg_zipmap") || !strings.Contains(stderr, "1 of 7 models failed; 6 built") {
		t.Fatalf("repo build: %v, stderr %q: want the ZipMap model refused and the 6 others built", err, stderr)
	}
	if _, stderr, err := peers.Run(t, time.Minute, env.BaseEnv(), modelctl, "config", "check", "--no-autofill", "--gpus", "0", repo); err != nil {
		t.Fatalf("config check --no-autofill of the built repository: %v %s", err, stderr)
	}

	// tritonlite serves them; outputs equal ONNX Runtime's Python API.
	port, metrics := peers.FreePort(t), peers.FreePort(t)
	p := env.Start(t, "tritonlite", nil, env.Root, env.BinPath("tritonlite"), "--model-repository", repo,
		"--model-control-mode", "explicit", "--load-model", "*",
		"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(port),
		"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(metrics))
	addr := peers.Addr(port)
	peers.WaitTCP(t, p, addr, time.Minute)
	c := dial(t, addr)
	for _, m := range manifest.Models {
		if !m.Servable {
			continue
		}
		t.Run(m.Name, func(t *testing.T) {
			waitUntil(t, time.Minute, m.Name+" ready", func() bool {
				r, err := c.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: m.Name})
				return err == nil && r.Ready
			})
			// A client of Triton sends and gets the shapes of the config:
			// [batch] + dims for a batching model (a rank-1 tensor of the
			// model is [batch, 1], reshaped for the model as the config's
			// reshape says).
			mc, err := c.ModelConfig(context.Background(), &inference.ModelConfigRequest{Name: m.Name})
			if err != nil {
				t.Fatal(err)
			}
			cfg := mc.GetConfig()
			clientShape := func(modelShape []int64, dims []int64) []int64 {
				if cfg.GetMaxBatchSize() == 0 {
					return modelShape
				}
				return append([]int64{modelShape[0]}, dims...)
			}
			dimsOf := map[string][]int64{}
			for _, in := range cfg.GetInput() {
				dimsOf[in.GetName()] = in.GetDims()
			}
			for _, o := range cfg.GetOutput() {
				dimsOf[o.GetName()] = o.GetDims()
			}
			req := &inference.ModelInferRequest{ModelName: m.Name}
			for _, in := range m.Inputs {
				tt := in.tensor(t)
				tt.Shape = clientShape(tt.Shape, dimsOf[tt.Name])
				req.Inputs = append(req.Inputs, &inference.ModelInferRequest_InferInputTensor{Name: tt.Name, Datatype: tt.DataType.String(), Shape: tt.Shape})
				req.RawInputContents = append(req.RawInputContents, tt.Data)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := c.ModelInfer(ctx, req)
			if err != nil {
				t.Fatalf("infer: %v", err)
			}
			got := map[string]tensor.Tensor{}
			for i, o := range resp.GetOutputs() {
				dt, _ := tensor.Parse(o.GetDatatype())
				got[o.GetName()] = tensor.Tensor{Name: o.GetName(), DataType: dt, Shape: o.GetShape(), Data: resp.GetRawOutputContents()[i]}
			}
			for _, want := range m.Outputs {
				g, ok := got[want.Name]
				if !ok {
					t.Errorf("output %s missing (got %d outputs)", want.Name, len(got))
					continue
				}
				wt := want.tensor(t)
				wt.Shape = clientShape(wt.Shape, dimsOf[wt.Name])
				if err := tensor.Compare(wt, g, m.Tolerance); err != nil {
					t.Errorf("output %s differs from ONNX Runtime's: %v", want.Name, err)
				}
			}
		})
	}

	// The syncer: a store with the exported models, the ZipMap one and a
	// file that is no model; syncer init places every other one, says which
	// failed and why, and exits non-zero.
	store := filepath.Join(work, "store")
	var models strings.Builder
	bad := map[string]string{"sklearn_logreg_zipmap": "ONNX_TYPE_SEQUENCE", "garbage": "not a valid ONNX model"}
	put := func(name string, data []byte) {
		d := filepath.Join(store, name, "1")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "model.onnx"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&models, "  - {name: %s, source: \"file://%s\", pools: [cpu], versions: {latest: 1}}\n", name, filepath.Join(store, name))
	}
	for _, m := range manifest.Models {
		b, err := os.ReadFile(m.File)
		if err != nil {
			t.Fatal(err)
		}
		put(m.Name, b)
	}
	put("garbage", []byte("this is not an ONNX model"))
	catalog := writeCatalogFile(t, work, "pools:\n  cpu: {kind: cpu}\nmodels:\n"+models.String())
	synced := filepath.Join(work, "synced")
	port2, metrics2 := peers.FreePort(t), peers.FreePort(t)
	p2 := env.Start(t, "tritonlite-synced", nil, env.Root, env.BinPath("tritonlite"), "--model-repository", synced,
		"--model-control-mode", "explicit", "--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(port2),
		"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(metrics2))
	addr2 := peers.Addr(port2)
	if err := os.MkdirAll(synced, 0o755); err != nil {
		t.Fatal(err)
	}
	peers.WaitTCP(t, p2, addr2, time.Minute)
	sout, serr, err := peers.Run(t, 3*time.Minute, env.BaseEnv(), env.BinPath("syncer"), "init", "--catalog", catalog, "--pool", "cpu",
		"--repository", synced, "--triton", addr2, "--timeout", "20s", "--retry", "2s")
	if err == nil {
		t.Errorf("syncer init exited 0 with two bad models")
	}
	for name, why := range bad {
		if !strings.Contains(sout+serr, name) || !strings.Contains(sout+serr, why) {
			t.Errorf("syncer init does not say that %s failed (%s):\n%s%s", name, why, sout, serr)
		}
	}
	// Both are refusals (not a servable model): retrying cannot help, and
	// with --allow-refused init says so and exits 0.
	if _, serr, err := peers.Run(t, 3*time.Minute, env.BaseEnv(), env.BinPath("syncer"), "init", "--catalog", catalog, "--pool", "cpu",
		"--repository", synced, "--triton", addr2, "--timeout", "1m", "--retry", "2s", "--allow-refused"); err != nil {
		t.Errorf("syncer init --allow-refused: %v\n%s", err, serr)
	}
	c2 := dial(t, addr2)
	for _, m := range manifest.Models {
		if !m.Servable {
			continue
		}
		if r, err := c2.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: m.Name}); err != nil || !r.Ready {
			t.Errorf("after syncer init, %s is not ready (%v): one bad model blocked it", m.Name, err)
		}
	}
}
