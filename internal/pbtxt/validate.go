package pbtxt

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/tritongate/tritongate/proto/inference"
)

// Platforms, backends and file names Triton knows (core constants.h).
const (
	PlatformONNX           = "onnxruntime_onnx"
	PlatformTensorRT       = "tensorrt_plan"
	PlatformTFGraphDef     = "tensorflow_graphdef"
	PlatformTFSavedModel   = "tensorflow_savedmodel"
	PlatformPyTorch        = "pytorch_libtorch"
	PlatformEnsemble       = "ensemble"
	BackendONNX            = "onnxruntime"
	BackendTensorRT        = "tensorrt"
	BackendTensorFlow      = "tensorflow"
	BackendPyTorch         = "pytorch"
	BackendOpenVINO        = "openvino"
	BackendPython          = "python"
	FilenameONNX           = "model.onnx"
	FilenameTensorRT       = "model.plan"
	FilenameTFGraphDef     = "model.graphdef"
	FilenameTFSavedModel   = "model.savedmodel"
	FilenamePyTorch        = "model.pt"
	FilenameOpenVINO       = "model.xml"
	FilenamePython         = "model.py"
	ConfigFile             = "config.pbtxt"
	defaultSequenceIdleUS  = 1000000
	wildcardDim            = -1
	wildcardDimDescription = "-1 to indicate a variable-size dimension"
)

// backendOfPlatform is GetBackendTypeFromPlatform: "" for unknown platforms.
func backendOfPlatform(platform string) string {
	switch platform {
	case PlatformTFGraphDef, PlatformTFSavedModel:
		return BackendTensorFlow
	case PlatformTensorRT:
		return BackendTensorRT
	case PlatformONNX:
		return BackendONNX
	case PlatformPyTorch:
		return BackendPyTorch
	}
	return ""
}

// knownBackend is GetBackendType: "" for custom backends.
func knownBackend(backend string) string {
	switch backend {
	case BackendTensorFlow, BackendTensorRT, BackendONNX, BackendPyTorch:
		return backend
	}
	return ""
}

// validateModelConfig applies Triton's whole-config rules (ValidateModelConfig,
// rules A.1-A.8 of the rules document) in Triton's order. Triton stops at the
// first; all independent ones are reported here.
func validateModelConfig(cfg *inference.ModelConfig) Problems {
	var ps Problems
	name := cfg.GetName()
	if name == "" {
		return Problems{invalid("name", "model configuration must specify 'name'")}
	}
	switch {
	case cfg.GetBackend() == "" && cfg.GetPlatform() == "":
		ps = append(ps, invalid("", "must specify 'platform' or 'backend' for '%s'", name))
	case cfg.GetBackend() == "" && cfg.GetPlatform() != PlatformEnsemble:
		ps = append(ps, invalid("platform", "unexpected platform type '%s' for %s", cfg.GetPlatform(), name))
	case cfg.GetBackend() != "" && cfg.GetPlatform() == PlatformEnsemble:
		ps = append(ps, invalid("backend", "Ensemble model '%s' must have platform type '%s' and empty backend type", name, PlatformEnsemble))
	case cfg.GetPlatform() != PlatformEnsemble && backendOfPlatform(cfg.GetPlatform()) != knownBackend(cfg.GetBackend()):
		ps = append(ps, invalid("platform", "unexpected 'platform' and 'backend' pair, got:%s, %s", cfg.GetPlatform(), cfg.GetBackend()))
	}
	if cfg.GetMaxBatchSize() < 0 {
		ps = append(ps, invalid("max_batch_size", "'max_batch_size' must be non-negative value for %s", name))
	}
	if cfg.GetVersionPolicy() == nil {
		ps = append(ps, invalid("version_policy", "must specify 'version policy' for %s", name))
	}
	if db := cfg.GetDynamicBatching(); db != nil {
		ps = append(ps, validateDynamicBatching(cfg, db)...)
	}
	if sb := cfg.GetSequenceBatching(); sb != nil {
		ps = append(ps, validateSequenceBatching(cfg, sb)...)
		if cfg.GetResponseCache().GetEnable() {
			ps = append(ps, invalid("response_cache", "Response Cache does not currently support model %s with sequence batching scheduler. Please disable the response cache.", name))
		}
	}
	if cfg.GetEnsembleScheduling() != nil {
		ps = append(ps, validateEnsemble(cfg)...)
	} else if cfg.GetPlatform() == PlatformEnsemble {
		ps = append(ps, invalid("platform", "ensemble scheduling must be set for ensemble %s whose platform is ensemble", name))
	}
	if cfg.GetModelTransactionPolicy().GetDecoupled() && cfg.GetResponseCache().GetEnable() {
		ps = append(ps, invalid("response_cache", "Response Cache does not currently support model %s with 'decoupled' transaction policy. Please disable the response cache.", name))
	}
	for i, mc := range cfg.GetModelMetrics().GetMetricControl() {
		path := fmt.Sprintf("model_metrics.metric_control[%d]", i)
		switch {
		case mc.GetMetricIdentifier() == nil:
			ps = append(ps, invalid(path, "metric control must specify 'metric_identifier'"))
		case mc.GetMetricIdentifier().GetFamily() == "":
			ps = append(ps, invalid(path, "metric identifier must specify non-empty 'family'"))
		case mc.GetHistogramOptions() == nil:
			ps = append(ps, invalid(path, "metric control must specify 'histogram_options'"))
		case len(mc.GetHistogramOptions().GetBuckets()) == 0:
			ps = append(ps, invalid(path, "histogram options must specify non-empty 'buckets'"))
		}
	}
	return ps
}

