package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/pbtxt"
)

const testdata = "../../testdata"

// modelctl runs the CLI in-process and returns exit code, stdout and stderr.
func modelctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigCheckTritonConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "triton/pbtxt/*.pbtxt"))
	code, out, errOut := modelctl(t, append([]string{"config", "check"}, files...)...)
	if code != 0 || out != "" || !strings.Contains(errOut, "27 configs checked, 0 invalid") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

var problemLine = regexp.MustCompile(`^[^:]+:\d+:\d+: .+$`)

func TestConfigCheckBadConfigs(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"syntax.pbtxt":  "name: \"m\"\ninput [ { name: \"x\" ",
		"unknown.pbtxt": "name: \"m\"\nplatfrom: \"onnxruntime_onnx\"\n",
		"type.pbtxt":    "name: \"m\"\nmax_batch_size: [ 1 ]\n",
		"dims.pbtxt":    "name: \"m\"\nplatform: \"onnxruntime_onnx\"\ninput [ { name: \"x\" data_type: TYPE_FP32 dims: [ 0 ] } ]\n",
		"dup.pbtxt":     "name: \"m\"\nbackend: \"python\"\noutput [ { name: \"y\" data_type: TYPE_FP32 dims: [1] }, { name: \"y\" data_type: TYPE_FP32 dims: [1] } ]\n",
		"ok.pbtxt":      "name: \"m\"\nbackend: \"python\"\n",
	}
	want := map[string]string{
		"syntax.pbtxt":  "syntax.pbtxt:2:21: failed to read text proto: unexpected EOF",
		"unknown.pbtxt": "unknown.pbtxt:2:1: failed to read text proto: unknown field: platfrom",
		"type.pbtxt":    "type.pbtxt:2:1",
		"dims.pbtxt":    "dims.pbtxt:3:50: model input 'x' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for m",
		"dup.pbtxt":     "dup.pbtxt:3:58: output 'y' is specified more than once for m",
	}
	var args []string
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	code, out, errOut := modelctl(t, append([]string{"config", "check"}, args...)...)
	if code != 1 || !strings.Contains(errOut, "6 configs checked, 5 invalid") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 problem lines, got:\n%s", out)
	}
	for _, l := range lines {
		if !problemLine.MatchString(l) {
			t.Errorf("not file:line:col: message: %q", l)
		}
	}
	for name, w := range want {
		if !strings.Contains(out, filepath.Join(dir, w)) {
			t.Errorf("%s: want %q in:\n%s", name, w, out)
		}
	}
}

