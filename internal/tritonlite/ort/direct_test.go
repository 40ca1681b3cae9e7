package ort

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/onnxmodel/onnxtest"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

func initORT(t testing.TB) {
	t.Helper()
	wd, _ := os.Getwd()
	if err := Init(LibraryPath(wd)); err != nil {
		t.Fatal(err)
	}
}

func readPB(t testing.TB, path string) tensor.Tensor {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tp onnx.TensorProto
	if err := proto.Unmarshal(b, &tp); err != nil {
		t.Fatal(err)
	}
	ten, err := tensor.FromTensorProto(&tp)
	if err != nil {
		t.Fatal(err)
	}
	return ten
}

// TestNodeTestsDirect runs every node test straight through the executor.
func TestNodeTestsDirect(t *testing.T) {
	initORT(t)
	dirs, _ := filepath.Glob("../../../testdata/onnx/node/test_*")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			path := filepath.Join(dir, "model.onnx")
			sig, err := onnxmodel.Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := Backend{}.NewExecutor(context.Background(), tritonlite.Instance{Config: &inference.ModelConfig{}, ModelPath: path, Signature: sig})
			if err != nil {
				t.Fatal(err)
			}
			defer ex.Close()
			var ins []tensor.Tensor
			for i, v := range sig.Inputs {
				in := readPB(t, filepath.Join(dir, "test_data_set_0", "input_"+string(rune('0'+i))+".pb"))
				in.Name = v.Name
				ins = append(ins, in)
			}
			var names []string
			for _, v := range sig.Outputs {
				names = append(names, v.Name)
			}
			outs, err := ex.Execute(context.Background(), ins, names)
			if err != nil {
				t.Fatal(err)
			}
			for i := range names {
				want := readPB(t, filepath.Join(dir, "test_data_set_0", "output_"+string(rune('0'+i))+".pb"))
				if err := tensor.Compare(want, outs[i], 1e-5); err != nil {
					t.Errorf("output %s: %v", names[i], err)
				}
			}
		})
	}
}