func validateDynamicBatching(cfg *inference.ModelConfig, db *inference.ModelDynamicBatching) Problems {
	var ps Problems
	name := cfg.GetName()
	for i, s := range db.GetPreferredBatchSize() {
		path := fmt.Sprintf("dynamic_batching.preferred_batch_size[%d]", i)
		if s <= 0 {
			ps = append(ps, invalid(path, "dynamic batching preferred size must be positive for %s", name))
		} else if s > cfg.GetMaxBatchSize() {
			ps = append(ps, invalid(path, "dynamic batching preferred size must be <= max batch size for %s", name))
		}
	}
	if levels := db.GetPriorityLevels(); levels != 0 {
		if d := db.GetDefaultPriorityLevel(); d == 0 || d > levels {
			ps = append(ps, invalid("dynamic_batching.default_priority_level", "default priority level must be in range [1, %d] for %s", levels, name))
		}
		for level := range db.GetPriorityQueuePolicy() {
			if level == 0 || level > levels {
				ps = append(ps, invalid("dynamic_batching.priority_queue_policy", "priority queue policy must have priority level in range [1, %d] for %s", levels, name))
				break
			}
		}
	}
	if db.GetPreserveOrdering() {
		if db.GetPriorityLevels() > 1 {
			ps = append(ps, invalid("dynamic_batching.preserve_ordering", "Only one priority level is allowed when 'preserve_ordering' is true for %s", name))
		}
		delays := func(q *inference.ModelQueuePolicy) bool {
			return q.GetDefaultTimeoutMicroseconds() != 0 && q.GetTimeoutAction() == inference.ModelQueuePolicy_DELAY
		}
		bad := delays(db.GetDefaultQueuePolicy())
		for _, q := range db.GetPriorityQueuePolicy() {
			bad = bad || delays(q)
		}
		if bad {
			ps = append(ps, invalid("dynamic_batching.default_queue_policy", "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for %s", name))
		}
	}
	return ps
}

