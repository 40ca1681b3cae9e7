package pbtxt

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/onnxmodel/onnxtest"
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

var (
	fp32   = onnx.TensorProto_FLOAT
	i64    = onnx.TensorProto_INT64
	i32    = onnx.TensorProto_INT32
	str    = onnx.TensorProto_STRING
	fp16   = onnx.TensorProto_FLOAT16
	seqDir = "m"
)

// modelDir writes <tmp>/m/1/model.onnx (and config.pbtxt if given) and reads it back.
func modelDir(t *testing.T, m *onnx.ModelProto, config string) *ModelDir {
	t.Helper()
	dir := filepath.Join(t.TempDir(), seqDir)
	onnxtest.Write(t, filepath.Join(dir, "1", "model.onnx"), m)
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := ReadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustParse(t *testing.T, text string) *inference.ModelConfig {
	t.Helper()
	src, err := Parse("want", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return src.Config
}

// sameConfig compares configs with IO lists compared by name, since Triton's
// auto-complete order is unspecified.
func sameConfig(t *testing.T, got, want *inference.ModelConfig) {
	t.Helper()
	g := proto.Clone(got).(*inference.ModelConfig)
	w := proto.Clone(want).(*inference.ModelConfig)
	for _, c := range []*inference.ModelConfig{g, w} {
		slices.SortFunc(c.Input, func(a, b *inference.ModelInput) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(c.Output, func(a, b *inference.ModelOutput) int { return strings.Compare(a.Name, b.Name) })
	}
	if !proto.Equal(g, w) {
		t.Fatalf("got:\n%s\nwant:\n%s", Format(got), Format(want))
	}
}

var (
	modelA = onnxtest.Model(
		[]*onnx.ValueInfoProto{onnxtest.Tensor("x", fp32, "N", 3, 224, 224)},
		[]*onnx.ValueInfoProto{onnxtest.Tensor("y", fp32, "N", 1000)})
	modelB = onnxtest.Model(
		[]*onnx.ValueInfoProto{onnxtest.Tensor("a", i64, 2, "S"), onnxtest.Tensor("b", str)},
		[]*onnx.ValueInfoProto{onnxtest.Tensor("c", i64, 2, "S")})
	modelC = onnxtest.Model(
		[]*onnx.ValueInfoProto{onnxtest.Tensor("ids", i32, "N"), onnxtest.Tensor("p", fp16, "N", 5)},
		[]*onnx.ValueInfoProto{onnxtest.Tensor("o", fp16, "N", 5)})
)

const commonTail = `
platform: "onnxruntime_onnx" backend: "onnxruntime" default_model_filename: "model.onnx"
version_policy { latest { num_versions: 1 } }
optimization { input_pinned_memory { enable: true } output_pinned_memory { enable: true } }
`

// TestWorkedExamples reproduces §5 of docs/reference/triton-config-rules.md.
func TestWorkedExamples(t *testing.T) {
	cpu := DefaultServer()
	gpu1 := DefaultServer()
	gpu1.GPUs = 1
	tests := []struct {
		name   string
		model  *onnx.ModelProto
		config string
		srv    Server
		mbs    int
		want   string // expected config, or "" when wantErr is set
		err    string
	}{
		{"a", modelA, "", cpu, 4, `name: "m" max_batch_size: 4` + commonTail + `
			input [{ name: "x" data_type: TYPE_FP32 dims: [3, 224, 224] }]
			output [{ name: "y" data_type: TYPE_FP32 dims: [1000] }]
			dynamic_batching { preferred_batch_size: [4] }
			instance_group [{ name: "m" kind: KIND_CPU count: 2 }]`, ""},
		{"a on 1 GPU", modelA, "", gpu1, 4, `name: "m" max_batch_size: 4` + commonTail + `
			input [{ name: "x" data_type: TYPE_FP32 dims: [3, 224, 224] }]
			output [{ name: "y" data_type: TYPE_FP32 dims: [1000] }]
			dynamic_batching { preferred_batch_size: [4] }
			instance_group [{ name: "m" kind: KIND_GPU count: 1 gpus: [0] }]`, ""},
		{"b", modelB, "", cpu, 4, `name: "m"` + commonTail + `
			input [{ name: "a" data_type: TYPE_INT64 dims: [2, -1] }, { name: "b" data_type: TYPE_STRING dims: [1] }]
			output [{ name: "c" data_type: TYPE_INT64 dims: [2, -1] }]
			instance_group [{ name: "m" kind: KIND_CPU count: 2 }]`, ""},
		{"c", modelC, "max_batch_size: 8", cpu, 4, `name: "m" max_batch_size: 8` + commonTail + `
			input [{ name: "ids" data_type: TYPE_INT32 dims: [1] reshape {} }, { name: "p" data_type: TYPE_FP16 dims: [5] }]
			output [{ name: "o" data_type: TYPE_FP16 dims: [5] }]
			dynamic_batching { preferred_batch_size: [8] }
			instance_group [{ name: "m" kind: KIND_CPU count: 2 }]`, ""},
		{"d default 0", modelA, "", cpu, 0, `name: "m"` + commonTail + `
			input [{ name: "x" data_type: TYPE_FP32 dims: [-1, 3, 224, 224] }]
			output [{ name: "y" data_type: TYPE_FP32 dims: [-1, 1000] }]
			instance_group [{ name: "m" kind: KIND_CPU count: 2 }]`, ""},
		{"d default 1", modelA, "", cpu, 1, `name: "m" max_batch_size: 1` + commonTail + `
			input [{ name: "x" data_type: TYPE_FP32 dims: [3, 224, 224] }]
			output [{ name: "y" data_type: TYPE_FP32 dims: [1000] }]
			instance_group [{ name: "m" kind: KIND_CPU count: 2 }]`, ""},
		{"e", modelB, "max_batch_size: 2", cpu, 4, "", "autofill failed for model 'm': model does not support batching while non-zero max_batch_size is specified"},
		{"f", modelA, `input [{ name: "x" data_type: TYPE_FP32 dims: [3, 224, 224] }] output [{ name: "y" data_type: TYPE_FP32 dims: [1000] }]`, cpu, 4, "",
			"model 'm', tensor 'x': the model expects 4 dimensions (shape [-1,3,224,224]) but the model configuration specifies 3 dimensions (shape [3,224,224])"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv
			srv.DefaultMaxBatchSize = tc.mbs
			got, ps := Complete(modelDir(t, tc.model, tc.config), srv)
			if tc.err != "" {
				if !ps.Contains(tc.err) {
					t.Fatalf("problems %v, want %q", ps, tc.err)
				}
				return
			}
			if len(ps) > 0 {
				t.Fatal(ps)
			}
			sameConfig(t, got.Config, mustParse(t, tc.want))
		})
	}
}

// TestTritonConfigsCheck: every real config passes the file-level checks.
func TestTritonConfigsCheck(t *testing.T) {
	srv := DefaultServer()
	srv.GPUs = AnyGPUs
	for _, f := range tritonFiles(t) {
		src, err := ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stem := strings.TrimSuffix(filepath.Base(f), ".pbtxt")
		if _, ps := CheckConfig(src, stem, false, srv); len(ps) > 0 {
			t.Errorf("%s: %v", filepath.Base(f), ps.Strings(src, f))
		}
	}
}

// TestValidationRules covers each rule of §4 A-C with Triton's key phrase and
// the position of the offending field.
func TestValidationRules(t *testing.T) {
	tests := []struct {
		name   string
		config string
		gpus   int
		want   string
		at     string // the problem points at the last occurrence of this text
	}{
		{"A2 platform", `name: "m" platform: "caffe2"`, 0, "unexpected platform type 'caffe2' for m", "platform"},
		{"A3 pair", `name: "m" platform: "tensorrt_plan" backend: "onnxruntime"`, 0, "unexpected 'platform' and 'backend' pair, got:tensorrt_plan, onnxruntime", "platform"},
		{"A4 max_batch_size", "name: \"m\" backend: \"python\"\nmax_batch_size: -1", 0, "'max_batch_size' must be non-negative value for m", "max_batch_size"},
		{"A6 preferred positive", "name: \"m\" backend: \"python\" max_batch_size: 4\ndynamic_batching { preferred_batch_size: [ 2, 0 ] }", 0, "dynamic batching preferred size must be positive for m", "0 ]"},
		{"A6 preferred max", "name: \"m\" backend: \"python\" max_batch_size: 4\ndynamic_batching { preferred_batch_size: [ 8 ] }", 0, "dynamic batching preferred size must be <= max batch size for m", "8 ]"},
		{"A6 preferred needs mbs", "name: \"m\" backend: \"python\"\ndynamic_batching { preferred_batch_size: [ 2 ] }", 0, "dynamic batching preferred size must be <= max batch size", "2 ]"},
		{"A7 priority", `name: "m" backend: "python" dynamic_batching { priority_levels: 2 default_priority_level: 3 }`, 0, "default priority level must be in range [1, 2] for m", "default_priority_level"},
		{"A7 ordering", `name: "m" backend: "python" dynamic_batching { priority_levels: 2 default_priority_level: 1 preserve_ordering: true }`, 0, "Only one priority level is allowed when 'preserve_ordering' is true for m", "preserve_ordering"},
		{"A7 corrid", `name: "m" backend: "python" sequence_batching { control_input [{ name: "C" control [{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_FP32 }] }] }`, 0, "unexpected data type for control CONTROL_SEQUENCE_CORRID for m", "{ kind: CONTROL_SEQUENCE_CORRID"},
		{"A7 oldest preferred", `name: "m" backend: "python" sequence_batching { oldest { preferred_batch_size: [0] } }`, 0, "sequence batching preferred batch size must be positive for m", "0]"},
		{"A7 control pairs", `name: "m" backend: "python" sequence_batching { control_input [{ name: "S" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0] }] }] }`, 0, "'int32_false_true' must have exactly 2 entries for CONTROL_SEQUENCE_START for m", "{ kind: CONTROL_SEQUENCE_START"},
		{"B9 name", "name: \"m\" backend: \"python\"\ninput [ { data_type: TYPE_FP32 dims: [1] } ]", 0, "model input must specify 'name' for m", "{ data_type"},
		{"B10 data_type", "name: \"m\" backend: \"python\"\ninput [ { name: \"x\" dims: [1] } ]", 0, "model input 'x' must specify 'data_type' for m", "{ name"},
		{"B11 dims", "name: \"m\" backend: \"python\"\noutput [ { name: \"y\" data_type: TYPE_FP32 } ]", 0, "model output 'y' must specify 'dims' for m", "{ name"},
		{"B12 dim zero", "name: \"m\" backend: \"python\"\ninput [ { name: \"x\" data_type: TYPE_FP32 dims: [ 3, 0 ] } ]", 0, "model input 'x' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for m", "0 ]"},
		{"B12 dim -2", "name: \"m\" backend: \"python\"\ninput [ { name: \"x\" data_type: TYPE_FP32 dims: [ -2 ] } ]", 0, "dimension must be integer >= 1, or -1", "-2"},
		{"B13 empty reshape", "name: \"m\" backend: \"python\"\ninput [ { name: \"x\" data_type: TYPE_FP32 dims: [ 1 ] reshape { } } ]", 0, "cannot have empty reshape for non-batching model as scalar tensors are not supported", "reshape"},
		{"B14 reshape zero", "name: \"m\" backend: \"python\"\ninput [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 0 ] } } ]", 0, "reshape dimensions must be integer >= 1", "0 ]"},
		{"B14 reshape size", `name: "m" backend: "python" input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 3 ] } } ]`, 0, "model input 'x' has different size for dims and reshape for m", "reshape"},
		{"B14 wildcard segments", `name: "m" backend: "python" input [ { name: "x" data_type: TYPE_FP32 dims: [ 2, -1 ] reshape { shape: [ -1, 2, -1 ] } } ]`, 0, "has different number of variable-size dimensions for dims and reshape", "reshape"},
		{"B14 wildcard product", `name: "m" backend: "python" input [ { name: "x" data_type: TYPE_FP32 dims: [ 2, 4, -1, 6 ] reshape { shape: [ 8, -1, 2, 6 ] } } ]`, 0, "has different size for dims and reshape", "reshape"},
		{"B15 NHWC", `name: "m" backend: "python" input [ { name: "x" data_type: TYPE_FP32 format: FORMAT_NHWC dims: [ 2, 2 ] } ]`, 0, "model input NHWC/NCHW require 3 dims for m", "format"},
		{"B15 shape tensor", `name: "m" platform: "onnxruntime_onnx" input [ { name: "x" data_type: TYPE_INT32 dims: [ 2 ] is_shape_tensor: true } ]`, 0, "shape tensors are only supported for TensorRT platform for m", "is_shape_tensor"},
		{"B16 batch input", `name: "m" backend: "python" input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ] batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "t" data_type: TYPE_INT64 source_input: "x" } ]`, 0, "batch input data type must be TYPE_INT32 or TYPE_FP32 for m", "data_type: TYPE_INT64"},
		{"B16 source", `name: "m" backend: "python" batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "t" data_type: TYPE_INT32 source_input: "nope" } ]`, 0, "unknown source input name 'nope' for m", "source_input"},
		{"B16 target", `name: "m" backend: "python" input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ] batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "nope" source_input: "x" } ]`, 0, "unknown target output name 'nope' for m", "target_name"},
		{"duplicate input", "name: \"m\" backend: \"python\"\ninput [ { name: \"x\" data_type: TYPE_FP32 dims: [1] }, { name: \"x\" data_type: TYPE_FP32 dims: [1] } ]", 0, "input 'x' is specified more than once for m", "name: \"x\""},
		{"C17 gpu on cpu server", `name: "m" backend: "python" instance_group [ { kind: KIND_GPU } ]`, 0, "instance group m_0 of model m has kind KIND_GPU but no GPUs are available", "kind"},
		{"C17 gpu id", `name: "m" backend: "python" instance_group [ { kind: KIND_GPU gpus: [ 0, 3 ] } ]`, 2, "instance group m_0 of model m specifies invalid or unsupported gpu id 3", "3 ]"},
		{"C17 negative gpu id", `name: "m" backend: "python" instance_group [ { kind: KIND_GPU gpus: [ -1 ] } ]`, 2, "instance group m_0 of model m specifies invalid or unsupported gpu id -1", "-1 ]"},
		// modelctl without --gpus (GPU count unknown) still refuses a negative id, as Triton does on any server.
		{"C17 negative gpu id, GPU count unknown", `name: "m" backend: "python" instance_group [ { kind: KIND_GPU gpus: [ 0, -2 ] } ]`, AnyGPUs, "instance group m_0 of model m specifies invalid or unsupported gpu id -2 (GPU ids are 0 or more)", "-2 ]"},
		{"C17 cpu with gpus", `name: "m" backend: "python" instance_group [ { name: "g" kind: KIND_CPU gpus: [ 0 ] } ]`, 1, "instance group g of model m has kind KIND_CPU but specifies one or more GPUs", "0 ]"},
		{"C17 profile", `name: "m" platform: "onnxruntime_onnx" instance_group [ { kind: KIND_CPU profile: "0" } ]`, 0, "and platform onnxruntime_onnxspecifies profile field which is only supported for TensorRT models", "profile"},
		{"A8 directory", `name: "other" backend: "python"`, 0, "unexpected directory name 'm' for model 'other', directory name must equal model name", "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Parse("config.pbtxt", []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			srv := DefaultServer()
			srv.GPUs = tc.gpus
			_, ps := CheckConfig(src, "m", true, srv)
			var found *Problem
			for i := range ps {
				if strings.Contains(ps[i].Msg, tc.want) {
					found = &ps[i]
				}
			}
			if found == nil {
				t.Fatalf("problems %q, want one containing %q", ps, tc.want)
			}
			if found.Code != codes.InvalidArgument {
				t.Errorf("code %s, want InvalidArgument", found.Code)
			}
			if got, want := src.Position(found.Path), posOf(tc.config, tc.at); got != want {
				t.Errorf("position of %q = %s, want %s (%q)", found.Path, got, want, tc.at)
			}
		})
	}
}

// TestModelMismatch covers §4 D: configs that do not match their model.
func TestModelMismatch(t *testing.T) {
	srv := DefaultServer()
	tests := []struct {
		name, config, want string
		code               codes.Code
	}{
		{"input count", `input [{ name: "x" data_type: TYPE_FP32 dims: [3,224,224] }, { name: "z" data_type: TYPE_FP32 dims: [1] }] output [{ name: "y" data_type: TYPE_FP32 dims: [1000] }] max_batch_size: 4`,
			"unable to load model 'm', configuration expects 2 inputs, model provides 1", codes.InvalidArgument},
		{"input name", `input [{ name: "image" data_type: TYPE_FP32 dims: [3,224,224] }] output [{ name: "y" data_type: TYPE_FP32 dims: [1000] }] max_batch_size: 4`,
			"unexpected inference input 'image', allowed inputs are: x", codes.InvalidArgument},
		{"output name", `max_batch_size: 4 output [{ name: "probs" data_type: TYPE_FP32 dims: [1000] }]`,
			"unexpected inference output 'probs', allowed outputs are: y", codes.InvalidArgument},
		{"input type", `max_batch_size: 4 input [{ name: "x" data_type: TYPE_INT64 dims: [3,224,224] }]`,
			"unable to load model 'm', configuration expects datatype TYPE_INT64 for input 'x', model provides TYPE_FP32", codes.InvalidArgument},
		{"output dims exact", `max_batch_size: 4 output [{ name: "y" data_type: TYPE_FP32 dims: [-1] }]`,
			"model 'm', tensor 'y': the model expects 2 dimensions (shape [-1,1000]) but the model configuration specifies 2 dimensions (an initial batch dimension because max_batch_size > 0 followed by the explicit tensor shape, making complete shape [-1,-1])", codes.InvalidArgument},
		{"optional batching", `max_batch_size: 4 input [{ name: "x" data_type: TYPE_FP32 dims: [3,224,224] optional: true }]`,
			"configuration expects 0 inputs, model provides 1", codes.InvalidArgument},
		{"unsupported type", `max_batch_size: 4 input [{ name: "x" data_type: TYPE_INVALID dims: [3,224,224] }]`,
			"model input 'x' must specify 'data_type' for m", codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := Complete(modelDir(t, modelA, tc.config), srv)
			if !ps.Contains(tc.want) {
				t.Fatalf("problems %q, want %q", ps, tc.want)
			}
			if ps[0].Code != tc.code {
				t.Errorf("code %s, want %s", ps[0].Code, tc.code)
			}
		})
	}
	// Non-batching model with a batch-looking config.
	_, ps := Complete(modelDir(t, modelB, `max_batch_size: 0 input [{ name: "a" data_type: TYPE_INT64 dims: [3,-1] }, { name: "b" data_type: TYPE_STRING dims: [1] }] output [{ name: "c" data_type: TYPE_INT64 dims: [2,-1] }]`), srv)
	if !ps.Contains("model 'm', tensor 'a': the model expects 2 dimensions (shape [2,-1]) but the model configuration specifies 2 dimensions (shape [3,-1])") {
		t.Fatalf("problems %q", ps)
	}
	// A rank-0 model tensor given dims other than 1.
	_, ps = Complete(modelDir(t, modelB, `input [{ name: "a" data_type: TYPE_INT64 dims: [2,-1] }, { name: "b" data_type: TYPE_STRING dims: [2] }] output [{ name: "c" data_type: TYPE_INT64 dims: [2,-1] }]`), srv)
	if !ps.Contains("scalar tensor 'b', should only provide 1 in the model configuration when the model doesn't support batching. Model configuration provided: [2].") {
		t.Fatalf("problems %q", ps)
	}
	// Non-tensor I/O.
	seq := onnxtest.Model([]*onnx.ValueInfoProto{onnxtest.Sequence("s")}, []*onnx.ValueInfoProto{onnxtest.Tensor("y", fp32, 1)})
	_, ps = Complete(modelDir(t, seq, ""), srv)
	if !ps.Contains("Unsupported ONNX Type 'ONNX_TYPE_SEQUENCE' for I/O 's', expected 'ONNX_TYPE_TENSOR'.") || ps[0].Code != codes.Unimplemented {
		t.Fatalf("problems %q", ps)
	}
}

