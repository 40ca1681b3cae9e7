package tensor

import (
	"fmt"

	"github.com/tritongate/tritongate/proto/inference"
)

// RequestInputs decodes the input tensors of a ModelInferRequest the way
// Triton's gRPC frontend does: an input carries its data either in its typed
// `contents` (packed into raw layout here) or, in order, in the request's
// raw_input_contents; the two cannot be mixed, and raw entries beyond the
// inputs are ignored. A datatype Triton does not know is Invalid here (the
// model's datatype check reports it, as Triton's does). Errors use Triton's
// messages and name the input. Sizes and shapes are not checked against each
// other here (Validate, or a model-aware check, does that); the returned
// tensors alias the request's raw buffers.
func RequestInputs(req *inference.ModelInferRequest) ([]Tensor, error) {
	model := req.GetModelName()
	raw := req.GetRawInputContents()
	out := make([]Tensor, 0, len(req.GetInputs()))
	next := 0
	for _, in := range req.GetInputs() {
		name := in.GetName()
		dt, _ := Parse(in.GetDatatype())
		t := Tensor{Name: name, DataType: dt, Shape: in.GetShape()}
		switch {
		case in.GetContents() != nil && len(raw) > 0:
			return nil, fmt.Errorf("contents field must not be specified when using raw_input_contents for '%s' for model '%s'", name, model)
		case in.GetContents() != nil:
			data, err := requestContents(name, model, dt, in.GetContents())
			if err != nil {
				return nil, err
			}
			t.Data = data
		case next < len(raw):
			t.Data = raw[next]
			next++
		default:
			return nil, fmt.Errorf("unable to find data for input tensor '%s' for model '%s' in request.", name, model)
		}
		out = append(out, t)
	}
	return out, nil
}

// tritonName is a datatype as Triton's TRITONSERVER_DataTypeString writes it.
func tritonName(dt DataType) string {
	if !dt.Valid() {
		return "<invalid>"
	}
	return dt.String()
}

// requestContents packs an input's typed contents into raw layout as
// Triton's frontend does: each populated field, in field order, must be the
// input's datatype (int_contents and uint_contents carry INT8/INT16 and
// UINT8/UINT16 when the input is declared so, and are truncated to them),
// and only one field may hold data.
func requestContents(name, model string, dt DataType, c *inference.InferTensorContents) ([]byte, error) {
	narrow := func(field DataType, candidates ...DataType) DataType {
		for _, d := range candidates {
			if dt == d {
				return d
			}
		}
		return field
	}
	fields := []struct {
		dt DataType
		n  int
	}{
		{Bool, len(c.GetBoolContents())},
		{narrow(Int32, Int8, Int16), len(c.GetIntContents())},
		{Int64, len(c.GetInt64Contents())},
		{narrow(Uint32, Uint8, Uint16), len(c.GetUintContents())},
		{Uint64, len(c.GetUint64Contents())},
		{FP32, len(c.GetFp32Contents())},
		{FP64, len(c.GetFp64Contents())},
		{Bytes, len(c.GetBytesContents())},
	}
	supplied := false
	for _, f := range fields {
		if f.n == 0 {
			continue
		}
		if supplied {
			return nil, fmt.Errorf("unexpected explicit tensor data for input tensor '%s' for model '%s', binary data was already supplied.", name, model)
		}
		if f.dt != dt {
			return nil, fmt.Errorf("unexpected explicit tensor data for input tensor '%s' for model '%s' of type '%s', expected datatype '%s'", name, model, tritonName(f.dt), tritonName(dt))
		}
		supplied = true
	}
	if !supplied {
		return []byte{}, nil // contents without values: no data (the size check reports it)
	}
	sz := dt.Size()
	switch dt {
	case Int8, Int16: // the low bytes of each value, as Triton takes them
		v := c.GetIntContents()
		data := make([]byte, len(v)*sz)
		for i, x := range v {
			putInt(data[i*sz:], sz, uint64(x))
		}
		return data, nil
	case Uint8, Uint16:
		v := c.GetUintContents()
		data := make([]byte, len(v)*sz)
		for i, x := range v {
			putInt(data[i*sz:], sz, uint64(x))
		}
		return data, nil
	}
	data, err := FromContents(dt, c)
	if err != nil {
		return nil, fmt.Errorf("unexpected explicit tensor data for input tensor '%s' for model '%s': %w", name, model, err)
	}
	return data, nil
}

// SetRequestInputs writes tensors into req as inputs with raw_input_contents
// (the compact encoding every Triton client uses). Data is not copied.
func SetRequestInputs(req *inference.ModelInferRequest, ts []Tensor) {
	req.Inputs = make([]*inference.ModelInferRequest_InferInputTensor, len(ts))
	req.RawInputContents = make([][]byte, len(ts))
	for i, t := range ts {
		req.Inputs[i] = &inference.ModelInferRequest_InferInputTensor{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape}
		req.RawInputContents[i] = t.Data
	}
}

// ResponseOutputs decodes the outputs of a ModelInferResponse, from
// raw_output_contents (Triton's choice) or typed contents.
func ResponseOutputs(resp *inference.ModelInferResponse) ([]Tensor, error) {
	raw := resp.GetRawOutputContents()
	if len(raw) > 0 && len(raw) != len(resp.GetOutputs()) {
		return nil, fmt.Errorf("response has %d outputs but %d raw_output_contents", len(resp.GetOutputs()), len(raw))
	}
	out := make([]Tensor, len(resp.GetOutputs()))
	for i, o := range resp.GetOutputs() {
		dt, ok := Parse(o.GetDatatype())
		if !ok {
			return nil, fmt.Errorf("output '%s' has unknown datatype '%s'", o.GetName(), o.GetDatatype())
		}
		t := Tensor{Name: o.GetName(), DataType: dt, Shape: o.GetShape()}
		switch {
		case len(raw) > 0:
			t.Data = raw[i]
		case o.GetContents() != nil:
			data, err := FromContents(dt, o.GetContents())
			if err != nil {
				return nil, fmt.Errorf("output '%s': %w", o.GetName(), err)
			}
			t.Data = data
		}
		out[i] = t
	}
	return out, nil
}

// SetResponseOutputs writes tensors into resp as outputs with
// raw_output_contents, as Triton does. Data is not copied.
func SetResponseOutputs(resp *inference.ModelInferResponse, ts []Tensor) {
	resp.Outputs = make([]*inference.ModelInferResponse_InferOutputTensor, len(ts))
	resp.RawOutputContents = make([][]byte, len(ts))
	for i, t := range ts {
		resp.Outputs[i] = &inference.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape}
		resp.RawOutputContents[i] = t.Data
	}
}
