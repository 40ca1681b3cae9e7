package pbtxt

import (
	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/proto/inference"
)

// GenerateOptions shape a generated config.
type GenerateOptions struct {
	// Name is the model name (required; also its directory name).
	Name string
	// MaxBatchSize: nil follows Triton's auto-complete (4 for a model with a
	// variable leading dimension, else 0); a value is used as given.
	MaxBatchSize *int32
	// Pool places the instances and may set a batcher.
	Pool PoolOverride
	// DynamicBatching: nil follows Triton (a batcher whenever
	// max_batch_size > 1); true adds one, false leaves it out.
	DynamicBatching *bool
}

// Generate writes out the full config Triton would use for an ONNX model: the
// auto-completed inputs, outputs and batching, the pool's instance groups and
// Triton's defaults, so that it loads the same with auto-complete disabled.
func Generate(m *onnxmodel.Model, opts GenerateOptions) (*inference.ModelConfig, Problems) {
	if opts.Name == "" {
		return nil, Problems{invalid("name", "model configuration must specify 'name'")}
	}
	cfg := &inference.ModelConfig{Name: opts.Name, Platform: PlatformONNX, Backend: BackendONNX}
	srv := DefaultServer()
	srv.GPUs = AnyGPUs
	if opts.Pool.BatchingIfSupported {
		if !batchable(m) {
			opts.Pool = opts.Pool.withoutBatching()
		}
		opts.Pool.BatchingIfSupported = false // decided here, from the model
	}
	if opts.MaxBatchSize != nil {
		cfg.MaxBatchSize = *opts.MaxBatchSize
		srv.DefaultMaxBatchSize = int(*opts.MaxBatchSize) // an explicit 0 must stay 0
	}
	if opts.DynamicBatching != nil && *opts.DynamicBatching {
		cfg.SchedulingChoice = &inference.ModelConfig_DynamicBatching{DynamicBatching: &inference.ModelDynamicBatching{}}
	}
	if opts.Pool.Kind != inference.ModelInstanceGroup_KIND_AUTO || opts.Pool.MaxBatchSize != nil || opts.Pool.DynamicBatching != nil {
		var err error
		if cfg, err = opts.Pool.Apply(cfg); err != nil {
			return nil, Problems{invalid("instance_group", "%v", err)}
		}
	}
	if p, ok := autoCompleteBackendFields(cfg, &ModelDir{Path: opts.Name}); !ok {
		return nil, Problems{p}
	}
	normalize(cfg)
	if ps := validateModelConfig(cfg); len(ps) > 0 {
		return nil, ps
	}
	normalizeInstanceGroups(cfg, srv.GPUs)
	if ps := validateInstanceGroups(cfg, srv.GPUs); len(ps) > 0 {
		return nil, ps
	}
	if ps := CompleteFromModel(cfg, m, srv); len(ps) > 0 {
		return nil, ps
	}
	if opts.DynamicBatching != nil && !*opts.DynamicBatching {
		if cfg.GetDynamicBatching() != nil {
			cfg.SchedulingChoice = nil
		}
	}
	if cfg.GetDynamicBatching() != nil && cfg.MaxBatchSize == 0 {
		return nil, Problems{invalid("dynamic_batching", "dynamic batching needs max_batch_size > 0, but model '%s' does not batch (max_batch_size 0)", cfg.Name)}
	}
	return cfg, nil
}