func TestCompleteLoadErrors(t *testing.T) {
	srv := DefaultServer()
	d := modelDir(t, modelA, "")
	// Missing model file for the selected version.
	if err := os.Mkdir(filepath.Join(d.Path, "2"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, _ = ReadModelDir(d.Path)
	_, ps := Complete(d, srv)
	if !ps.Contains("unable to find '"+filepath.Join(d.Path, "2", "model.onnx")+"' for model instance 'm'") || ps[0].Code != codes.Unavailable || ps[0].Version != "2" {
		t.Fatalf("problems %+v", ps)
	}
	// Corrupt model file.
	if err := os.WriteFile(filepath.Join(d.Path, "2", "model.onnx"), []byte("garbage!"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ps = Complete(d, srv)
	if !ps.Contains("model.onnx") || ps[0].Code != codes.Internal {
		t.Fatalf("problems %+v", ps)
	}
	// Version policy selecting nothing.
	d2 := modelDir(t, modelA, "version_policy { specific { versions: [7] } }")
	if _, ps := Complete(d2, srv); !ps.Contains("at least one version must be available under the version policy of model 'm'") {
		t.Fatalf("problems %+v", ps)
	}
	// Without autofill the config file is required and IO must be written out.
	noAuto := srv
	noAuto.NoAutofill = true
	if _, ps := Complete(modelDir(t, modelA, ""), noAuto); !ps.Contains("failed to open text file for read") {
		t.Fatalf("problems %+v", ps)
	}
	if _, ps := Complete(modelDir(t, modelA, `max_batch_size: 4 input [{ name: "x" data_type: TYPE_FP32 dims: [3,224,224] }]`), noAuto); !ps.Contains("configuration expects") && !ps.Contains("output") {
		t.Logf("problems %+v", ps) // outputs may be a subset: a config without outputs is legal
	}
	// No version directory and no config: Triton cannot tell the backend.
	empty := filepath.Join(t.TempDir(), "m")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	de, err := ReadModelDir(empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, ps := Complete(de, srv); !ps.Contains("Invalid model name: Could not determine backend for model 'm'") {
		t.Fatalf("problems %+v", ps)
	}
}

func TestVersionPolicy(t *testing.T) {
	avail := []int64{1, 2, 5, 10}
	tests := []struct {
		policy string
		want   []int64
	}{
		{"", []int64{10}},
		{"version_policy { latest { num_versions: 2 } }", []int64{5, 10}},
		{"version_policy { latest { num_versions: 9 } }", []int64{1, 2, 5, 10}},
		{"version_policy { all { } }", []int64{1, 2, 5, 10}},
		{"version_policy { specific { versions: [ 5, 3, 1 ] } }", []int64{1, 5}},
	}
	for _, tc := range tests {
		cfg := mustParse(t, tc.policy)
		normalize(cfg)
		if got := SelectVersions(cfg, avail); !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, want %v", tc.policy, got, tc.want)
		}
	}
	for name, ok := range map[string]bool{"1": true, "0": true, "10": true, "01": false, "-1": false, "1a": false, "warmup": false} {
		if _, got := versionNumber(name); got != ok {
			t.Errorf("versionNumber(%q) = %v", name, got)
		}
	}
}

func TestPoolOverride(t *testing.T) {
	base := mustParse(t, `name: "m" max_batch_size: 8
instance_group [ { kind: KIND_CPU count: 4 }, { kind: KIND_GPU gpus: [1] } ]
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 100 }
parameters { key: "a" value { string_value: "1" } }`)
	mbs := int32(16)
	got, err := PoolOverride{
		Kind: inference.ModelInstanceGroup_KIND_GPU, Count: 2, MaxBatchSize: &mbs,
		DynamicBatching: &inference.ModelDynamicBatching{MaxQueueDelayMicroseconds: 500},
	}.Apply(base)
	if err != nil {
		t.Fatal(err)
	}
	want := mustParse(t, `name: "m" max_batch_size: 16
instance_group [ { kind: KIND_GPU count: 2 } ]
dynamic_batching { max_queue_delay_microseconds: 500 }
parameters { key: "a" value { string_value: "1" } }`)
	if !proto.Equal(got, want) {
		t.Fatalf("got:\n%s", Format(got))
	}
	if len(base.InstanceGroup) != 2 {
		t.Fatal("Apply modified its input")
	}
	zero := int32(0)
	got, err = PoolOverride{Kind: inference.ModelInstanceGroup_KIND_CPU, MaxBatchSize: &zero}.Apply(base)
	if err != nil || got.MaxBatchSize != 0 || got.InstanceGroup[0].Kind != inference.ModelInstanceGroup_KIND_CPU {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []PoolOverride{
		{Count: 2},
		{Kind: inference.ModelInstanceGroup_KIND_CPU, GPUs: []int32{0}},
		{Kind: inference.ModelInstanceGroup_KIND_MODEL},
		{Kind: inference.ModelInstanceGroup_KIND_GPU, Count: -1},
	} {
		if _, err := bad.Apply(base); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	// Merge of a fragment: sequence batching replaces dynamic batching (oneof),
	// map entries are merged.
	frag := mustParse(t, `sequence_batching { } parameters { key: "b" value { string_value: "2" } }`)
	m := proto.Clone(base).(*inference.ModelConfig)
	Merge(m, frag)
	if m.GetDynamicBatching() != nil || m.GetSequenceBatching() == nil || len(m.Parameters) != 2 {
		t.Fatalf("merge:\n%s", Format(m))
	}
}

// TestGenerateAllModels: for every ONNX model in testdata, the generated config
// passes the strictest check (auto-complete off) against the model and lists
// exactly the model's tensors.
func TestGenerateAllModels(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/onnx/node/*/model.onnx")
	more, _ := filepath.Glob("../../testdata/onnx/models/*.onnx")
	ml, _ := filepath.Glob("../../testdata/onnx/ml/*/model.onnx") // ai.onnx.ml and string attributes
	files = append(append(files, more...), ml...)
	if len(files) != 53 {
		t.Fatalf("found %d models, want 53", len(files))
	}
	strict := DefaultServer()
	strict.NoAutofill = true
	for _, f := range files {
		m, err := onnxmodel.Inspect(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg, ps := Generate(m, GenerateOptions{Name: "gen", Pool: PoolOverride{Kind: inference.ModelInstanceGroup_KIND_CPU, Count: 1}})
		if strings.Contains(f, "test_reduce_mean_default_axes_keepdims_example") {
			// Its 'axes' input has the fixed shape [0] (always empty), which a
			// Triton config cannot express: Triton refuses it, and so do we.
			if !ps.Contains("model input 'axes' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for gen") {
				t.Errorf("%s: problems %v", f, ps)
			}
			continue
		}
		if len(ps) > 0 {
			t.Errorf("%s: %v", f, ps)
			continue
		}
		dir := filepath.Join(t.TempDir(), "gen")
		b, _ := os.ReadFile(f)
		if err := os.MkdirAll(filepath.Join(dir, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "1", "model.onnx"), b, 0o644)
		_ = os.WriteFile(filepath.Join(dir, ConfigFile), Format(cfg), 0o644)
		d, err := ReadModelDir(dir)
		if err != nil {
			t.Fatalf("%s: generated config: %v", f, err)
		}
		loaded, ps := Complete(d, strict)
		if len(ps) > 0 {
			t.Errorf("%s: generated config rejected: %v\n%s", f, ps, Format(cfg))
			continue
		}
		if !proto.Equal(loaded.Config, cfg) {
			t.Errorf("%s: completing a generated config changed it", f)
		}
		if len(cfg.Input) != len(m.Inputs) || len(cfg.Output) != len(m.Outputs) {
			t.Errorf("%s: config lists %d/%d tensors, model has %d/%d", f, len(cfg.Input), len(cfg.Output), len(m.Inputs), len(m.Outputs))
		}
	}
}

func TestGenerateOptions(t *testing.T) {
	m, err := onnxmodel.Inspect("../../testdata/onnx/models/example_dynamic_axes.onnx")
	if err != nil {
		t.Fatal(err)
	}
	on, off := true, false
	mbs8, mbs0 := int32(8), int32(0)
	cfg, ps := Generate(m, GenerateOptions{Name: "d", MaxBatchSize: &mbs8, Pool: PoolOverride{Kind: inference.ModelInstanceGroup_KIND_GPU, Count: 3}})
	if len(ps) > 0 || cfg.MaxBatchSize != 8 || cfg.GetDynamicBatching() == nil || cfg.InstanceGroup[0].Kind != inference.ModelInstanceGroup_KIND_GPU || cfg.InstanceGroup[0].Count != 3 {
		t.Fatalf("%v\n%s", ps, Format(cfg))
	}
	cfg, ps = Generate(m, GenerateOptions{Name: "d", DynamicBatching: &off})
	if len(ps) > 0 || cfg.MaxBatchSize != 4 || cfg.GetDynamicBatching() != nil {
		t.Fatalf("%v\n%s", ps, Format(cfg))
	}
	cfg, ps = Generate(m, GenerateOptions{Name: "d", MaxBatchSize: &mbs0})
	if len(ps) > 0 || cfg.MaxBatchSize != 0 || !slices.Equal(cfg.Input[0].Dims, []int64{-1, 10}) {
		t.Fatalf("%v\n%s", ps, Format(cfg))
	}
	if _, ps = Generate(m, GenerateOptions{Name: "d", MaxBatchSize: &mbs0, DynamicBatching: &on}); !ps.Contains("dynamic batching needs max_batch_size > 0") {
		t.Fatalf("problems %v", ps)
	}
	fixed, _ := onnxmodel.Inspect("../../testdata/onnx/models/mnist.onnx")
	if _, ps = Generate(fixed, GenerateOptions{Name: "mnist", MaxBatchSize: &mbs8}); !ps.Contains("does not support batching") {
		t.Fatalf("problems %v", ps)
	}
	// A pool's batching settings: strict unless BatchingIfSupported, which
	// skips the model that cannot batch and applies to the one that can.
	mbs16 := int32(16)
	pool := PoolOverride{Kind: inference.ModelInstanceGroup_KIND_CPU, MaxBatchSize: &mbs16, DynamicBatching: &inference.ModelDynamicBatching{MaxQueueDelayMicroseconds: 100}}
	if _, ps = Generate(fixed, GenerateOptions{Name: "mnist", Pool: pool}); !ps.Contains("does not support batching") {
		t.Fatalf("strict pool batching on mnist: problems %v", ps)
	}
	pool.BatchingIfSupported = true
	if cfg, ps = Generate(fixed, GenerateOptions{Name: "mnist", Pool: pool}); len(ps) > 0 || cfg.MaxBatchSize != 0 || cfg.GetDynamicBatching() != nil {
		t.Fatalf("pool batching if supported on mnist: %v\n%s", ps, Format(cfg))
	}
	if cfg, ps = Generate(m, GenerateOptions{Name: "d", Pool: pool}); len(ps) > 0 || cfg.MaxBatchSize != 16 || cfg.GetDynamicBatching().GetMaxQueueDelayMicroseconds() != 100 {
		t.Fatalf("pool batching if supported on a batching model: %v\n%s", ps, Format(cfg))
	}
	shipped := &inference.ModelConfig{Name: "s", Platform: PlatformONNX}
	if out, err := pool.Apply(shipped); err != nil || out.MaxBatchSize != 0 || out.GetDynamicBatching() != nil || len(out.InstanceGroup) != 1 {
		t.Fatalf("Apply if supported to a config that does not batch: %v %v", out, err)
	}
	shipped.MaxBatchSize = 4
	if out, err := pool.Apply(shipped); err != nil || out.MaxBatchSize != 16 || out.GetDynamicBatching() == nil {
		t.Fatalf("Apply if supported to a config that batches: %v %v", out, err)
	}
}

// posOf is the position of the last occurrence of sub in text.
func posOf(text, sub string) Pos {
	i := strings.LastIndex(text, sub)
	if i < 0 {
		panic("marker not found: " + sub)
	}
	line := 1 + strings.Count(text[:i], "\n")
	col := i - strings.LastIndex(text[:i], "\n")
	return Pos{line, col}
}

func TestModelNames(t *testing.T) {
	for name, want := range map[string]string{
		"":        "must not be empty",
		"  ":      "only whitespace",
		"a/b":     "path traversal",
		"..x":     "path traversal",
		".":       "not usable",
		"ok_name": "",
		"résumé":  "",
	} {
		err := ValidateModelName(name)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("ValidateModelName(%q) = %v, want %q", name, err, want)
		}
	}
	for in, want := range map[string]string{"mnist.onnx": "mnist", "Ultraface RFB-320.onnx": "Ultraface_RFB-320", "a.b.onnx": "a.b", "noext": "noext", ".hidden": "hidden"} {
		if got := ModelNameFrom(in); got != want {
			t.Errorf("ModelNameFrom(%q) = %q, want %q", in, got, want)
		}
	}
}
