//go:build interop

package interop_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tritongate/tritongate/interop/peers"
	"github.com/tritongate/tritongate/proto/inference"
)

// NVIDIA's Python gRPC example clients (triton-inference-server/client,
// src/python/examples, tritonclient 2.73) as scenarios of
// interop/py/nvidia_examples.py, against four targets: tritonlite, the
// gateway in front of tritonlite, the real tritonserver 2.51, and the
// gateway in front of it. Every scenario must pass on every target, except
// where the gateway refuses a scenario by design (nvGatewayRefusals) or the
// real peer has a defect fixed in a later release (nvPeerDefects): there
// that refusal or failure itself is asserted.

// nvModels are the examples' models: the interop/triton model each is
// served by on real Triton (Python backend), and the builtin backend
// tritonlite serves it with from the same config.
var nvModels = []struct {
	name, triton, lite string
	config             string // "" : interop/triton/<triton>/config.pbtxt
}{
	{name: "simple", triton: "simple", lite: "add_sub"},
	{name: "simple_int8", triton: "simple_int8", lite: "add_sub"},
	{name: "simple_string", triton: "simple_string", lite: "add_sub"},
	// The examples' BYTES identity (Triton's qa simple_identity).
	{name: "simple_identity", triton: "identity", lite: "identity", config: `name: "simple_identity"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
`},
	// tritonlite serves it with its builtin sequence backend (the sequence
	// batcher's controls, NVIDIA's simple_sequence semantics).
	{name: "simple_sequence", triton: "simple_sequence", lite: "sequence"},
}

// nvRefusal is how the gateway answers a scenario it does not serve by
// design: the code, what the message must contain, and the scenario's step
// that gets it.
type nvRefusal struct {
	code, says, step, reason string
}

var nvGatewayRefusals = map[string]nvRefusal{
	// A client's shared-memory region is on its own host, not on the Triton
	// pods behind the gateway: status and unregister answer as Triton does
	// with no region registered, register is refused.
	"simple_grpc_shm_client": {"UNIMPLEMENTED", "the gateway does not support system shared memory", "register_system_shared_memory[output_data]",
		"docs/gateway.md, Errors and What it serves: shared memory is not supported through the gateway"},
	"simple_grpc_model_control": {"UNIMPLEMENTED", "the gateway does not load models: the syncer of each pool does", "load_model[simple]",
		"docs/gateway.md, Errors: RepositoryModelLoad/Unload answer UNIMPLEMENTED, models are loaded by each pool's syncer"},
	"simple_grpc_model_control.name_max": {"UNIMPLEMENTED", "the gateway does not load models: the syncer of each pool does",
		"load_model[simple,file name over NAME_MAX]",
		"docs/gateway.md, Errors: RepositoryModelLoad/Unload answer UNIMPLEMENTED, models are loaded by each pool's syncer"},
}

// nvPeerDefects are scenarios a real peer fails by a defect of its own,
// fixed in a later release than the one here: target → scenario → the
// failure asserted (so that a peer upgrade shows up), and logSays, what
// the peer's log must hold.
var nvPeerDefects = map[string]map[string]struct {
	nvRefusal
	logSays string
}{
	"triton": {
		"simple_grpc_model_control.name_max": {nvRefusal{"UNAVAILABLE", "", "load_model[simple,file name over NAME_MAX]",
			"tritonserver 2.51 aborts: std::filesystem::filesystem_error (File name too long) escapes from " +
				"TRITONSERVER_ServerLoadModelWithParameters; the example step was added with the fix (client#887, TRI-958)"},
			"File name too long"},
	},
}