func validateSequenceBatching(cfg *inference.ModelConfig, sb *inference.ModelSequenceBatching) Problems {
	var ps Problems
	name := cfg.GetName()
	k := inference.ModelSequenceBatching_Control_Kind_name
	// Boolean controls (START, END, READY) and the typed CORRID control.
	seenTensor := map[string]bool{}
	seenKind := map[inference.ModelSequenceBatching_Control_Kind]bool{}
	for i, ci := range sb.GetControlInput() {
		path := fmt.Sprintf("sequence_batching.control_input[%d]", i)
		if ci.GetName() == "" {
			ps = append(ps, invalid(path, "sequence batching control tensor must have a name for %s", name))
			continue
		}
		if seenTensor[ci.GetName()] {
			ps = append(ps, invalid(path, "sequence batching control tensor '%s' is specified for multiple control kinds for %s", ci.GetName(), name))
		}
		seenTensor[ci.GetName()] = true
		for j, c := range ci.GetControl() {
			cpath := fmt.Sprintf("%s.control[%d]", path, j)
			kind := k[int32(c.GetKind())]
			if seenKind[c.GetKind()] {
				ps = append(ps, invalid(cpath, "sequence batching specifies multiple %s tensors for %s", kind, name))
			}
			seenKind[c.GetKind()] = true
			nset := 0
			for _, n := range []int{len(c.GetInt32FalseTrue()), len(c.GetFp32FalseTrue()), len(c.GetBoolFalseTrue())} {
				if n > 0 {
					nset++
				}
			}
			if c.GetKind() == inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID {
				if nset > 0 {
					ps = append(ps, invalid(cpath, "sequence batching must not specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' for %s for %s", kind, name))
				}
				switch c.GetDataType() {
				case inference.DataType_TYPE_UINT64, inference.DataType_TYPE_INT64, inference.DataType_TYPE_UINT32, inference.DataType_TYPE_INT32, inference.DataType_TYPE_STRING:
				default:
					ps = append(ps, invalid(cpath, "unexpected data type for control %s for %s. Allowed data types are TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 and TYPE_STRING", kind, name))
				}
				continue
			}
			switch {
			case nset == 0:
				ps = append(ps, invalid(cpath, "sequence batching must specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' for %s for %s", kind, name))
			case nset > 1:
				ps = append(ps, invalid(cpath, "sequence batching specifies more than one from 'int32_false_true', 'fp32_false_true' and 'bool_false_true' for %s for %s", kind, name))
			case len(c.GetInt32FalseTrue()) > 0 && len(c.GetInt32FalseTrue()) != 2:
				ps = append(ps, invalid(cpath, "sequence batching control 'int32_false_true' must have exactly 2 entries for %s for %s", kind, name))
			case len(c.GetFp32FalseTrue()) > 0 && len(c.GetFp32FalseTrue()) != 2:
				ps = append(ps, invalid(cpath, "sequence batching control 'fp32_false_true' must have exactly 2 entries for %s for %s", kind, name))
			case len(c.GetBoolFalseTrue()) > 0 && len(c.GetBoolFalseTrue()) != 2:
				ps = append(ps, invalid(cpath, "sequence batching control 'bool_false_true' must have exactly 2 entries for %s for %s", kind, name))
			}
		}
	}
	if o := sb.GetOldest(); o != nil {
		for i, s := range o.GetPreferredBatchSize() {
			path := fmt.Sprintf("sequence_batching.oldest.preferred_batch_size[%d]", i)
			if s <= 0 {
				ps = append(ps, invalid(path, "sequence batching preferred batch size must be positive for %s", name))
			} else if s > cfg.GetMaxBatchSize() {
				ps = append(ps, invalid(path, "sequence batching preferred batch size must be <= max batch size for %s", name))
			}
		}
	}
	if d := sb.GetDirect(); d != nil {
		if u := d.GetMinimumSlotUtilization(); u < 0 || u > 1 {
			ps = append(ps, invalid("sequence_batching.direct.minimum_slot_utilization", "sequence batching minimum slot utilization must be in range (0.0, 1.0] for %s", name))
		}
	}
	return ps
}

func validateEnsemble(cfg *inference.ModelConfig) Problems {
	name := cfg.GetName()
	if cfg.GetPlatform() != PlatformEnsemble {
		return Problems{invalid("ensemble_scheduling", "ensemble scheduling cannot be set for model '%s' whose platform is not ensemble", name)}
	}
	var ps Problems
	if len(cfg.GetInstanceGroup()) > 0 {
		ps = append(ps, invalid("instance_group", "instance group should not be specified for ensemble '%s'", name))
	}
	if cfg.GetOptimization() != nil {
		ps = append(ps, invalid("optimization", "optimization should not be specified for ensemble '%s'", name))
	}
	if len(cfg.GetModelWarmup()) > 0 {
		ps = append(ps, invalid("model_warmup", "model_warmup can not be specified for ensemble '%s'", name))
	}
	steps := cfg.GetEnsembleScheduling().GetStep()
	if len(steps) == 0 {
		ps = append(ps, invalid("ensemble_scheduling", "must specify 'step' for ensemble '%s'", name))
	}
	for i, s := range steps {
		path := fmt.Sprintf("ensemble_scheduling.step[%d]", i)
		switch {
		case s.GetModelName() == "":
			ps = append(ps, invalid(path, "must specify 'model_name' in step %d of ensemble '%s'", i, name))
		case len(s.GetInputMap()) == 0:
			ps = append(ps, invalid(path, "must specify 'input_map' in step %d of ensemble '%s'", i, name))
		case len(s.GetOutputMap()) == 0:
			ps = append(ps, invalid(path, "must specify 'output_map' in step %d of ensemble '%s'", i, name))
		}
	}
	return ps
}

