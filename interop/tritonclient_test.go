//go:build interop

package interop_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tritongate/tritongate/interop/peers"
	"github.com/tritongate/tritongate/proto/inference"
)

// The repository both tritonlite instances serve: builtin models in the
// forms the script knows (--simple, --string, --typed, --lifecycle) and one
// ONNX node test model built with modelctl (--onnx).
var builtinModels = map[string]string{
	// Triton's "simple" example: INT32 add/sub with two versions.
	"simple": `name: "simple"
backend: "add_sub"
max_batch_size: 8
version_policy { all { } }
input [
  { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
`,
	"simple_string": `name: "simple_string"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
`,
	"lifecycle": `name: "lifecycle"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
`,
}

// typedDatatypes are the inputs of the "typed" identity model: one per
// datatype that has a typed contents field.
var typedDatatypes = []string{"BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP32", "FP64", "BYTES"}

func typedConfig() string {
	var in, out []string
	for _, dt := range typedDatatypes {
		cfg := "TYPE_" + dt
		if dt == "BYTES" {
			cfg = "TYPE_STRING"
		}
		in = append(in, fmt.Sprintf(`  { name: "INPUT_%s" data_type: %s dims: [ 3 ] }`, dt, cfg))
		out = append(out, fmt.Sprintf(`  { name: "OUTPUT_%s" data_type: %s dims: [ 3 ] }`, dt, cfg))
	}
	return "name: \"typed\"\nbackend: \"identity\"\nmax_batch_size: 0\ninput [\n" + strings.Join(in, ",\n") +
		"\n]\noutput [\n" + strings.Join(out, ",\n") + "\n]\n"
}

// routedModels are the models the gateway routes (all of the repository).
var routedModels = []string{"simple", "simple_string", "typed", "lifecycle", "add"}

