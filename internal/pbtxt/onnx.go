package pbtxt

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// checkTensorKinds rejects models with non-tensor inputs or outputs, which
// Triton's ONNX Runtime backend cannot serve.
func checkTensorKinds(m *onnxmodel.Model) Problems {
	var ps Problems
	for _, v := range append(slices.Clone(m.Inputs), m.Outputs...) {
		if v.Kind == onnxmodel.KindTensor {
			continue
		}
		kind := map[onnxmodel.Kind]string{
			onnxmodel.KindSequence: "ONNX_TYPE_SEQUENCE", onnxmodel.KindMap: "ONNX_TYPE_MAP",
			onnxmodel.KindOpaque: "ONNX_TYPE_OPAQUE", onnxmodel.KindSparseTensor: "ONNX_TYPE_SPARSETENSOR",
			onnxmodel.KindOptional: "ONNX_TYPE_OPTIONAL",
		}[v.Kind]
		if kind == "" {
			kind = "ONNX_TYPE_UNKNOWN"
		}
		ps = append(ps, Problem{Code: codes.Unimplemented, Msg: fmt.Sprintf("Unsupported ONNX Type '%s' for I/O '%s', expected 'ONNX_TYPE_TENSOR'.", kind, v.Name)})
	}
	return ps
}

// batchable reports whether every model input and output has a leading
// variable dimension, which is what lets Triton batch it.
func batchable(m *onnxmodel.Model) bool {
	for _, v := range append(slices.Clone(m.Inputs), m.Outputs...) {
		if len(v.Dims) == 0 || v.Dims[0] != wildcardDim {
			return false
		}
	}
	return true
}

// autofillONNX is the ONNX Runtime backend's auto-complete (rules §3 steps
// 6-9): max_batch_size, a dynamic batcher, and whichever of the input and
// output lists is empty. Tensors are listed in graph order (Triton's order is
// that of a hash map, so no client may rely on it).
func autofillONNX(cfg *inference.ModelConfig, m *onnxmodel.Model, defaultMaxBatchSize int) Problems {
	inCount := len(cfg.Input) + len(cfg.BatchInput)
	outCount := len(cfg.Output)
	if inCount > 0 && outCount > 0 {
		return nil
	}
	canBatch := batchable(m)
	if canBatch && cfg.MaxBatchSize == 0 {
		cfg.MaxBatchSize = int32(max(defaultMaxBatchSize, 0))
	}
	if canBatch && cfg.MaxBatchSize > 1 && cfg.GetDynamicBatching() == nil && cfg.GetSequenceBatching() == nil && cfg.GetEnsembleScheduling() == nil {
		cfg.SchedulingChoice = &inference.ModelConfig_DynamicBatching{DynamicBatching: &inference.ModelDynamicBatching{}}
	}
	if !canBatch && cfg.MaxBatchSize != 0 {
		return Problems{invalid("max_batch_size", "autofill failed for model '%s': model does not support batching while non-zero max_batch_size is specified", cfg.Name)}
	}
	dims := func(v onnxmodel.Value) ([]int64, *inference.ModelTensorReshape) {
		d := slices.Clone(v.Dims)
		if cfg.MaxBatchSize > 0 && len(d) > 0 {
			d = d[1:]
		}
		if len(d) > 0 {
			return d, nil
		}
		if cfg.MaxBatchSize > 0 {
			return []int64{1}, &inference.ModelTensorReshape{}
		}
		return []int64{1}, nil
	}
	if inCount == 0 {
		for _, v := range m.Inputs {
			d, r := dims(v)
			cfg.Input = append(cfg.Input, &inference.ModelInput{Name: v.Name, DataType: v.DataType, Dims: d, Reshape: r})
		}
	}
	if outCount == 0 {
		for _, v := range m.Outputs {
			d, r := dims(v)
			cfg.Output = append(cfg.Output, &inference.ModelOutput{Name: v.Name, DataType: v.DataType, Dims: d, Reshape: r})
		}
	}
	return nil
}

