package tritonlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// Regression tests for what NVIDIA's example clients
// (triton-inference-server/client, src/python/examples) expect of a Triton
// server, found by running them against tritonlite
// (interop/nvidia_test.go).

// TestServerMetadataIsTritons: ServerMetadata names the server "triton", as
// Triton does (simple_grpc_health_metadata refuses any other name), with
// tritonlite's own version.
func TestServerMetadataIsTritons(t *testing.T) {
	for _, tc := range []struct {
		name, version, wantVersion string
	}{
		{"default version", "", "0.1.0"},
		{"version given", "2.51.0-lite", "2.51.0-lite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, t.TempDir(), tritonlite.ModeNone, func(o *tritonlite.Options) { o.Version = tc.version })
			md, err := h.client.ServerMetadata(context.Background(), &inference.ServerMetadataRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if md.Name != "triton" || md.Version != tc.wantVersion || !slices.Contains(md.Extensions, "model_repository") {
				t.Errorf("ServerMetadata = %v; want name \"triton\", version %q", md, tc.wantVersion)
			}
		})
	}
}

const addSubString = `name: "simple_string"
backend: "add_sub"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_STRING dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_STRING dims: [ 4 ] } ]
`

// TestAddSubStrings: add_sub on BYTES is Triton's simple_string example
// model (interop/triton/simple/1/model.py): decimal numbers as strings in,
// their int32 sums and differences as decimal strings out; an element that
// is not an int32 number is INVALID_ARGUMENT naming the input and element.
func TestAddSubStrings(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "simple_string", addSubString)
	h := start(t, repo, tritonlite.ModeNone)
	for _, tc := range []struct {
		name      string
		shape     []int64
		in0, in1  []string
		sum, diff []string
		code      codes.Code
		msg       string
	}{
		{name: "the example's numbers", shape: []int64{1, 4}, in0: []string{"0", "1", "2", "3"}, in1: []string{"1", "1", "1", "1"},
			sum: []string{"1", "2", "3", "4"}, diff: []string{"-1", "0", "1", "2"}},
		{name: "1 and 2", shape: []int64{1, 4}, in0: []string{"1", "1", "1", "1"}, in1: []string{"2", "2", "2", "2"},
			sum: []string{"3", "3", "3", "3"}, diff: []string{"-1", "-1", "-1", "-1"}},
		{name: "signs and white space", shape: []int64{1, 4}, in0: []string{"-7", "+5", " 12 ", "0"}, in1: []string{"3", "-5", "\t4\n", "-0"},
			sum: []string{"-4", "0", "16", "0"}, diff: []string{"-10", "10", "8", "0"}},
		{name: "int32 wraps as in numpy", shape: []int64{1, 4}, in0: []string{"2147483647", "-2147483648", "0", "1"}, in1: []string{"1", "1", "0", "0"},
			sum: []string{"-2147483648", "-2147483647", "0", "1"}, diff: []string{"2147483646", "2147483647", "0", "1"}},
		{name: "a batch of two", shape: []int64{2, 4}, in0: []string{"1", "2", "3", "4", "10", "20", "30", "40"}, in1: []string{"1", "1", "1", "1", "5", "5", "5", "5"},
			sum: []string{"2", "3", "4", "5", "15", "25", "35", "45"}, diff: []string{"0", "1", "2", "3", "5", "15", "25", "35"}},
		{name: "not a number", shape: []int64{1, 4}, in0: []string{"1", "2", "3", "4"}, in1: []string{"1", "1", "abc", "1"},
			code: codes.InvalidArgument, msg: `add_sub model 'simple_string': element 2 of input 'INPUT1' ("abc") is not a base-10 number`},
		{name: "empty", shape: []int64{1, 4}, in0: []string{"", "2", "3", "4"}, in1: []string{"1", "1", "1", "1"},
			code: codes.InvalidArgument, msg: `add_sub model 'simple_string': element 0 of input 'INPUT0' ("") is not a base-10 number`},
		{name: "not decimal", shape: []int64{1, 4}, in0: []string{"1", "0x10", "3", "4"}, in1: []string{"1", "1", "1", "1"},
			code: codes.InvalidArgument, msg: `add_sub model 'simple_string': element 1 of input 'INPUT0' ("0x10") is not a base-10 number`},
		{name: "beyond int32", shape: []int64{1, 4}, in0: []string{"1", "2", "3", "2147483648"}, in1: []string{"1", "1", "1", "1"},
			code: codes.InvalidArgument, msg: `add_sub model 'simple_string': element 3 of input 'INPUT0' ("2147483648") is out of the range of an int32`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &inference.ModelInferRequest{ModelName: "simple_string"}
			tensor.SetRequestInputs(req, []tensor.Tensor{tensor.OfStrings("INPUT0", tc.shape, tc.in0), tensor.OfStrings("INPUT1", tc.shape, tc.in1)})
			resp, err := h.client.ModelInfer(context.Background(), req)
			if tc.msg != "" {
				wantExact(t, err, tc.code, tc.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			outs, err := tensor.ResponseOutputs(resp)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []tensor.Tensor{tensor.OfStrings("OUTPUT0", tc.shape, tc.sum), tensor.OfStrings("OUTPUT1", tc.shape, tc.diff)} {
				if err := tensor.Compare(want, outs[i], 0); err != nil {
					t.Errorf("%s: %v", want.Name, err)
				}
			}
		})
	}
}

