package tritonlite

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// batchNote is the hint Triton appends to shape errors of batching models.
const batchNote = "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size."

// reservedParams are the request parameters starting with "triton_" that
// Triton accepts.
var reservedParams = []string{"triton_enable_empty_final_response"}

// protocolString is Triton's DataTypeToProtocolString: the protocol name, or
// "<invalid>" for a datatype it does not know.
func protocolString(d tensor.DataType) string {
	if !d.Valid() {
		return "<invalid>"
	}
	return d.String()
}

func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// prepare validates a request against the version's config exactly as
// Triton's request normalization does, with its messages, and turns it into a
// scheduler request: inputs in config order, reshaped for the model.
func (v *version) prepare(ctx context.Context, req *inference.ModelInferRequest, shm *shmManager) (_ *request, err error) {
	model := v.model
	pre := "[request id: " + requestID(req.GetId()) + "] "
	cfg := v.cfg
	mbs := int64(cfg.GetMaxBatchSize())

	r := &request{ctx: ctx, id: req.GetId()}
	defer func() {
		if err != nil {
			shm.releaseAll(r)
		}
	}()
	if err := checkRequestParams(req, r); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, in := range req.GetInputs() {
		if seen[in.GetName()] {
			return nil, invalidArg("%sinput '%s' already exists in request", pre, in.GetName())
		}
		seen[in.GetName()] = true
	}
	seen = map[string]bool{}
	for _, out := range req.GetOutputs() {
		if seen[out.GetName()] {
			return nil, invalidArg("%soutput '%s' already exists in request", pre, out.GetName())
		}
		seen[out.GetName()] = true
		if _, ok := out.GetParameters()["classification"]; ok {
			if _, shm := out.GetParameters()["shared_memory_region"]; shm {
				return nil, invalidArg("output can't set both 'shared_memory_region' and 'classification'")
			}
			return nil, status.Errorf(codes.Unimplemented, "%sclassification outputs are not supported by tritonlite (output '%s')", pre, out.GetName())
		}
	}
	ins, err := shm.requestInputs(req, r)
	if err != nil {
		return nil, err
	}
	if err := shm.requestOutputs(req, r); err != nil {
		return nil, err
	}
	ins = inTritonOrder(ins)

	// Requested outputs, checked in sorted order as Triton does.
	requested := make([]string, 0, len(req.GetOutputs()))
	for _, out := range req.GetOutputs() {
		requested = append(requested, out.GetName())
	}
	sorted := slices.Sorted(slices.Values(requested))
	for _, name := range sorted {
		if _, ok := v.outputs[name]; !ok {
			return nil, invalidArg("unexpected inference output '%s' for model '%s'", name, model)
		}
	}
	if len(requested) == 0 {
		for _, out := range cfg.GetOutput() {
			requested = append(requested, out.GetName())
		}
	}
	r.outputs = requested

	// Input count.
	required := 0
	for _, in := range cfg.GetInput() {
		if !in.GetOptional() {
			required++
		}
	}
	if len(ins) > len(cfg.GetInput()) || len(ins) < required {
		got := "[]"
		if len(ins) > 0 {
			names := make([]string, len(ins))
			for i, t := range ins {
				names[i] = "'" + t.Name + "'"
			}
			got = "[" + strings.Join(names, ",") + "]"
		}
		missing := "["
		for _, in := range cfg.GetInput() {
			if !in.GetOptional() && !seenInput(ins, in.GetName()) {
				missing += "'" + in.GetName() + "',"
			}
		}
		missing = missing[:len(missing)-1] + "]" // Triton's rendering, even when nothing is missing
		if required == len(cfg.GetInput()) {
			return nil, invalidArg("%sexpected %d inputs but got %d inputs for model '%s'. Got input(s) %s, but missing required input(s) %s. Please provide all required input(s).", pre, len(cfg.GetInput()), len(ins), model, got, missing)
		}
		return nil, invalidArg("%sexpected number of inputs between %d and %d but got %d inputs for model '%s'. Got input(s) %s, but missing required input(s) %s. Please provide all required input(s).", pre, required, len(cfg.GetInput()), len(ins), model, got, missing)
	}

	// Names and the batch dimension.
	batch := int64(-1)
	for _, t := range ins {
		if _, ok := v.inputs[t.Name]; !ok {
			return nil, invalidArg("unexpected inference input '%s' for model '%s'", t.Name, model)
		}
		if mbs > 0 {
			if len(t.Shape) == 0 {
				return nil, invalidArg("%sinput '%s' has no shape but model requires batch dimension for '%s'", pre, t.Name, model)
			}
			if batch >= 0 && t.Shape[0] != batch {
				return nil, invalidArg("%sinput '%s' batch size does not match other inputs for '%s'", pre, t.Name, model)
			}
			batch = t.Shape[0]
		}
	}
	if mbs > 0 && batch > mbs {
		return nil, invalidArg("%sinference request batch-size must be <= %d for '%s'", pre, mbs, model)
	}
	r.batch = 1
	if mbs > 0 {
		r.batch = max(batch, 0)
	}

	// Datatype, shape and size of each input.
	byName := make(map[string]tensor.Tensor, len(ins))
	for _, t := range ins {
		in := v.inputs[t.Name]
		want := tensor.FromConfig(in.GetDataType())
		if t.DataType != want {
			return nil, invalidArg("%sinference input '%s' data-type is '%s', but model '%s' expects '%s'", pre, t.Name, protocolString(t.DataType), model, want)
		}
		shape := t.Shape
		if mbs > 0 {
			shape = shape[1:]
		}
		dims := in.GetDims()
		mismatch := len(shape) != len(dims)
		for i := 0; !mismatch && i < len(dims); i++ {
			if shape[i] == -1 {
				return nil, invalidArg("%sAll input dimensions should be specified for input '%s' for model '%s', got %s", pre, t.Name, model, tensor.FormatShape(t.Shape))
			}
			if dims[i] != -1 && dims[i] != shape[i] {
				mismatch = true
			}
		}
		if mismatch {
			full := dims
			note := ""
			if mbs > 0 {
				full = append([]int64{-1}, dims...)
				note = batchNote
			}
			return nil, invalidArg("%sunexpected shape for input '%s' for model '%s'. Expected %s, got %s. %s", pre, t.Name, model, tensor.FormatShape(full), tensor.FormatShape(t.Shape), note)
		}
		if err := checkInputSize(pre, model, t); err != nil {
			return nil, err
		}
		if rs := in.GetReshape(); rs != nil {
			t.Shape = reshaped(t.Shape, rs.GetShape(), mbs > 0)
		}
		byName[t.Name] = t
	}

	// Config order, and the key that decides which requests batch together.
	var key strings.Builder
	for _, in := range cfg.GetInput() {
		t, ok := byName[in.GetName()]
		if !ok {
			continue
		}
		r.inputs = append(r.inputs, t)
		fmt.Fprintf(&key, "%s:%s:", t.Name, t.DataType)
		if len(t.Shape) > 0 {
			key.WriteString(tensor.FormatShape(t.Shape[1:]))
		}
		key.WriteByte(';')
	}
	key.WriteString(strings.Join(r.outputs, ","))
	r.key = key.String()
	if v.seq != nil {
		if err := checkCorrID(v.seq.controls, pre, model, r.seq.id); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func seenInput(ins []tensor.Tensor, name string) bool {
	for _, t := range ins {
		if t.Name == name {
			return true
		}
	}
	return false
}

// checkInputSize is Triton's byte-size check for one input.
func checkInputSize(pre, model string, t tensor.Tensor) error {
	n, err := tensor.ElementCount(t.Shape)
	if err != nil {
		return invalidArg("tensor '%s' contains an invalid dimension in shape %s", t.Name, tensor.FormatShape(t.Shape))
	}
	if t.DataType != tensor.Bytes {
		want, err := tensor.ByteSize(t.DataType, t.Shape)
		if err != nil {
			return invalidArg("byte size for tensor '%s' exceeds maximum size of 9223372036854775807", t.Name)
		}
		if int64(len(t.Data)) != want {
			return invalidArg("%sinput byte size mismatch for input '%s' for model '%s'. Expected %d, got %d", pre, t.Name, model, want, len(t.Data))
		}
		return nil
	}
	// BYTES: walk the length-prefixed elements as Triton's ValidateBytesInputs does.
	var count int64
	data := t.Data
	for len(data) > 0 {
		if len(data) < 4 {
			return invalidArg("%sincomplete string length indicator for inference input '%s' for model '%s', expecting 4 bytes but only %d bytes available. Please make sure the string length indicator is in one buffer.", pre, t.Name, model, len(data))
		}
		if count >= n {
			return invalidArg("%sunexpected number of string elements %d for inference input '%s' for model '%s', expecting %d", pre, count+1, t.Name, model, n)
		}
		l := int(binary.LittleEndian.Uint32(data))
		data = data[4:]
		count++
		if l > len(data) {
			l = len(data)
		}
		data = data[l:]
	}
	if count != n {
		return invalidArg("%sexpected %d string elements for inference input '%s' for model '%s', got %d", pre, n, t.Name, model, count)
	}
	return nil
}

// reshaped applies a config reshape: the model sees [batch] + shape, with the
// request's variable dims filling the reshape's -1s in order.
func reshaped(reqShape, shape []int64, batching bool) []int64 {
	var wild []int64
	rest := reqShape
	if batching && len(rest) > 0 {
		rest = rest[1:]
	}
	wild = append(wild, rest...)
	out := make([]int64, 0, len(shape)+1)
	if batching && len(reqShape) > 0 {
		out = append(out, reqShape[0])
	}
	w := 0
	for _, d := range shape {
		if d == -1 && w < len(wild) {
			d = wild[w]
			w++
		}
		out = append(out, d)
	}
	return out
}

// reportShape is the shape of an output as Triton reports it: the config's
// dims (after the batch dimension) when the model's own shape differs only
// by a reshape or a scalar, else the model's shape.
func reportShape(out *inference.ModelOutput, t tensor.Tensor, batch int64, batching bool) []int64 {
	dims := out.GetDims()
	want := dims
	if batching {
		want = append([]int64{batch}, dims...)
	}
	if slices.Equal(want, t.Shape) || slices.Contains(dims, -1) {
		return t.Shape
	}
	a, errA := tensor.ElementCount(want)
	b, errB := tensor.ElementCount(t.Shape)
	if errA == nil && errB == nil && a == b {
		return want
	}
	return t.Shape
}

// checkRequestParams validates request parameters the way Triton's gRPC
// frontend does and takes the queue timeout.
func checkRequestParams(req *inference.ModelInferRequest, r *request) error {
	for key, p := range req.GetParameters() {
		switch key {
		case "timeout":
			v, ok := p.GetParameterChoice().(*inference.InferParameter_Int64Param)
			if !ok {
				return invalidArg("invalid value type for 'timeout' parameter, expected int64_param.")
			}
			r.timeout = time.Duration(v.Int64Param) * time.Microsecond
		case "priority":
			switch v := p.GetParameterChoice().(type) {
			case *inference.InferParameter_Int64Param:
				if v.Int64Param < 0 {
					return invalidArg("invalid value for 'priority', expected value >= 0.")
				}
			case *inference.InferParameter_Uint64Param:
			default:
				return invalidArg("invalid value type for 'priority' parameter, expected int64_param or uint64_param.")
			}
		case "sequence_id":
			switch v := p.GetParameterChoice().(type) {
			case *inference.InferParameter_Int64Param:
				r.seq.id = seqID{num: uint64(v.Int64Param)}
			case *inference.InferParameter_StringParam:
				if len(v.StringParam) > maxStringSeqID {
					return status.Error(codes.Unimplemented, "string correlation ID cannot be longer than 128 characters")
				}
				r.seq.id = seqID{str: v.StringParam, isStr: true}
			default:
				return invalidArg("invalid value type for 'sequence_id' parameter, expected int64_param or string_param.")
			}
		case "sequence_start", "sequence_end":
			v, ok := p.GetParameterChoice().(*inference.InferParameter_BoolParam)
			if !ok {
				return invalidArg("invalid value type for '%s' parameter, expected bool_param.", key)
			}
			if key == "sequence_start" {
				r.seq.start = v.BoolParam
			} else {
				r.seq.end = v.BoolParam
			}
		case "triton_enable_empty_final_response":
			if _, ok := p.GetParameterChoice().(*inference.InferParameter_BoolParam); !ok {
				return invalidArg("invalid value type for 'triton_enable_empty_final_response' parameter, expected bool_param.")
			}
		default:
			if strings.HasPrefix(key, "triton_") && !slices.Contains(reservedParams, key) {
				return invalidArg("parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting with 'triton_' are allowed: %s", strings.Join(reservedParams, " "))
			}
			// Triton 2.51 takes int64, bool, string and double parameters
			// (its message still names only the first three).
			switch p.GetParameterChoice().(type) {
			case *inference.InferParameter_Uint64Param, nil:
				return invalidArg("invalid value type for '%s' parameter, expected int64_param, bool_param, or string_param.", key)
			}
		}
	}
	return nil
}

// response builds a ModelInferResponse from a version's outputs.
func (v *version) response(req *inference.ModelInferRequest, r *request, outs []tensor.Tensor) *inference.ModelInferResponse {
	batching := v.cfg.GetMaxBatchSize() > 0
	for i := range outs {
		if cfgOut, ok := v.outputs[outs[i].Name]; ok {
			outs[i].Shape = reportShape(cfgOut, outs[i], r.batch, batching)
		}
	}
	resp := &inference.ModelInferResponse{ModelName: v.model, ModelVersion: v.label, Id: req.GetId()}
	tensor.SetResponseOutputs(resp, outs)
	return resp
}
