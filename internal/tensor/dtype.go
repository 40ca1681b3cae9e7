// Package tensor is tritongate's single model of a Triton tensor: the datatypes of
// the KServe v2 / Triton protocol, their sizes, the raw little-endian wire layout
// (raw_input_contents / raw_output_contents), the typed InferTensorContents fields,
// shape validation, batching (concatenate and split along the first dimension) and
// conversion to and from ONNX TensorProto.
//
// A Tensor's Data always holds Triton's raw layout: fixed-size elements packed
// little-endian in row-major order, and for BYTES each element as a 4-byte
// little-endian length followed by that many bytes.
package tensor

import (
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

// DataType is a Triton tensor datatype.
type DataType uint8

// The Triton datatypes. Invalid is the zero value.
const (
	Invalid DataType = iota
	Bool
	Uint8
	Uint16
	Uint32
	Uint64
	Int8
	Int16
	Int32
	Int64
	FP16
	FP32
	FP64
	Bytes
	BF16
)

// All lists every valid datatype, in protocol order.
var All = []DataType{Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, FP16, FP32, FP64, Bytes, BF16}

var names = [...]string{
	Invalid: "INVALID",
	Bool:    "BOOL",
	Uint8:   "UINT8",
	Uint16:  "UINT16",
	Uint32:  "UINT32",
	Uint64:  "UINT64",
	Int8:    "INT8",
	Int16:   "INT16",
	Int32:   "INT32",
	Int64:   "INT64",
	FP16:    "FP16",
	FP32:    "FP32",
	FP64:    "FP64",
	Bytes:   "BYTES",
	BF16:    "BF16",
}

var sizes = [...]int{
	Bool: 1, Uint8: 1, Uint16: 2, Uint32: 4, Uint64: 8,
	Int8: 1, Int16: 2, Int32: 4, Int64: 8,
	FP16: 2, FP32: 4, FP64: 8, BF16: 2,
}

// String returns the protocol name ("FP32", "BYTES", ...), the string used in
// ModelInferRequest.InferInputTensor.datatype and in model metadata.
func (d DataType) String() string {
	if int(d) < len(names) {
		return names[d]
	}
	return "INVALID"
}

// Valid reports whether d is one of the Triton datatypes.
func (d DataType) Valid() bool { return d > Invalid && d <= BF16 }

// Size is the size in bytes of one element, or 0 for BYTES (variable-sized) and Invalid.
func (d DataType) Size() int {
	if int(d) < len(sizes) {
		return sizes[d]
	}
	return 0
}

// Fixed reports whether elements of d have a fixed size (every valid type but BYTES).
func (d DataType) Fixed() bool { return d.Size() > 0 }

// Parse maps a protocol datatype name to a DataType. It is case-sensitive, as
// Triton is: "FP32" is valid, "fp32" is not.
func Parse(s string) (DataType, bool) {
	for i, n := range names {
		if n == s && i != int(Invalid) {
			return DataType(i), true
		}
	}
	return Invalid, false
}

// FromConfig maps a model_config.proto DataType (TYPE_FP32, TYPE_STRING, ...) to a
// protocol datatype. TYPE_STRING is BYTES on the wire.
func FromConfig(t inference.DataType) DataType {
	switch t {
	case inference.DataType_TYPE_BOOL:
		return Bool
	case inference.DataType_TYPE_UINT8:
		return Uint8
	case inference.DataType_TYPE_UINT16:
		return Uint16
	case inference.DataType_TYPE_UINT32:
		return Uint32
	case inference.DataType_TYPE_UINT64:
		return Uint64
	case inference.DataType_TYPE_INT8:
		return Int8
	case inference.DataType_TYPE_INT16:
		return Int16
	case inference.DataType_TYPE_INT32:
		return Int32
	case inference.DataType_TYPE_INT64:
		return Int64
	case inference.DataType_TYPE_FP16:
		return FP16
	case inference.DataType_TYPE_FP32:
		return FP32
	case inference.DataType_TYPE_FP64:
		return FP64
	case inference.DataType_TYPE_STRING:
		return Bytes
	case inference.DataType_TYPE_BF16:
		return BF16
	}
	return Invalid
}

// Config maps d to its model_config.proto enum value (BYTES → TYPE_STRING).
func (d DataType) Config() inference.DataType {
	switch d {
	case Bool:
		return inference.DataType_TYPE_BOOL
	case Uint8:
		return inference.DataType_TYPE_UINT8
	case Uint16:
		return inference.DataType_TYPE_UINT16
	case Uint32:
		return inference.DataType_TYPE_UINT32
	case Uint64:
		return inference.DataType_TYPE_UINT64
	case Int8:
		return inference.DataType_TYPE_INT8
	case Int16:
		return inference.DataType_TYPE_INT16
	case Int32:
		return inference.DataType_TYPE_INT32
	case Int64:
		return inference.DataType_TYPE_INT64
	case FP16:
		return inference.DataType_TYPE_FP16
	case FP32:
		return inference.DataType_TYPE_FP32
	case FP64:
		return inference.DataType_TYPE_FP64
	case Bytes:
		return inference.DataType_TYPE_STRING
	case BF16:
		return inference.DataType_TYPE_BF16
	}
	return inference.DataType_TYPE_INVALID
}

// FromONNX maps an ONNX TensorProto.DataType to a Triton datatype, as Triton's ONNX
// Runtime backend does (STRING → BYTES). Types Triton cannot carry (complex, float8,
// int4, ...) map to Invalid.
func FromONNX(t onnx.TensorProto_DataType) DataType {
	switch t {
	case onnx.TensorProto_FLOAT:
		return FP32
	case onnx.TensorProto_UINT8:
		return Uint8
	case onnx.TensorProto_INT8:
		return Int8
	case onnx.TensorProto_UINT16:
		return Uint16
	case onnx.TensorProto_INT16:
		return Int16
	case onnx.TensorProto_INT32:
		return Int32
	case onnx.TensorProto_INT64:
		return Int64
	case onnx.TensorProto_STRING:
		return Bytes
	case onnx.TensorProto_BOOL:
		return Bool
	case onnx.TensorProto_FLOAT16:
		return FP16
	case onnx.TensorProto_DOUBLE:
		return FP64
	case onnx.TensorProto_UINT32:
		return Uint32
	case onnx.TensorProto_UINT64:
		return Uint64
	case onnx.TensorProto_BFLOAT16:
		return BF16
	}
	return Invalid
}

// ONNX maps d to the ONNX TensorProto.DataType (BYTES → STRING).
func (d DataType) ONNX() onnx.TensorProto_DataType {
	switch d {
	case Bool:
		return onnx.TensorProto_BOOL
	case Uint8:
		return onnx.TensorProto_UINT8
	case Uint16:
		return onnx.TensorProto_UINT16
	case Uint32:
		return onnx.TensorProto_UINT32
	case Uint64:
		return onnx.TensorProto_UINT64
	case Int8:
		return onnx.TensorProto_INT8
	case Int16:
		return onnx.TensorProto_INT16
	case Int32:
		return onnx.TensorProto_INT32
	case Int64:
		return onnx.TensorProto_INT64
	case FP16:
		return onnx.TensorProto_FLOAT16
	case FP32:
		return onnx.TensorProto_FLOAT
	case FP64:
		return onnx.TensorProto_DOUBLE
	case Bytes:
		return onnx.TensorProto_STRING
	case BF16:
		return onnx.TensorProto_BFLOAT16
	}
	return onnx.TensorProto_UNDEFINED
}