// checkAgainstModel is what ONNX Runtime's backend checks when it creates a
// model instance (ValidateInputs / ValidateOutputs; rules D.19-D.23).
func checkAgainstModel(cfg *inference.ModelConfig, m *onnxmodel.Model) Problems {
	name := cfg.Name
	mbs := cfg.MaxBatchSize
	prefix := "unable to load model '" + name + "', "

	expected := len(cfg.Input) + len(cfg.BatchInput) + len(cfg.GetSequenceBatching().GetState())
	for _, in := range cfg.Input {
		if in.Optional {
			expected--
		}
	}
	expected += len(sequenceControlKinds(cfg))
	if expected != len(m.Inputs) {
		return Problems{invalid("input", "%sconfiguration expects %d inputs, model provides %d", prefix, expected, len(m.Inputs))}
	}

	var ps Problems
	allowedIn := append(onnxmodel.SortedNames(m.Inputs), onnxmodel.SortedNames(m.OverridableInitializers)...)
	slices.Sort(allowedIn)
	for i, in := range cfg.Input {
		path := fmt.Sprintf("input[%d]", i)
		if in.Optional && mbs != 0 {
			ps = append(ps, invalid(path+".optional", "%soptional input '%s' is not supported for models that support batching", prefix, in.Name))
			continue
		}
		mv, ok := m.Input(in.Name)
		if !ok {
			mv, ok = findValue(m.OverridableInitializers, in.Name)
		}
		if !ok {
			ps = append(ps, invalid(path+".name", "unexpected inference input '%s', allowed inputs are: %s", in.Name, strings.Join(allowedIn, ", ")))
			continue
		}
		if p, ok := checkDataType(path, prefix, "input", name, in.Name, in.DataType, mv); !ok {
			ps = append(ps, p)
			continue
		}
		dims := in.Dims
		if in.Reshape != nil {
			dims = in.Reshape.Shape
		}
		if in.AllowRaggedBatch {
			if in.Optional {
				ps = append(ps, invalid(path+".allow_ragged_batch", "%sconfiguration expects model provides input with shape [-1] for ragged input '%s', which is not supported for optional input", prefix, in.Name))
			} else if !slices.Equal(mv.Dims, []int64{-1}) {
				// Triton's message really has two spaces after "[-1]".
				ps = append(ps, invalid(path+".allow_ragged_batch", "%sconfiguration expects model provides input with shape [-1]  for ragged input '%s', model provides %s", prefix, in.Name, tensor.FormatShape(mv.Dims)))
			}
			continue
		}
		if p, ok := compareDims(path+".dims", prefix, name, in.Name, mv.Dims, dims, mbs, false); !ok {
			ps = append(ps, p)
		}
	}

	allowedOut := onnxmodel.SortedNames(m.Outputs)
	batchTargets := map[string]bool{}
	for _, bo := range cfg.BatchOutput {
		for _, t := range bo.TargetName {
			batchTargets[t] = true
		}
	}
	for i, out := range cfg.Output {
		path := fmt.Sprintf("output[%d]", i)
		mv, ok := m.Output(out.Name)
		if !ok {
			ps = append(ps, invalid(path+".name", "unexpected inference output '%s', allowed outputs are: %s", out.Name, strings.Join(allowedOut, ", ")))
			continue
		}
		if p, ok := checkDataType(path, prefix, "output", name, out.Name, out.DataType, mv); !ok {
			ps = append(ps, p)
			continue
		}
		if batchTargets[out.Name] {
			continue
		}
		dims := out.Dims
		if out.Reshape != nil {
			dims = out.Reshape.Shape
		}
		if p, ok := compareDims(path+".dims", prefix, name, out.Name, mv.Dims, dims, mbs, true); !ok {
			ps = append(ps, p)
		}
	}
	return ps
}

func findValue(vs []onnxmodel.Value, name string) (onnxmodel.Value, bool) {
	for _, v := range vs {
		if v.Name == name {
			return v, true
		}
	}
	return onnxmodel.Value{}, false
}

// sequenceControlKinds returns the START/END/READY/CORRID controls present.
func sequenceControlKinds(cfg *inference.ModelConfig) map[inference.ModelSequenceBatching_Control_Kind]bool {
	kinds := map[inference.ModelSequenceBatching_Control_Kind]bool{}
	for _, ci := range cfg.GetSequenceBatching().GetControlInput() {
		for _, c := range ci.GetControl() {
			switch c.GetKind() {
			case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_START, inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_END,
				inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_READY, inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID:
				kinds[c.GetKind()] = true
			}
		}
	}
	return kinds
}

func checkDataType(path, prefix, kind, model, io string, dt inference.DataType, mv onnxmodel.Value) (Problem, bool) {
	if tensor.FromConfig(dt) == tensor.Invalid {
		return Problem{Path: path + ".data_type", Code: codes.Internal, Msg: fmt.Sprintf("unsupported datatype %s for %s '%s' for model '%s'", dt, kind, io, model)}, false
	}
	if dt != mv.DataType {
		// The model side is printed with protocol names (TYPE_BYTES, TYPE_<invalid>), as Triton does.
		have := "TYPE_" + tensor.FromONNX(mv.ElemType).String()
		if tensor.FromONNX(mv.ElemType) == tensor.Invalid {
			have = "TYPE_<invalid>"
		}
		return invalid(path+".data_type", "%sconfiguration expects datatype %s for %s '%s', model provides %s", prefix, dt, kind, io, have), false
	}
	return Problem{}, true
}

// compareDims is CompareDimsSupported plus the rank-0 rule: inputs match a
// model -1 with anything, outputs must be identical.
func compareDims(path, prefix, model, io string, modelDims, dims []int64, mbs int32, exact bool) (Problem, bool) {
	if len(modelDims) == 0 {
		for _, d := range dims {
			if d != 1 {
				return invalid(path, "%sscalar tensor '%s', should only provide 1 in the model configuration when the model doesn't support batching. Model configuration provided: %s.", prefix, io, tensor.FormatShape(dims)), false
			}
		}
		return Problem{}, true
	}
	head := fmt.Sprintf("model '%s', tensor '%s': ", model, io)
	full := dims
	if mbs > 0 {
		if modelDims[0] != wildcardDim {
			return invalid(path, "%sfor the model to support batching the shape should have at least 1 dimension and the first dimension must be -1; but shape expected by the model is %s", head, tensor.FormatShape(modelDims)), false
		}
		full = append([]int64{wildcardDim}, dims...)
	}
	mismatch := len(modelDims) != len(full)
	for i := 0; !mismatch && i < len(full); i++ {
		if (exact || modelDims[i] != wildcardDim) && modelDims[i] != full[i] {
			mismatch = true
		}
	}
	if !mismatch {
		return Problem{}, true
	}
	if mbs > 0 {
		return invalid(path, "%sthe model expects %d dimensions (shape %s) but the model configuration specifies %d dimensions (an initial batch dimension because max_batch_size > 0 followed by the explicit tensor shape, making complete shape %s)", head, len(modelDims), tensor.FormatShape(modelDims), len(full), tensor.FormatShape(full)), false
	}
	return invalid(path, "%sthe model expects %d dimensions (shape %s) but the model configuration specifies %d dimensions (shape %s)", head, len(modelDims), tensor.FormatShape(modelDims), len(dims), tensor.FormatShape(dims)), false
}