// tensorsOf summarizes a config's tensors: "INPUT0:TYPE_INT32[16] …".
func tensorsOf(cfg *inference.ModelConfig) string {
	var parts []string
	for _, in := range cfg.GetInput() {
		parts = append(parts, fmt.Sprintf("%s:%s%v", in.GetName(), in.GetDataType(), in.GetDims()))
	}
	parts = append(parts, "->")
	for _, out := range cfg.GetOutput() {
		parts = append(parts, fmt.Sprintf("%s:%s%v", out.GetName(), out.GetDataType(), out.GetDims()))
	}
	return strings.Join(parts, " ")
}

// TestConfigOverrideOnBuiltin: simple_grpc_model_control loads "simple" with
// an override config that names no backend and no tensors
// ({"max_batch_size":"16"}). Real Triton takes the backend from the model's
// files (model.py) and the Python model auto-completes the tensors; a
// builtin model has no file, so the backend of its config.pbtxt is kept, and
// add_sub auto-completes INPUT0/INPUT1/OUTPUT0/OUTPUT1 (TYPE_INT32, [16])
// for a config that lists none, as NVIDIA's add_sub example models do.
func TestConfigOverrideOnBuiltin(t *testing.T) {
	const int32x16 = "INPUT0:TYPE_INT32[16] INPUT1:TYPE_INT32[16] -> OUTPUT0:TYPE_INT32[16] OUTPUT1:TYPE_INT32[16]"
	for _, tc := range []struct {
		name       string
		onDisk     string // config.pbtxt
		file       string // a file put into version 1, "" for none
		override   string // the load's config JSON, "" for none
		noAutofill bool
		// want: the loaded config's backend, max_batch_size and tensors, or
		// the load's error.
		backend string
		mbs     int32
		tensors string
		code    codes.Code
		msg     string
	}{
		{name: "the example's override", onDisk: addSubInt32, override: `{"max_batch_size":"16"}`,
			backend: "add_sub", mbs: 16, tensors: int32x16},
		{name: "empty override", onDisk: addSubInt32, override: `{}`, backend: "add_sub", mbs: 0, tensors: int32x16},
		{name: "override naming its backend", onDisk: addSubInt32, override: `{"backend":"identity","max_batch_size":2,
			"input":[{"name":"IN","data_type":"TYPE_FP32","dims":["3"]}],"output":[{"name":"OUT","data_type":"TYPE_FP32","dims":["3"]}]}`,
			backend: "identity", mbs: 2, tensors: "IN:TYPE_FP32[3] -> OUT:TYPE_FP32[3]"},
		{name: "override tensors kept", onDisk: addSubInt32, override: `{"input":[{"name":"A","data_type":"TYPE_INT8","dims":["2"]},
			{"name":"B","data_type":"TYPE_INT8","dims":["2"]}]}`,
			backend: "add_sub", mbs: 0, tensors: "A:TYPE_INT8[2] B:TYPE_INT8[2] -> OUTPUT0:TYPE_INT8[2] OUTPUT1:TYPE_INT8[2]"},
		{name: "a model file names the backend", onDisk: addSubInt32, file: "model.py", override: `{"max_batch_size":"16"}`,
			code: codes.InvalidArgument, msg: "unable to find backend library for backend 'python'"},
		{name: "config.pbtxt without tensors", onDisk: `name: "simple" backend: "add_sub" max_batch_size: 8`,
			backend: "add_sub", mbs: 8, tensors: int32x16},
		{name: "string inputs, no outputs", onDisk: `name: "simple" backend: "add_sub"
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_STRING dims: [ 4 ] } ]`,
			backend: "add_sub", tensors: "INPUT0:TYPE_STRING[4] INPUT1:TYPE_STRING[4] -> OUTPUT0:TYPE_STRING[4] OUTPUT1:TYPE_STRING[4]"},
		{name: "auto-complete disabled", onDisk: addSubInt32, override: `{"max_batch_size":"16"}`, noAutofill: true,
			code: codes.InvalidArgument, msg: "load failed for model 'simple': version 1 is at UNAVAILABLE state: Invalid argument: add_sub model 'simple' needs 2 inputs and 1 or 2 outputs, has 0 and 0;\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			dir := litetest.WriteModel(t, repo, "simple", tc.onDisk)
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, "1", tc.file), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) {
				o.Config.NoAutofill, o.Config.DefaultMaxBatchSize = tc.noAutofill, 4
			})
			ctx := context.Background()
			req := &inference.RepositoryModelLoadRequest{ModelName: "simple"}
			if tc.override != "" {
				req.Parameters = configParam(tc.override)
			}
			_, err := h.client.RepositoryModelLoad(ctx, req)
			if tc.msg != "" {
				wantCode(t, err, tc.code, tc.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mc, err := h.client.ModelConfig(ctx, &inference.ModelConfigRequest{Name: "simple"})
			if err != nil {
				t.Fatal(err)
			}
			cfg := mc.GetConfig()
			if cfg.GetBackend() != tc.backend || cfg.GetMaxBatchSize() != tc.mbs || tensorsOf(cfg) != tc.tensors {
				t.Errorf("config: backend %q, max_batch_size %d, tensors %q; want %q, %d, %q",
					cfg.GetBackend(), cfg.GetMaxBatchSize(), tensorsOf(cfg), tc.backend, tc.mbs, tc.tensors)
			}
			if tc.tensors != int32x16 {
				return
			}
			shape := []int64{16}
			if tc.mbs > 0 {
				shape = []int64{1, 16}
			}
			a, b := make([]int32, 16), make([]int32, 16)
			for i := range a {
				a[i], b[i] = int32(i), 1
			}
			infer := &inference.ModelInferRequest{ModelName: "simple"}
			tensor.SetRequestInputs(infer, []tensor.Tensor{tensor.Of("INPUT0", shape, a), tensor.Of("INPUT1", shape, b)})
			resp, err := h.client.ModelInfer(ctx, infer)
			if err != nil {
				t.Fatal(err)
			}
			outs, _ := tensor.ResponseOutputs(resp)
			if sum, _ := tensor.Values[int32](outs[0]); len(sum) != 16 || sum[15] != 16 {
				t.Errorf("OUTPUT0 = %v", sum)
			}
		})
	}
}