// writeModel makes <dir>/<name>/1/model.onnx from a testdata model, with an
// optional config.pbtxt.
func writeModel(t *testing.T, dir, name, model, config string) string {
	t.Helper()
	md := filepath.Join(dir, name)
	b, err := os.ReadFile(filepath.Join(testdata, model))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(md, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(md, "1", "model.onnx"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(md, "config.pbtxt"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return md
}

func TestConfigCheckModelDir(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "dyn", "onnx/models/example_dynamic_axes.onnx", "")
	bad := writeModel(t, repo, "bad", "onnx/models/mnist.onnx", "max_batch_size: 0\ninput [ { name: \"image\" data_type: TYPE_FP32 dims: [ 1, 1, 28, 28 ] } ]\n")
	code, out, _ := modelctl(t, "config", "check", repo)
	// mnist (IR 3) lists its weights as graph inputs: ONNX Runtime allows them
	// as (overridable) inputs, and Triton's message lists them too.
	want := filepath.Join(bad, "config.pbtxt") + ":2:11: version 1: unexpected inference input 'image', allowed inputs are: Input3, Parameter193, Parameter193_reshape1_shape, Parameter194, Parameter5, Parameter6, Parameter87, Parameter88, Pooling160_Output_0_reshape0_shape"
	if code != 1 || strings.TrimSpace(out) != want {
		t.Fatalf("exit %d, out %q, want %q", code, out, want)
	}
	// With auto-complete disabled, the config-less model is invalid too.
	code, out, _ = modelctl(t, "config", "check", "--no-autofill", filepath.Join(repo, "dyn"))
	if code != 1 || !strings.Contains(out, "failed to open text file for read") {
		t.Fatalf("exit %d, out %q", code, out)
	}
	// A config that leaves outputs to auto-complete is fine with it, not without.
	part := writeModel(t, repo, "part", "onnx/models/mnist.onnx", "input [ { name: \"Input3\" data_type: TYPE_FP32 dims: [ 1, 1, 28, 28 ] } ]\n")
	if code, out, _ = modelctl(t, "config", "check", part); code != 0 {
		t.Fatalf("autofill: exit %d, out %q", code, out)
	}
	if code, out, _ = modelctl(t, "config", "check", "--no-autofill", "--gpus", "0", part); code != 0 {
		// Outputs may be a subset of the model's: none at all is legal for Triton.
		t.Fatalf("no-autofill: exit %d, out %q", code, out)
	}
}

func TestConfigComplete(t *testing.T) {
	dir := writeModel(t, t.TempDir(), "dyn", "onnx/models/example_dynamic_axes.onnx", "")
	code, out, errOut := modelctl(t, "config", "complete", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	src, err := pbtxt.Parse("out", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	cfg := src.Config
	if cfg.Name != "dyn" || cfg.MaxBatchSize != 4 || cfg.InstanceGroup[0].Kind.String() != "KIND_CPU" || cfg.InstanceGroup[0].Count != 2 {
		t.Fatalf("unexpected completion:\n%s", out)
	}
	code, out, _ = modelctl(t, "config", "complete", "--gpus", "2", dir)
	if code != 0 || !strings.Contains(out, "kind: KIND_GPU") || !strings.Contains(out, "gpus: [ 0, 1 ]") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if code, _, errOut = modelctl(t, "config", "complete", "--gpus", "-3", dir); code != 2 || !strings.Contains(errOut, "--gpus must be >= 0") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestGenerateThenCheck: for all 53 testdata models, `config generate` output
// is accepted by `config check --no-autofill` against the model itself.
func TestGenerateThenCheck(t *testing.T) {
	models, _ := filepath.Glob(filepath.Join(testdata, "onnx/node/*/model.onnx"))
	more, _ := filepath.Glob(filepath.Join(testdata, "onnx/models/*.onnx"))
	ml, _ := filepath.Glob(filepath.Join(testdata, "onnx/ml/*/model.onnx"))
	models = append(append(models, more...), ml...)
	if len(models) != 53 {
		t.Fatalf("%d models", len(models))
	}
	repo := t.TempDir()
	generated := 0
	for i, m := range models {
		name := "m" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		code, out, errOut := modelctl(t, "config", "generate", m, "--name", name)
		if strings.Contains(m, "test_reduce_mean_default_axes_keepdims_example") {
			// A fixed 0-sized dim cannot be written in a Triton config.
			if code != 1 || !strings.Contains(errOut, "model input 'axes' dimension must be integer >= 1") {
				t.Errorf("%s: exit %d, %s", m, code, errOut)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", m, code, errOut)
		}
		rel, _ := filepath.Rel(testdata, m)
		writeModel(t, repo, name, rel, out)
		generated++
	}
	code, out, errOut := modelctl(t, "config", "check", "--no-autofill", "--gpus", "0", repo)
	if code != 0 || !strings.Contains(errOut, "52 configs checked, 0 invalid") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if generated != 52 {
		t.Fatalf("generated %d", generated)
	}
}

func TestGenerateFlags(t *testing.T) {
	m := filepath.Join(testdata, "onnx/models/example_dynamic_axes.onnx")
	code, out, _ := modelctl(t, "config", "generate", m, "--name", "d", "--kind", "gpu", "--instances", "3", "--max-batch-size", "16", "--dynamic-batching")
	for _, want := range []string{"max_batch_size: 16", "kind: KIND_GPU", "count: 3", "preferred_batch_size: [ 16 ]"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, %q missing:\n%s", code, want, out)
		}
	}
	outFile := filepath.Join(t.TempDir(), "config.pbtxt")
	if code, _, errOut := modelctl(t, "config", "generate", m, "--name", "d", "-o", outFile); code != 0 {
		t.Fatal(errOut)
	}
	if b, err := os.ReadFile(outFile); err != nil || !strings.Contains(string(b), `name: "d"`) {
		t.Fatalf("output file: %v", err)
	}
}

// TestBadInput: every bad command line or input gives one readable line on
// stderr and a non-zero exit, never a panic or a usage dump.
func TestBadInput(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("not a model at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(testdata, "onnx/models/mnist.onnx")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"config", "generate", m}, 2, "--name is required"},
		{[]string{"config", "generate", garbage, "--name", "g"}, 1, garbage + ": not a valid ONNX model"},
		{[]string{"config", "generate", m, "--name", "../etc"}, 2, "must not contain path traversal characters"},
		{[]string{"config", "generate", m, "--name", "x", "--kind", "tpu"}, 2, "--kind must be cpu or gpu"},
		{[]string{"config", "generate", m, "--name", "x", "--max-batch-size", "8"}, 1, "model does not support batching"},
		{[]string{"config", "generate", m, "--name", "x", "--instances", "lots"}, 2, "invalid argument \"lots\""},
		{[]string{"config", "check"}, 2, "requires at least 1 arg"},
		{[]string{"config", "check", "/no/such/file"}, 1, "no such file or directory"},
		{[]string{"config", "bogus"}, 2, `unknown command "bogus" for "modelctl config"`},
		{[]string{"inspect", garbage}, 1, "not a valid ONNX model"},
		{[]string{"repo", "build", m}, 2, "--out is required"},
		{[]string{"--bogus-flag"}, 2, "unknown flag: --bogus-flag"},
	}
	for _, tc := range tests {
		code, _, errOut := modelctl(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, tc.code, errOut)
		}
		if tc.want != "" && (!strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0) {
			t.Errorf("%v: stderr %q, want one line containing %q", tc.args, errOut, tc.want)
		}
	}
}

func TestRepoBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "repo")
	models := filepath.Join(testdata, "onnx/models")
	code, stdout, errOut := modelctl(t, "repo", "build",
		filepath.Join(models, "mnist.onnx"),
		"dyn="+filepath.Join(models, "example_dynamic_axes.onnx"),
		filepath.Join(testdata, "onnx/node/test_add"),
		"--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"mnist", "dyn", "test_add"} {
		if !strings.Contains(stdout, "wrote "+filepath.Join(out, name)+": version 1") {
			t.Errorf("no summary for %s in:\n%s", name, stdout)
		}
		for _, f := range []string{"config.pbtxt", "1/model.onnx"} {
			if _, err := os.Stat(filepath.Join(out, name, f)); err != nil {
				t.Error(err)
			}
		}
	}
	if code, _, _ := modelctl(t, "config", "check", "--no-autofill", "--gpus", "0", out); code != 0 {
		t.Fatal("built repository does not check")
	}
	// No staging leftovers next to the repository.
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".repo.staging-*")); len(left) > 0 {
		t.Fatalf("staging left behind: %v", left)
	}

	// A model directory source is copied with its config, renamed.
	code, _, errOut = modelctl(t, "repo", "build", "again="+filepath.Join(out, "dyn"), "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "again", "config.pbtxt")); !strings.Contains(string(b), `name: "again"`) {
		t.Fatalf("renamed model config:\n%s", b)
	}

	// Existing models are kept unless --force.
	code, _, errOut = modelctl(t, "repo", "build", filepath.Join(models, "mnist.onnx"), "--out", out)
	if code != 1 || !strings.Contains(errOut, `model "mnist" already exists`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, _, errOut = modelctl(t, "repo", "build", filepath.Join(models, "mnist.onnx"), "--out", out, "--force", "--kind", "gpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "mnist", "config.pbtxt")); !strings.Contains(string(b), "KIND_GPU") {
		t.Fatal("--force did not replace the model")
	}

	// One bad source among good ones: the others are built, the bad one
	// reported with its reason, exit 1. With --strict, nothing is built.
	garbage := filepath.Join(t.TempDir(), "broken.onnx")
	if err := os.WriteFile(garbage, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = modelctl(t, "repo", "build", filepath.Join(models, "ultraface_version-RFB-320.onnx"), garbage, "--out", out, "--strict")
	if code != 1 || !strings.Contains(errOut, "broken.onnx") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("--strict: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(out, "ultraface_version-RFB-320")); err == nil {
		t.Fatal("a failed --strict build published a model")
	}
	code, stdout, errOut = modelctl(t, "repo", "build", filepath.Join(models, "ultraface_version-RFB-320.onnx"), garbage,
		filepath.Join(testdata, "onnx/ml/test_ai_onnx_ml_label_encoder_string_int"), filepath.Join(t.TempDir(), "missing.onnx"), "--out", out)
	if code != 1 || !strings.Contains(errOut, "broken.onnx: not a valid ONNX model") || !strings.Contains(errOut, "missing.onnx: ") ||
		!strings.Contains(errOut, "2 of 4 models failed; 2 built") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"ultraface_version-RFB-320", "test_ai_onnx_ml_label_encoder_string_int"} {
		if !strings.Contains(stdout, "wrote "+filepath.Join(out, name)) {
			t.Errorf("%s not built:\n%s", name, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "broken")); err == nil {
		t.Fatal("the bad model was published")
	}
	// Two sources with one name.
	code, _, errOut = modelctl(t, "repo", "build", filepath.Join(models, "mnist.onnx"), "mnist="+filepath.Join(models, "example_dynamic_axes.onnx"), "--out", out)
	if code != 2 || !strings.Contains(errOut, `both build model "mnist"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestInspect(t *testing.T) {
	code, out, _ := modelctl(t, "inspect", filepath.Join(testdata, "onnx/models/example_several_inputs_and_outputs.onnx"))
	for _, want := range []string{`"input 3"  BF16`, `"output 2"  FP64   [1,2,3,4,5]`, "opsets ai.onnx 17"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, %q missing:\n%s", code, want, out)
		}
	}
	code, out, _ = modelctl(t, "inspect", "--json", filepath.Join(testdata, "onnx/models/mnist.onnx"))
	if code != 0 || !strings.Contains(out, `"IRVersion": 3`) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