// validateIO applies Triton's per-tensor rules (ValidateModelIOConfig, rules
// B.9-B.16). Messages end with " for <model>", as Triton's do.
func validateIO(cfg *inference.ModelConfig) Problems {
	var ps Problems
	name := cfg.GetName()
	mbs := cfg.GetMaxBatchSize()
	isTRT := cfg.GetPlatform() == PlatformTensorRT
	seen := map[string]bool{}
	for i, in := range cfg.GetInput() {
		path := fmt.Sprintf("input[%d]", i)
		if p, ok := validateShape(path, "model input ", in.GetName(), in.GetDataType(), in.GetDims(), in.GetReshape(), mbs); !ok {
			ps = append(ps, p)
			continue
		}
		switch {
		case (in.GetFormat() == inference.ModelInput_FORMAT_NHWC || in.GetFormat() == inference.ModelInput_FORMAT_NCHW) && len(in.GetDims()) != 3:
			ps = append(ps, invalid(path+".format", "model input NHWC/NCHW require 3 dims"))
		case in.GetIsShapeTensor() && !isTRT:
			ps = append(ps, invalid(path+".is_shape_tensor", "shape tensors are only supported for TensorRT platform"))
		case in.GetIsNonLinearFormatIo() && !isTRT:
			ps = append(ps, invalid(path+".is_non_linear_format_io", "Non-linear IO format is only supported for the TensorRT platform"))
		case in.GetIsNonLinearFormatIo() && len(in.GetDims()) != 3:
			ps = append(ps, invalid(path+".is_non_linear_format_io", "Non-linear IO format input requires 3 dims"))
		}
		if seen[in.GetName()] {
			ps = append(ps, invalid(path+".name", "input '%s' is specified more than once for %s", in.GetName(), name))
		}
		seen[in.GetName()] = true
	}
	seen = map[string]bool{}
	for i, out := range cfg.GetOutput() {
		path := fmt.Sprintf("output[%d]", i)
		if p, ok := validateShape(path, "model output ", out.GetName(), out.GetDataType(), out.GetDims(), out.GetReshape(), mbs); !ok {
			ps = append(ps, p)
			continue
		}
		switch {
		case out.GetIsShapeTensor() && !isTRT:
			ps = append(ps, invalid(path+".is_shape_tensor", "shape tensors are only supported for TensorRT platform"))
		case out.GetIsNonLinearFormatIo() && !isTRT:
			ps = append(ps, invalid(path+".is_non_linear_format_io", "Non-linear IO format is only supported for the TensorRT platform"))
		case out.GetIsNonLinearFormatIo() && len(out.GetDims()) != 3:
			ps = append(ps, invalid(path+".is_non_linear_format_io", "Non-linear IO format output requires 3 dims"))
		}
		if seen[out.GetName()] {
			ps = append(ps, invalid(path+".name", "output '%s' is specified more than once for %s", out.GetName(), name))
		}
		seen[out.GetName()] = true
	}
	ps = append(ps, validateBatchIO(cfg)...)
	for i := range ps {
		if !strings.HasSuffix(ps[i].Msg, " for "+name) {
			ps[i].Msg += " for " + name
		}
	}
	return ps
}

