// Package onnxtest builds small ONNX models for tests: a graph of declared
// inputs and outputs (and optionally nodes and initializers), serialized with
// the generated ONNX protos. The models are for metadata tests; they run in
// ONNX Runtime only when their nodes make a valid graph (see Identity).
package onnxtest

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/proto/onnx"
)

// Dim is a dimension for Tensor: an int is a fixed size, a string a symbolic
// name, nil an unknown dimension.
type Dim = any

// Tensor declares a tensor-typed graph value. With no dims the tensor has a
// rank-0 shape; use NoShape for a tensor without shape information.
func Tensor(name string, elem onnx.TensorProto_DataType, dims ...Dim) *onnx.ValueInfoProto {
	shape := &onnx.TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		case string:
			shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		default:
			shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{})
		}
	}
	return &onnx.ValueInfoProto{Name: new(name), Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: new(int32(elem)), Shape: shape}}}}
}

// NoShape declares a tensor without shape information.
func NoShape(name string, elem onnx.TensorProto_DataType) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{Name: new(name), Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: new(int32(elem))}}}}
}

// Sequence declares a sequence-of-tensors graph value.
func Sequence(name string) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{Name: new(name), Type: &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{SequenceType: &onnx.TypeProto_Sequence{}}}}
}

// Model returns a model around a graph with these inputs and outputs.
func Model(inputs, outputs []*onnx.ValueInfoProto, nodes ...*onnx.NodeProto) *onnx.ModelProto {
	return &onnx.ModelProto{
		IrVersion:    new(int64(8)),
		ProducerName: new("onnxtest"),
		OpsetImport:  []*onnx.OperatorSetIdProto{{Domain: new(""), Version: new(int64(17))}},
		Graph:        &onnx.GraphProto{Name: new("g"), Input: inputs, Output: outputs, Node: nodes},
	}
}

// Identity returns a runnable model whose output i is Identity(input i): same
// names with "in"→"out" left to the caller: inputs[i] feeds outputs[i].
func Identity(inputs, outputs []*onnx.ValueInfoProto) *onnx.ModelProto {
	var nodes []*onnx.NodeProto
	for i := range inputs {
		nodes = append(nodes, &onnx.NodeProto{OpType: new("Identity"), Input: []string{inputs[i].GetName()}, Output: []string{outputs[i].GetName()}})
	}
	return Model(inputs, outputs, nodes...)
}

// Write serializes m to path, creating parent directories.
func Write(t testing.TB, path string, m *onnx.ModelProto) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