// nvResult is one line of nvidia_examples.py.
type nvResult struct {
	Scenario string `json:"scenario"`
	OK       bool   `json:"ok"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	Step     string `json:"step"`
	Want     string `json:"want"`
}

func (r nvResult) String() string {
	if r.OK {
		return "ok"
	}
	s := fmt.Sprintf("code=%q message=%q at step %q", r.Code, r.Message, r.Step)
	if r.Want != "" {
		s += fmt.Sprintf(" (the example wants %s)", r.Want)
	}
	return s
}

// nvRepository writes the examples' repository for one kind of server
// ("triton" or "lite") and returns it.
func nvRepository(t *testing.T, env *peers.Env, kind string) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "models")
	for _, m := range nvModels {
		cfg := m.config
		if cfg == "" {
			b, err := os.ReadFile(filepath.Join(env.Root, "interop", "triton", m.triton, "config.pbtxt"))
			if err != nil {
				t.Fatal(err)
			}
			cfg = strings.Replace(string(b), `name: "`+m.triton+`"`, `name: "`+m.name+`"`, 1)
		}
		dir := filepath.Join(repo, m.name)
		if kind == "triton" {
			env.TritonModel(t, repo, m.triton, m.name)
		} else {
			cfg = strings.Replace(cfg, `backend: "python"`, `backend: "`+m.lite+`"`, 1)
			if err := os.MkdirAll(filepath.Join(dir, "1"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "config.pbtxt"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

// nvStartLite runs bin/tritonlite on repo in explicit model control with
// every model loaded. A model that fails to load (a backend not there yet)
// does not stop it (--exit-on-error=false) nor make it unready
// (--strict-readiness=false): the scenarios that need the model fail, the
// others run.
func nvStartLite(t *testing.T, env *peers.Env, name, repo string) (string, *peers.Proc) {
	t.Helper()
	port, metrics := peers.FreePort(t), peers.FreePort(t)
	p := env.Start(t, name, nil, env.Root, env.BinPath("tritonlite"), "--model-repository", repo,
		"--model-control-mode", "explicit", "--load-model", "*", "--exit-on-error=false", "--strict-readiness=false",
		"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(port),
		"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(metrics))
	addr := peers.Addr(port)
	peers.WaitTCP(t, p, addr, 30*time.Second)
	waitFor(t, p, addr, func(c inference.GRPCInferenceServiceClient) bool {
		r, err := c.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: "simple"})
		return err == nil && r.Ready
	})
	return addr, p
}

// nvReadiness is the backend's RepositoryIndex for the example models: those
// with a READY version, and the state and reason of the others.
func nvReadiness(t *testing.T, backend string) (ready []string, notReady map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := dial(t, backend).RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if err != nil {
		t.Fatalf("RepositoryIndex of %s: %v", backend, err)
	}
	why := map[string]string{}
	for _, m := range idx.GetModels() {
		if m.GetState() == "READY" {
			if !slices.Contains(ready, m.GetName()) {
				ready = append(ready, m.GetName())
			}
		} else if why[m.GetName()] == "" {
			why[m.GetName()] = fmt.Sprintf("%s: %s", m.GetState(), m.GetReason())
		}
	}
	notReady = map[string]string{}
	for _, m := range nvModels {
		if !slices.Contains(ready, m.name) {
			notReady[m.name] = cmp.Or(why[m.name], "not in the repository index")
		}
	}
	sort.Strings(ready)
	return ready, notReady
}

// nvStartGateway runs bin/gateway with one pool (backend) routing every
// example model, health checks every 200 ms, and waits until it has every
// model the backend has ready.
func nvStartGateway(t *testing.T, env *peers.Env, backend string) string {
	t.Helper()
	var names []string
	for _, m := range nvModels {
		names = append(names, m.name)
	}
	ready, _ := nvReadiness(t, backend)
	return runGateway(t, env, backend, "200ms", names, ready)
}

// nvRun runs every scenario against addr and checks each as a subtest.
func nvRun(t *testing.T, env *peers.Env, target, addr string, backend *peers.Proc, backendAddr string, gateway bool) {
	t.Helper()
	_, notReady := nvReadiness(t, backendAddr)
	for _, m := range slices.Sorted(maps.Keys(notReady)) {
		t.Logf("backend %s: %s is not ready (%s): the scenarios using it will fail", backendAddr, m, notReady[m])
	}
	start := time.Now()
	lines := env.Script(t, nil, "nvidia_examples.py", "--url", addr, "--index-models", strconv.Itoa(len(nvModels)))
	t.Logf("%d scenarios in %s", len(lines), time.Since(start).Round(time.Millisecond))
	names := env.Script(t, nil, "nvidia_examples.py", "--list")
	results := map[string]nvResult{}
	for _, l := range lines {
		var r nvResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("nvidia_examples.py printed %q: %v", l, err)
		}
		results[r.Scenario] = r
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			r, ok := results[name]
			if !ok {
				t.Fatalf("no result for %s", name)
			}
			if ref, refused := nvGatewayRefusals[name]; refused && gateway {
				if r.OK || r.Code != ref.code || !strings.Contains(r.Message, ref.says) || r.Step != ref.step {
					t.Errorf("through the gateway: %s; want its refusal %s saying %q at step %q (%s)", r, ref.code, ref.says, ref.step, ref.reason)
				}
				return
			}
			if d, known := nvPeerDefects[target][name]; known {
				if r.OK || r.Code != d.code || !strings.Contains(r.Message, d.says) || r.Step != d.step {
					t.Errorf("%s; want the peer's known failure %s at step %q (%s): remove it from nvPeerDefects if the peer was upgraded",
						r, d.code, d.step, d.reason)
				} else if err := backend.Wait(10 * time.Second); err == nil || !strings.Contains(backend.Output(), d.logSays) {
					t.Errorf("%s: the backend did not end with %q in its log (%v): a failure other than the known one (%s)", r, d.logSays, err, d.reason)
				} else {
					t.Logf("known defect of the peer: %s (%s)", r, d.reason)
				}
				return
			}
			if !r.OK {
				t.Errorf("FAIL %s", r)
			}
		})
	}
}

// TestNVIDIAExamples runs NVIDIA's gRPC example scenarios against tritonlite,
// the gateway in front of tritonlite, the real tritonserver and the gateway
// in front of it. Each target has its own backend (the model-control
// scenarios change it, and tritonserver 2.51 does not survive the last
// one); one backend serves all of a target's scenarios.
func TestNVIDIAExamples(t *testing.T) {
	env := peers.Find(t)
	liteRepo, tritonRepo := nvRepository(t, env, "lite"), nvRepository(t, env, "triton")
	var loads []string
	for _, m := range nvModels {
		loads = append(loads, m.name)
	}
	lite := func(t *testing.T) (string, *peers.Proc) { return nvStartLite(t, env, "tritonlite", liteRepo) }
	triton := func(t *testing.T) (string, *peers.Proc) {
		start := time.Now()
		// The Python backend's shared-memory regions get a prefix of their
		// own, so that those an aborted server leaves in /dev/shm (see
		// nvPeerDefects) are removed.
		prefix := fmt.Sprintf("tritongate_nvex_%d_%d_", os.Getpid(), time.Now().UnixNano())
		t.Cleanup(func() {
			left, _ := filepath.Glob(filepath.Join("/dev/shm", prefix+"*"))
			for _, f := range left {
				os.Remove(f)
			}
		})
		tr := env.StartTriton(t, peers.TritonOptions{Repository: tritonRepo, LoadModels: loads,
			Extra: []string{"--backend-config=python,shm-region-prefix-name=" + prefix}})
		t.Logf("tritonserver %s at %s, up in %s", tr.Version(t), tr.GRPC, time.Since(start).Round(time.Millisecond))
		return tr.GRPC, tr.Proc
	}
	for _, tg := range []struct {
		name    string
		backend func(t *testing.T) (string, *peers.Proc)
		gateway bool
	}{
		{"tritonlite", lite, false},
		{"gateway-tritonlite", lite, true},
		{"triton", triton, false},
		{"gateway-triton", triton, true},
	} {
		t.Run(tg.name, func(t *testing.T) {
			backendAddr, backend := tg.backend(t)
			addr := backendAddr
			if tg.gateway {
				addr = nvStartGateway(t, env, backendAddr)
			}
			nvRun(t, env, tg.name, addr, backend, backendAddr, tg.gateway)
		})
	}
}