// TestOverrideFileNames: simple_grpc_model_control loads "simple" with a
// file parameter whose name is over NAME_MAX (255 bytes). Triton's later
// releases answer INTERNAL "failed to poll from model repository" (2.51
// aborts); so does tritonlite, leaving no temporary directory behind, and the
// version serving keeps serving. Parameters Triton refuses by their path keep
// Triton's message.
func TestOverrideFileNames(t *testing.T) {
	long := strings.Repeat("A", 256)
	ident := `{"backend":"identity","max_batch_size":4,"input":[{"name":"INPUT0","data_type":"TYPE_FP32","dims":["4"]}],` +
		`"output":[{"name":"OUTPUT0","data_type":"TYPE_FP32","dims":["4"]}]}`
	for _, tc := range []struct {
		name, config string
		files        []string
		code         codes.Code // OK: the load succeeds
		msg          string
		dirsLeft     int // override directories in TMPDIR after the load
	}{
		{name: "the example's file name", config: `{}`, files: []string{long},
			code: codes.Internal, msg: "failed to load 'simple', failed to poll from model repository"},
		{name: "a directory name over NAME_MAX", config: ident, files: []string{"1/notes.txt", long + "/model.onnx"},
			code: codes.Internal, msg: "failed to load 'simple', failed to poll from model repository"},
		{name: "a version file name over NAME_MAX", config: ident, files: []string{"1/" + long},
			code: codes.Internal, msg: "failed to load 'simple', failed to poll from model repository"},
		{name: "a path out of the model directory", config: ident, files: []string{"../" + long},
			code: codes.InvalidArgument, msg: "must stay within model directory."},
		{name: "a name of 255 bytes", config: ident, files: []string{"1/" + long[:255]}, dirsLeft: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			repo := t.TempDir()
			writeModel(t, repo, "simple", addSubInt32)
			h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.StartupModels = []string{"simple"} })
			params := configParam(tc.config)
			for _, f := range tc.files {
				params["file:"+f] = &inference.ModelRepositoryParameter{ParameterChoice: &inference.ModelRepositoryParameter_BytesParam{BytesParam: []byte("a")}}
			}
			ctx := context.Background()
			_, err := h.client.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "simple", Parameters: params})
			if tc.code == codes.OK {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				wantCode(t, err, tc.code, tc.msg)
				// The version that was serving still serves.
				if r, err := h.client.ModelReady(ctx, &inference.ModelReadyRequest{Name: "simple"}); err != nil || !r.Ready {
					t.Errorf("simple not ready after a refused load: %v %v", r, err)
				}
			}
			if entries, _ := os.ReadDir(tmp); len(entries) != tc.dirsLeft {
				t.Errorf("%d entries left in TMPDIR, want %d", len(entries), tc.dirsLeft)
			}
			if r, err := h.client.ServerLive(ctx, &inference.ServerLiveRequest{}); err != nil || !r.Live {
				t.Errorf("server not live: %v %v", r, err)
			}
		})
	}
}