// buildRepository writes the model repository: the ONNX model through
// modelctl repo build, the builtin ones as config and version directories.
func buildRepository(t *testing.T, env *peers.Env) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "models")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := peers.Run(t, time.Minute, env.BaseEnv(), env.BinPath("modelctl"), "repo", "build",
		"add="+filepath.Join(env.Root, "testdata", "onnx", "node", "test_add"), "--out", repo)
	if err != nil {
		t.Fatalf("modelctl repo build: %v\n%s", err, stderr)
	}
	models := map[string]string{"typed": typedConfig()}
	for k, v := range builtinModels {
		models[k] = v
	}
	for name, cfg := range models {
		versions := []string{"1"}
		if name == "simple" {
			versions = []string{"1", "2"}
		}
		for _, v := range versions {
			if err := os.MkdirAll(filepath.Join(repo, name, v), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(repo, name, "config.pbtxt"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

// startLite runs bin/tritonlite on repo in explicit model control with
// everything loaded, and waits until it is ready. It runs in the
// repository's root, where it finds the ONNX Runtime library of make ort.
func startLite(t *testing.T, env *peers.Env, name, repo string) string {
	t.Helper()
	port, metrics := peers.FreePort(t), peers.FreePort(t)
	p := env.Start(t, name, nil, env.Root, env.BinPath("tritonlite"), "--model-repository", repo,
		"--model-control-mode", "explicit", "--load-model", "*",
		"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(port),
		"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(metrics))
	addr := peers.Addr(port)
	peers.WaitTCP(t, p, addr, 30*time.Second)
	waitFor(t, p, addr, func(c inference.GRPCInferenceServiceClient) bool {
		r, err := c.ServerReady(context.Background(), &inference.ServerReadyRequest{})
		return err == nil && r.Ready
	})
	return addr
}

// startGateway runs bin/gateway with one pool (the backend) routing models,
// health checks every 200ms (the lifecycle calls wait a second after each
// load or unload for the gateway to see it), and waits until it sees every
// model ready.
func startGateway(t *testing.T, env *peers.Env, backend string, models []string) string {
	return runGateway(t, env, backend, "200ms", models, models)
}

// runGateway runs bin/gateway (its config checked with --check first) with
// one pool, the backend, with health checks every health ("": the
// gateway's default), routing models; it waits until the gateway sees every
// model of ready ready.
func runGateway(t *testing.T, env *peers.Env, backend, health string, models, ready []string) string {
	t.Helper()
	port, metrics := peers.FreePort(t), peers.FreePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nmetrics_listen: %s\n", peers.Addr(port), peers.Addr(metrics))
	fmt.Fprintf(&b, "pools:\n  - name: backend\n    endpoints: [%q]\n", backend)
	if health != "" {
		fmt.Fprintf(&b, "    health: {interval: %s}\n", health)
	}
	b.WriteString("routes:\n")
	for _, m := range models {
		fmt.Fprintf(&b, "  - {model: %s, pool: backend}\n", m)
	}
	cfg := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := peers.Run(t, 30*time.Second, env.BaseEnv(), env.BinPath("gateway"), "--config", cfg, "--check"); err != nil {
		t.Fatalf("gateway --check: %v\n%s%s\n%s", err, out, stderr, b.String())
	}
	p := env.Start(t, "gateway", nil, "", env.BinPath("gateway"), "--config", cfg)
	addr := peers.Addr(port)
	peers.WaitTCP(t, p, addr, 30*time.Second)
	for _, m := range ready {
		waitFor(t, p, addr, func(c inference.GRPCInferenceServiceClient) bool {
			r, err := c.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: m})
			return err == nil && r.Ready
		})
	}
	return addr
}

func dial(t *testing.T, addr string) inference.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return inference.NewGRPCInferenceServiceClient(conn)
}

// waitFor polls ok on a client of addr for up to 30 s.
func waitFor(t *testing.T, p *peers.Proc, addr string, ok func(inference.GRPCInferenceServiceClient) bool) {
	t.Helper()
	c := dial(t, addr)
	deadline := time.Now().Add(30 * time.Second)
	for !ok(c) {
		if done, err := p.Exited(); done {
			t.Fatalf("%s exited (%v):\n%s", p.Name, err, p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s: not ready after 30s:\n%s", p.Name, addr, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// callResult is one line of tritonclient_calls.py.
type callResult struct {
	Call    string          `json:"call"`
	OK      bool            `json:"ok"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Result  json.RawMessage `json:"result"`
}

func parseCalls(t *testing.T, lines []string) ([]string, map[string]callResult) {
	t.Helper()
	var order []string
	m := map[string]callResult{}
	for _, l := range lines {
		var r callResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("tritonclient_calls.py printed %q: %v", l, err)
		}
		if _, dup := m[r.Call]; dup {
			t.Fatalf("call %s printed twice", r.Call)
		}
		order = append(order, r.Call)
		m[r.Call] = r
	}
	return order, m
}

// exception is a call the gateway deliberately answers differently from a
// backend: its exact code through the gateway, and why.
type exception struct {
	code string
	// says is what the gateway's message must contain (docs/gateway.md), ""
	// for any.
	says string
	// direct is the code the backend answers when it must be one (""
	// when the backend serves the call).
	direct string
	reason string
}

// gatewayExceptions are the only calls whose result differs through the
// gateway. The key is the call's name without its [arguments].
var gatewayExceptions = map[string]exception{
	"get_server_metadata.json":  {"OK", "", "", "the gateway answers ServerMetadata itself: name triton, its own version and the extensions it serves"},
	"get_server_metadata.proto": {"OK", "", "", "the gateway answers ServerMetadata itself: name triton, its own version and the extensions it serves"},
	"get_inference_statistics.json": {"INVALID_ARGUMENT", "", "", "statistics of every model (no model name) are refused: each backend of each pool has its own, " +
		"and the gateway would report one backend's as the whole pool's (applies to the call without a model only)"},
	"load_model.config_override": {"UNIMPLEMENTED", "the syncer of each pool", "", "RepositoryModelLoad: the gateway does not load models, each pool's syncer does (server.go modelControl)"},
	"load_model.bad_config":      {"UNIMPLEMENTED", "the syncer of each pool", "", "RepositoryModelLoad: the gateway does not load models, each pool's syncer does (server.go modelControl)"},
	"load_model":                 {"UNIMPLEMENTED", "the syncer of each pool", "", "RepositoryModelLoad: the gateway does not load models, each pool's syncer does (server.go modelControl)"},
	"unload_model":               {"UNIMPLEMENTED", "the syncer of each pool", "", "RepositoryModelUnload: the gateway does not unload models, each pool's syncer does (server.go modelControlUnload)"},
	// Per-server settings: a gateway in front of pools has no one server's
	// log or trace settings to report. tritonlite does not implement them
	// either (both answer UNIMPLEMENTED; the messages are each server's own).
	"get_log_settings":      {"UNIMPLEMENTED", "", "UNIMPLEMENTED", "LogSettings is per server: not served by the gateway"},
	"update_log_settings":   {"UNIMPLEMENTED", "", "UNIMPLEMENTED", "LogSettings is per server: not served by the gateway"},
	"get_trace_settings":    {"UNIMPLEMENTED", "", "UNIMPLEMENTED", "TraceSetting is per server: not served by the gateway"},
	"update_trace_settings": {"UNIMPLEMENTED", "", "UNIMPLEMENTED", "TraceSetting is per server: not served by the gateway"},
	// Shared memory: the gateway's clients share no memory with the
	// backends. Status and unregister answer as Triton (and tritonlite) do
	// with no region registered, so they are compared like any call;
	// register is refused. Directly, tritonlite answers as Triton does for
	// a key no region exists for.
	"register_system_shared_memory": {"UNIMPLEMENTED", "the gateway does not support system shared memory", "INTERNAL",
		"shared memory needs the client on the backend's host: not served by the gateway (docs/gateway.md)"},
}

// exceptionFor returns the exception of a call, if any: by the call's name
// without arguments ("load_model[lifecycle]" → "load_model"), except the
// statistics one, which is only the call without a model ("…json[]").
func exceptionFor(call string) (exception, bool) {
	base, args, _ := strings.Cut(call, "[")
	if base == "get_inference_statistics.json" && args != "]" {
		return exception{}, false
	}
	e, ok := gatewayExceptions[base]
	return e, ok
}

var scriptArgs = []string{"--simple", "simple", "--simple-versions", "1,2", "--string", "simple_string",
	"--typed", "typed", "--typed-dtypes", strings.Join(typedDatatypes, ","), "--lifecycle", "lifecycle", "--onnx", "add"}

// TestTritonClient runs every call of Triton's Python client
// (tritonclient.grpc.InferenceServerClient, plus the generated stub for
// typed contents) against tritonlite directly and through the gateway, and
// requires the same result both ways except for the calls the gateway
// deliberately does not serve (gatewayExceptions). The gateway's backend is a
// second tritonlite on the same repository, so that statistics and the
// model lifecycle go the same way on both: the load and unload calls the
// gateway refuses are also sent straight to that backend (--control-url).
func TestTritonClient(t *testing.T) {
	env := peers.Find(t)
	repo := buildRepository(t, env)
	direct := startLite(t, env, "tritonlite-direct", repo)
	behind := startLite(t, env, "tritonlite-behind-gateway", repo)
	gw := startGateway(t, env, behind, routedModels)

	directOrder, d := parseCalls(t, env.Script(t, nil, "tritonclient_calls.py", append([]string{"--url", direct}, scriptArgs...)...))
	gwOrder, g := parseCalls(t, env.Script(t, nil, "tritonclient_calls.py",
		append([]string{"--url", gw, "--control-url", behind, "--settle", "1"}, scriptArgs...)...))

	checkDirect(t, d)

	// The same calls, in the same order (control.* are the gateway run's
	// extra straight-to-the-backend loads and unloads).
	var gwCalls []string
	for _, c := range gwOrder {
		if !strings.HasPrefix(c, "control.") {
			gwCalls = append(gwCalls, c)
		}
	}
	if !slices.Equal(directOrder, gwCalls) {
		t.Fatalf("the runs made different calls:\ndirect:  %v\ngateway: %v", directOrder, gwCalls)
	}
	for _, c := range directOrder {
		dr, gr := d[c], g[c]
		if e, ok := exceptionFor(c); ok {
			if gr.Code != e.code || !strings.Contains(gr.Message, e.says) {
				t.Errorf("%s through the gateway: code %s (%s), want %s saying %q: %s", c, gr.Code, gr.Message, e.code, e.says, e.reason)
			}
			if e.direct != "" && dr.Code != e.direct {
				t.Errorf("%s direct: code %s (%s), want %s", c, dr.Code, dr.Message, e.direct)
			}
			// What the gateway's refusal stands in for is done at the
			// backend directly, with the backend's answer.
			if cr, ok := g["control."+c]; ok && !sameResult(dr, cr) {
				t.Errorf("%s straight to the gateway's backend differs from direct:\n  direct:  %s\n  backend: %s", c, show(dr), show(cr))
			}
			continue
		}
		if !sameResult(dr, gr) {
			t.Errorf("%s differs through the gateway:\n  direct:  %s\n  gateway: %s", c, show(dr), show(gr))
		}
	}
	for _, c := range gwOrder {
		if strings.HasPrefix(c, "control.") {
			if _, ok := d[strings.TrimPrefix(c, "control.")]; !ok {
				t.Errorf("%s has no direct counterpart", c)
			}
		}
	}
	t.Logf("%d calls compared, %d exceptions", len(directOrder), len(gatewayExceptions))
}

func sameResult(a, b callResult) bool {
	return a.OK == b.OK && a.Code == b.Code && a.Message == b.Message && jsonEqual(a.Result, b.Result)
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func show(r callResult) string {
	s := fmt.Sprintf("ok=%v code=%s message=%q result=%s", r.OK, r.Code, r.Message, r.Result)
	if len(s) > 1500 {
		s = s[:1500] + "…"
	}
	return s
}

// checkDirect pins down a few direct answers, so that agreement between the
// two runs means something.
func checkDirect(t *testing.T, d map[string]callResult) {
	t.Helper()
	need := func(call string) callResult {
		t.Helper()
		r, ok := d[call]
		if !ok {
			t.Fatalf("no call %s", call)
		}
		return r
	}
	type tensorJSON struct {
		Name     string `json:"name"`
		Datatype string `json:"datatype"`
		Shape    []int  `json:"shape"`
		Data     []any  `json:"data"`
	}
	type inferJSON struct {
		ModelName    string       `json:"model_name"`
		ModelVersion string       `json:"model_version"`
		ID           string       `json:"id"`
		Outputs      []tensorJSON `json:"outputs"`
	}
	infer := func(call string) inferJSON {
		t.Helper()
		r := need(call)
		if !r.OK {
			t.Fatalf("%s failed: %s %s", call, r.Code, r.Message)
		}
		var out inferJSON
		if err := json.Unmarshal(r.Result, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	sum := fmt.Sprint([]any{3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0})
	for _, c := range []string{"infer.raw[simple]", "infer.typed[simple]", "async_infer[simple]", "stream[s-ok]"} {
		r := infer(c)
		if len(r.Outputs) != 2 || r.Outputs[0].Name != "OUTPUT0" || fmt.Sprint(r.Outputs[0].Data) != sum || r.ModelVersion != "2" {
			t.Errorf("%s: %+v, want OUTPUT0 = INPUT0 + INPUT1 from version 2", c, r)
		}
	}
	// Triton marks every stream response as its request's final one.
	var final struct {
		Parameters map[string]map[string]any `json:"parameters"`
	}
	if err := json.Unmarshal(need("stream[s-ok]").Result, &final); err != nil || final.Parameters["triton_final_response"]["bool_param"] != true {
		t.Errorf("stream[s-ok] parameters %v (%v), want triton_final_response true", final.Parameters, err)
	}
	if r := infer("infer.raw[simple,1]"); r.ModelVersion != "1" {
		t.Errorf("infer.raw[simple,1] answered by version %s", r.ModelVersion)
	}
	if r := infer("infer.requested_outputs[simple]"); len(r.Outputs) != 1 || r.Outputs[0].Name != "OUTPUT1" {
		t.Errorf("requested OUTPUT1 only, got %+v", r.Outputs)
	}
	for _, c := range []string{"infer.typed[typed]", "infer.raw[typed]"} {
		if r := infer(c); len(r.Outputs) != len(typedDatatypes) {
			t.Errorf("%s: %d outputs, want %d", c, len(r.Outputs), len(typedDatatypes))
		}
	}
	if r := infer("infer.bytes[simple_string]"); len(r.Outputs) != 1 || r.Outputs[0].Datatype != "BYTES" || len(r.Outputs[0].Data) != 4 {
		t.Errorf("BYTES identity: %+v", r.Outputs)
	}
	if r := need("stream.count"); !r.OK || string(r.Result) != "7" {
		t.Errorf("stream answered %s of 7 requests", r.Result)
	}
	want := map[string]string{
		"infer.error.unknown_model[no_such_model]": "NOT_FOUND",
		"infer.error.unknown_version[simple,9]":    "NOT_FOUND",
		"infer.error.bad_shape[simple]":            "INVALID_ARGUMENT",
		"infer.error.bad_datatype[simple]":         "INVALID_ARGUMENT",
		"infer.error.missing_input[simple]":        "INVALID_ARGUMENT",
		"load_model.config_override[lifecycle]":    "OK",
		"unload_model[lifecycle]":                  "OK",
		"is_model_ready[lifecycle].after_unload":   "OK",
		"infer[lifecycle].after_unload":            "NOT_FOUND",
		"load_model[lifecycle]":                    "OK",
	}
	for c, code := range want {
		if r := need(c); r.Code != code {
			t.Errorf("%s: %s %q, want %s", c, r.Code, r.Message, code)
		}
	}
	var cfg struct {
		Config struct {
			MaxBatchSize int `json:"max_batch_size"`
		} `json:"config"`
	}
	if err := json.Unmarshal(need("get_model_config.json[lifecycle].after_override").Result, &cfg); err != nil || cfg.Config.MaxBatchSize != 2 {
		t.Errorf("the config override did not take: %s (%v)", need("get_model_config.json[lifecycle].after_override").Result, err)
	}
}

// TestTritonClientGoStubs is a Go client made only of the generated stubs in
// proto/inference, doing what Triton's Go example client does: ServerLive,
// ServerReady, ModelMetadata of "simple", then one ModelInfer with INT32 raw
// contents (16 values each of INPUT0 and INPUT1, little-endian), reading
// OUTPUT0 (sum) and OUTPUT1 (difference) from raw_output_contents. Direct and
// through the gateway, with the same answers.
func TestTritonClientGoStubs(t *testing.T) {
	env := peers.Find(t)
	repo := buildRepository(t, env)
	direct := startLite(t, env, "tritonlite", repo)
	gw := startGateway(t, env, direct, routedModels)
	var metadata []*inference.ModelMetadataResponse
	for _, target := range []struct{ name, addr string }{{"direct", direct}, {"gateway", gw}} {
		t.Run(target.name, func(t *testing.T) {
			metadata = append(metadata, simpleClient(t, dial(t, target.addr)))
		})
	}
	if len(metadata) == 2 && fmt.Sprint(metadata[0]) != fmt.Sprint(metadata[1]) {
		t.Errorf("model metadata differs:\ndirect:  %v\ngateway: %v", metadata[0], metadata[1])
	}
}

func simpleClient(t *testing.T, c inference.GRPCInferenceServiceClient) *inference.ModelMetadataResponse {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	live, err := c.ServerLive(ctx, &inference.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Fatalf("ServerLive: %v %v", live, err)
	}
	ready, err := c.ServerReady(ctx, &inference.ServerReadyRequest{})
	if err != nil || !ready.GetReady() {
		t.Fatalf("ServerReady: %v %v", ready, err)
	}
	md, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "simple", Version: "1"})
	if err != nil {
		t.Fatalf("ModelMetadata: %v", err)
	}
	if md.GetName() != "simple" || !slices.Equal(md.GetVersions(), []string{"1"}) || len(md.GetInputs()) != 2 || len(md.GetOutputs()) != 2 {
		t.Fatalf("ModelMetadata: %v", md)
	}
	for _, in := range md.GetInputs() {
		if in.GetDatatype() != "INT32" || !slices.Equal(in.GetShape(), []int64{-1, 16}) {
			t.Fatalf("input %v, want INT32 [-1,16]", in)
		}
	}

	// Two inputs of 16 INT32 each, in raw_input_contents.
	a, b := make([]int32, 16), make([]int32, 16)
	for i := range a {
		a[i], b[i] = int32(i), 1
	}
	raw := func(v []int32) []byte {
		out := make([]byte, 0, 4*len(v))
		for _, x := range v {
			out = binary.LittleEndian.AppendUint32(out, uint32(x))
		}
		return out
	}
	req := &inference.ModelInferRequest{
		ModelName:    "simple",
		ModelVersion: "1",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 16}},
			{Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, 16}},
		},
		Outputs:          []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT0"}, {Name: "OUTPUT1"}},
		RawInputContents: [][]byte{raw(a), raw(b)},
	}
	resp, err := c.ModelInfer(ctx, req)
	if err != nil {
		t.Fatalf("ModelInfer: %v", err)
	}
	if resp.GetModelName() != "simple" || resp.GetModelVersion() != "1" {
		t.Errorf("answered by %s version %s", resp.GetModelName(), resp.GetModelVersion())
	}
	outs := resp.GetRawOutputContents()
	if len(outs) != 2 || len(resp.GetOutputs()) != 2 {
		t.Fatalf("%d raw outputs for %d outputs, want 2", len(outs), len(resp.GetOutputs()))
	}
	for i, o := range resp.GetOutputs() {
		if o.GetDatatype() != "INT32" || !slices.Equal(o.GetShape(), []int64{1, 16}) || len(outs[i]) != 64 {
			t.Fatalf("output %v with %d bytes, want INT32 [1,16]", o, len(outs[i]))
		}
	}
	for i := range a {
		sum := int32(binary.LittleEndian.Uint32(outs[0][4*i:]))
		diff := int32(binary.LittleEndian.Uint32(outs[1][4*i:]))
		if sum != a[i]+b[i] || diff != a[i]-b[i] {
			t.Errorf("element %d: %d + %d = %d, %d - %d = %d", i, a[i], b[i], sum, a[i], b[i], diff)
		}
	}
	return md
}
