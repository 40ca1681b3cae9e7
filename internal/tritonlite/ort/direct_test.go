package ort

import (
	"context"
	"os"
	"path/filepath"
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

// TestScalarAndHalfOutputs covers the outputs onnxruntime_go cannot allocate
// itself: a rank-0 output (pre-allocated as a scalar) and an FP16 output whose
// shape is only known after running (computed twice).
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
