package tensor

import (
	"fmt"

	"github.com/tritongate/tritongate/proto/inference"
)

// RequestInputs decodes the input tensors of a ModelInferRequest the way
// Triton's gRPC frontend does: an input carries its data either in its typed
// `contents` (packed into raw layout here) or, in order, in the request's
// raw_input_contents; the two cannot be mixed. Errors use Triton's messages
// and name the input. Sizes and shapes are not checked against each other here
// (Validate, or a model-aware check, does that); the returned tensors alias
// the request's raw buffers.
func RequestInputs(req *inference.ModelInferRequest) ([]Tensor, error) {
	model := req.GetModelName()
	raw := req.GetRawInputContents()
	out := make([]Tensor, 0, len(req.GetInputs()))
	next := 0
	for _, in := range req.GetInputs() {
		name := in.GetName()
		dt, ok := Parse(in.GetDatatype())
		if !ok {
			return nil, fmt.Errorf("inference input '%s' has unknown datatype '%s' for model '%s'", name, in.GetDatatype(), model)
		}
		t := Tensor{Name: name, DataType: dt, Shape: in.GetShape()}
		switch {
		case in.GetContents() != nil && len(raw) > 0:
			return nil, fmt.Errorf("contents field must not be specified when using raw_input_contents for '%s' for model '%s'", name, model)
		case in.GetContents() != nil:
			data, err := FromContents(dt, in.GetContents())
			if err != nil {
				return nil, fmt.Errorf("unexpected explicit tensor data for input tensor '%s' for model '%s': %w", name, model, err)
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
	if next < len(raw) {
		return nil, fmt.Errorf("model '%s': %d raw_input_contents entries for %d inputs", model, len(raw), next)
	}
	return out, nil
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