// TestScalarAndHalfOutputs covers the outputs onnxruntime_go cannot take
// from ONNX Runtime, which tritonlite pre-allocates from the declared shape:
// a rank-0 output (a scalar) and an FP16 output whose symbolic batch dim is
// the input's.
func TestScalarAndHalfOutputs(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	keep0 := &onnx.AttributeProto{Name: new("keepdims"), Type: onnx.AttributeProto_INT.Enum(), I: new(int64(0))}
	to16 := &onnx.AttributeProto{Name: new("to"), Type: onnx.AttributeProto_INT.Enum(), I: new(int64(onnx.TensorProto_FLOAT16))}
	m := onnxtest.Model(
		[]*onnx.ValueInfoProto{onnxtest.Tensor("x", onnx.TensorProto_FLOAT, "N", 3)},
		[]*onnx.ValueInfoProto{onnxtest.Tensor("total", onnx.TensorProto_FLOAT), onnxtest.Tensor("half", onnx.TensorProto_FLOAT16, "N", 3)},
		&onnx.NodeProto{OpType: new("ReduceSum"), Input: []string{"x"}, Output: []string{"total"}, Attribute: []*onnx.AttributeProto{keep0}},
		&onnx.NodeProto{OpType: new("Cast"), Input: []string{"x"}, Output: []string{"half"}, Attribute: []*onnx.AttributeProto{to16}},
	)
	path := filepath.Join(dir, "model.onnx")
	onnxtest.Write(t, path, m)
	sig, err := onnxmodel.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Backend{}.NewExecutor(context.Background(), tritonlite.Instance{Config: &inference.ModelConfig{}, ModelPath: path, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	in := tensor.Of("x", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6.5})
	outs, err := ex.Execute(context.Background(), []tensor.Tensor{in}, []string{"total", "half"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tensor.Compare(tensor.Of("total", nil, []float32{21.5}), outs[0], 1e-6); err != nil {
		t.Errorf("scalar output: %v", err)
	}
	if err := tensor.Compare(tensor.OfFP16("half", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6.5}), outs[1], 0); err != nil {
		t.Errorf("fp16 output: %v", err)
	}
}

// TestDeclaredOutputShapeNotHonoured: models whose declared output shape is
// not the one ONNX Runtime produces serve what ORT produces, as in Triton's
// backend (ORT allocates the outputs). onnxmltools' LightGBM classifier
// declares its label output [1] and ORT gives it one element per row; a
// pre-allocated [1] output failed ("OrtValue shape verification failed").
func TestDeclaredOutputShapeNotHonoured(t *testing.T) {
	initORT(t)
	toInt64 := &onnx.AttributeProto{Name: new("to"), Type: onnx.AttributeProto_INT.Enum(), I: new(int64(onnx.TensorProto_INT64))}
	to16 := &onnx.AttributeProto{Name: new("to"), Type: onnx.AttributeProto_INT.Enum(), I: new(int64(onnx.TensorProto_FLOAT16))}
	relu := func(out string) *onnx.NodeProto {
		return &onnx.NodeProto{OpType: new("Relu"), Input: []string{"x"}, Output: []string{out}}
	}
	for _, tc := range []struct {
		name     string
		declared *onnx.ValueInfoProto // the output "y"
		nodes    []*onnx.NodeProto
		in       tensor.Tensor
		want     tensor.Tensor
		// wantErr: an output onnxruntime_go cannot take from ORT (FP16) is
		// still allocated from its declared shape; when that is wrong, the
		// error says so.
		wantErr string
	}{
		{"label declared [1], batch of 4 (LightGBM)", onnxtest.Tensor("y", onnx.TensorProto_INT64, 1),
			[]*onnx.NodeProto{relu("r"), {OpType: new("Cast"), Input: []string{"r"}, Output: []string{"y"}, Attribute: []*onnx.AttributeProto{toInt64}}},
			tensor.Of("x", []int64{4}, []float32{-1, 2, 3, -4}), tensor.Of("y", []int64{4}, []int64{0, 2, 3, 0}), ""},
		{"label declared [1], batch of 1", onnxtest.Tensor("y", onnx.TensorProto_INT64, 1),
			[]*onnx.NodeProto{relu("r"), {OpType: new("Cast"), Input: []string{"r"}, Output: []string{"y"}, Attribute: []*onnx.AttributeProto{toInt64}}},
			tensor.Of("x", []int64{1}, []float32{5}), tensor.Of("y", []int64{1}, []int64{5}), ""},
		{"fixed dim declared 2, ORT gives 3", onnxtest.Tensor("y", onnx.TensorProto_FLOAT, 2),
			[]*onnx.NodeProto{relu("y")},
			tensor.Of("x", []int64{3}, []float32{-1, 0.5, 7}), tensor.Of("y", []int64{3}, []float32{0, 0.5, 7}), ""},
		{"symbolic dim shared with the input, declared right", onnxtest.Tensor("y", onnx.TensorProto_FLOAT, "N"),
			[]*onnx.NodeProto{relu("y")},
			tensor.Of("x", []int64{2}, []float32{-3, 3}), tensor.Of("y", []int64{2}, []float32{0, 3}), ""},
		{"FP16 declared 2, ORT gives 3", onnxtest.Tensor("y", onnx.TensorProto_FLOAT16, 2),
			[]*onnx.NodeProto{{OpType: new("Cast"), Input: []string{"x"}, Output: []string{"y"}, Attribute: []*onnx.AttributeProto{to16}}},
			tensor.Of("x", []int64{3}, []float32{1, 2, 3}), tensor.Tensor{},
			"(outputs allocated from the model's declared shapes, as onnxruntime_go cannot allocate rank-0 and FP16/BF16 outputs: 'y' [2])"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.onnx")
			onnxtest.Write(t, path, onnxtest.Model([]*onnx.ValueInfoProto{onnxtest.Tensor("x", onnx.TensorProto_FLOAT, "N")},
				[]*onnx.ValueInfoProto{tc.declared}, tc.nodes...))
			sig, err := onnxmodel.Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := Backend{}.NewExecutor(context.Background(), tritonlite.Instance{Config: &inference.ModelConfig{}, ModelPath: path, Signature: sig})
			if err != nil {
				t.Fatal(err)
			}
			defer ex.Close()
			outs, err := ex.Execute(context.Background(), []tensor.Tensor{tc.in}, []string{"y"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v; want one ending %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tensor.Compare(tc.want, outs[0], 0); err != nil {
				t.Error(err)
			}
		})
	}
}