// validateShape is ValidateIOShape.
func validateShape(path, prefix, ioName string, dt inference.DataType, dims []int64, reshape *inference.ModelTensorReshape, mbs int32) (Problem, bool) {
	if ioName == "" {
		return invalid(path+".name", "%smust specify 'name'", prefix), false
	}
	p := prefix + "'" + ioName + "' "
	if dt == inference.DataType_TYPE_INVALID {
		return invalid(path+".data_type", "%smust specify 'data_type'", p), false
	}
	if len(dims) == 0 {
		return invalid(path+".dims", "%smust specify 'dims'", p), false
	}
	if reshape != nil && len(reshape.GetShape()) == 0 && mbs == 0 {
		return invalid(path+".reshape", "%scannot have empty reshape for non-batching model as scalar tensors are not supported", p), false
	}
	for i, d := range dims {
		if d < 1 && d != wildcardDim {
			return invalid(fmt.Sprintf("%s.dims[%d]", path, i), "%sdimension must be integer >= 1, or %s", p, wildcardDimDescription), false
		}
	}
	if reshape == nil {
		return Problem{}, true
	}
	shape := reshape.GetShape()
	for i, d := range shape {
		if d < 1 && d != wildcardDim {
			return invalid(fmt.Sprintf("%s.reshape.shape[%d]", path, i), "%sreshape dimensions must be integer >= 1, or %s", p, wildcardDimDescription), false
		}
	}
	dimsCount, reshapeCount := elementCount(dims), elementCount(shape)
	if dimsCount != reshapeCount && (reshapeCount != 0 || dimsCount != 1) {
		return invalid(path+".reshape", "%shas different size for dims and reshape", p), false
	}
	if dimsCount == wildcardDim {
		a, b := segmentCounts(dims), segmentCounts(shape)
		if len(a) != len(b) {
			return invalid(path+".reshape", "%shas different number of variable-size dimensions for dims and reshape", p), false
		}
		if !slices.Equal(a, b) {
			return invalid(path+".reshape", "%shas different size for dims and reshape", p), false
		}
	}
	return Problem{}, true
}

// elementCount is Triton's GetElementCount on config dims: -1 if any dim is a
// wildcard, 0 for no dims, else the product.
func elementCount(dims []int64) int64 {
	if len(dims) == 0 {
		return 0
	}
	n := int64(1)
	for _, d := range dims {
		if d == wildcardDim {
			return wildcardDim
		}
		n *= d
	}
	return n
}

// segmentCounts returns the element counts of the runs of fixed dims between
// wildcards: [2,4,-1,6] → [8,6].
func segmentCounts(dims []int64) []int64 {
	var out []int64
	n := int64(1)
	for _, d := range dims {
		if d == wildcardDim {
			out = append(out, n)
			n = 1
		} else {
			n *= d
		}
	}
	return append(out, n)
}

func validateBatchIO(cfg *inference.ModelConfig) Problems {
	var ps Problems
	inputs := map[string]bool{}
	for _, in := range cfg.GetInput() {
		inputs[in.GetName()] = true
	}
	for i, bi := range cfg.GetBatchInput() {
		path := fmt.Sprintf("batch_input[%d]", i)
		kind := bi.GetKind().String()
		switch bi.GetKind() {
		case inference.BatchInput_BATCH_ELEMENT_COUNT, inference.BatchInput_BATCH_ACCUMULATED_ELEMENT_COUNT,
			inference.BatchInput_BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO, inference.BatchInput_BATCH_MAX_ELEMENT_COUNT_AS_SHAPE,
			inference.BatchInput_BATCH_ITEM_SHAPE, inference.BatchInput_BATCH_ITEM_SHAPE_FLATTEN:
			if n := len(bi.GetSourceInput()); n != 1 {
				ps = append(ps, invalid(path, "batch input kind '%s' expects 1 source input, got %d", kind, n))
				continue
			}
		default:
			ps = append(ps, invalid(path, "unknown batch input kind '%s'", kind))
			continue
		}
		if dt := bi.GetDataType(); dt != inference.DataType_TYPE_INT32 && dt != inference.DataType_TYPE_FP32 {
			ps = append(ps, invalid(path+".data_type", "batch input data type must be TYPE_INT32 or TYPE_FP32"))
		}
		for _, src := range bi.GetSourceInput() {
			if !inputs[src] {
				ps = append(ps, invalid(path+".source_input", "unknown source input name '%s'", src))
			}
		}
	}
	outputs := map[string]bool{}
	for _, out := range cfg.GetOutput() {
		outputs[out.GetName()] = true
	}
	targets := map[string]bool{}
	for i, bo := range cfg.GetBatchOutput() {
		path := fmt.Sprintf("batch_output[%d]", i)
		if bo.GetKind() != inference.BatchOutput_BATCH_SCATTER_WITH_INPUT_SHAPE {
			ps = append(ps, invalid(path, "unknown batch output kind '%s'", bo.GetKind()))
			continue
		}
		if n := len(bo.GetSourceInput()); n != 1 {
			ps = append(ps, invalid(path, "batch output kind '%s' expects 1 source input, got %d", bo.GetKind(), n))
			continue
		}
		for _, src := range bo.GetSourceInput() {
			if !inputs[src] {
				ps = append(ps, invalid(path+".source_input", "unknown source input name '%s'", src))
			}
		}
		for _, t := range bo.GetTargetName() {
			if !outputs[t] {
				ps = append(ps, invalid(path+".target_name", "unknown target output name '%s'", t))
			}
			if targets[t] {
				ps = append(ps, invalid(path+".target_name", "target output name '%s' can only be specified once", t))
			}
			targets[t] = true
		}
	}
	return ps
}