// TestSequenceStreamOrder: on one ModelStreamInfer stream, the responses of
// a sequence come back in the order its requests ran, as Triton sends them:
// simple_grpc_sequence_stream_infer_client sorts the responses to their
// sequence by request id and checks each sequence's values in arrival
// order. The example's three sequences are sent many times over, one after
// the other or interleaved, to a model with one slot or a slot each.
func TestSequenceStreamOrder(t *testing.T) {
	const rounds = 20
	for _, tc := range []struct {
		name        string
		instances   string
		interleaved bool
	}{
		{"one slot", "count: 1", false},
		{"a slot per sequence, one after the other", "count: 3", false},
		{"a slot per sequence, interleaved", "count: 3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			writeModel(t, repo, "simple_sequence", simpleSequence("simple_sequence", "count: 1", tc.instances))
			h := start(t, repo, tritonlite.ModeNone)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stream, err := h.client.ModelStreamInfer(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seqs := nvidiaSequences()
			want := map[string]seqStep{}
			var order []*inference.ModelInferRequest
			for r := range rounds {
				var reqs [][]*inference.ModelInferRequest
				for i, steps := range seqs {
					var rs []*inference.ModelInferRequest
					for j, s := range steps {
						req := seqRequest(s)
						req.Id = fmt.Sprintf("%d.%d_%d", r, i, j)
						want[req.Id] = s
						rs = append(rs, req)
					}
					reqs = append(reqs, rs)
				}
				if tc.interleaved {
					for j := range reqs[0] {
						for i := range reqs {
							order = append(order, reqs[i][j])
						}
					}
				} else {
					order = append(order, slices.Concat(reqs...)...)
				}
			}
			for _, req := range order {
				if err := stream.Send(req); err != nil {
					t.Fatal(err)
				}
			}
			stream.CloseSend()
			next := map[string]int{} // sequence "round.i" → the step it must answer next
			for range order {
				r, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				id := r.GetInferResponse().GetId()
				seq, step, _ := strings.Cut(id, "_")
				if n := itoa(next[seq]); step != n {
					t.Fatalf("sequence %s: response to step %s arrived when step %s was due", seq, step, n)
				}
				next[seq]++
				var respErr error
				if r.ErrorMessage != "" {
					respErr = errors.New(r.ErrorMessage)
				}
				checkSeqResponse(t, id, want[id], r.InferResponse, respErr)
			}
		})
	}
}