// validateInstanceGroups is ValidateInstanceGroup (rules C.17) for a server
// with gpus GPUs (AnyGPUs: unknown, availability not checked).
func validateInstanceGroups(cfg *inference.ModelConfig, gpus int) Problems {
	if cfg.GetPlatform() == PlatformEnsemble {
		return nil
	}
	name := cfg.GetName()
	if len(cfg.GetInstanceGroup()) == 0 {
		return Problems{invalid("instance_group", "must specify one or more 'instance group's for %s", name)}
	}
	var ps Problems
	for i, g := range cfg.GetInstanceGroup() {
		path := fmt.Sprintf("instance_group[%d]", i)
		head := fmt.Sprintf("instance group %s of model %s", g.GetName(), name)
		switch g.GetKind() {
		case inference.ModelInstanceGroup_KIND_MODEL:
			if len(g.GetGpus()) > 0 {
				ps = append(ps, invalid(path+".gpus", "%s has kind KIND_MODEL but specifies one or more GPUs", head))
			}
		case inference.ModelInstanceGroup_KIND_CPU:
			if len(g.GetGpus()) > 0 {
				ps = append(ps, invalid(path+".gpus", "%s has kind KIND_CPU but specifies one or more GPUs", head))
			}
		case inference.ModelInstanceGroup_KIND_GPU:
			if gpus == AnyGPUs {
				// The GPU count is not known here, but no GPU has a
				// negative id on any server.
				for j, id := range g.GetGpus() {
					if id < 0 {
						ps = append(ps, invalid(fmt.Sprintf("%s.gpus[%d]", path, j), "%s specifies invalid or unsupported gpu id %d (GPU ids are 0 or more)", head, id))
					}
				}
				break
			}
			if gpus == 0 {
				ps = append(ps, invalid(path+".kind", "%s has kind KIND_GPU but no GPUs are available", head))
				break
			}
			if len(g.GetGpus()) == 0 {
				ps = append(ps, invalid(path+".gpus", "%s has kind KIND_GPU but specifies no GPUs", head))
			}
			for j, id := range g.GetGpus() {
				if id < 0 || int(id) >= gpus {
					ids := make([]string, gpus)
					for k := range ids {
						ids[k] = strconv.Itoa(k)
					}
					ps = append(ps, invalid(fmt.Sprintf("%s.gpus[%d]", path, j), "%s specifies invalid or unsupported gpu id %d. GPUs with at least the minimum required CUDA compute compatibility of 6.000000 are: %s", head, id, strings.Join(ids, ", ")))
				}
			}
		case inference.ModelInstanceGroup_KIND_AUTO:
			if gpus != AnyGPUs {
				ps = append(ps, Problem{Path: path + ".kind", Code: codes.Internal, Msg: head + " has unexpected kind KIND_AUTO"})
			}
		}
		if len(g.GetProfile()) > 0 && cfg.GetPlatform() != PlatformTensorRT {
			// Triton's message really lacks the space before "specifies".
			ps = append(ps, invalid(path+".profile", "%s and platform %sspecifies profile field which is only supported for TensorRT models", head, cfg.GetPlatform()))
		}
	}
	return ps
}
