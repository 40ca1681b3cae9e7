package tritonlite

import (
	"context"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// Executor runs batches for one model instance. The scheduler never calls an
// Executor concurrently: an instance executes one batch at a time, as in Triton.
type Executor interface {
	// Execute runs the model on inputs (one tensor per model input, with the
	// batch dimension first when the model batches) and returns the named
	// outputs in that order. An error that is a gRPC status keeps its code;
	// any other error is returned to clients as INTERNAL.
	Execute(ctx context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error)
	// Close releases the instance.
	Close() error
}

// Instance describes one model instance to create.
type Instance struct {
	// Config is the completed model configuration.
	Config *inference.ModelConfig
	// ModelPath is the model file for this version (for ONNX Runtime).
	ModelPath string
	// VersionDir is <repository>/<model>/<version>.
	VersionDir string
	Version    int64
	// Group and Index name the instance: Triton calls it "<group>_<index>".
	Group string
	Index int
	// Signature is the ONNX model's signature (nil for other backends).
	Signature *onnxmodel.Model
}

// Backend creates executors for the models whose config names it (by
// `backend: "<name>"`).
type Backend interface {
	NewExecutor(ctx context.Context, inst Instance) (Executor, error)
}

// BackendFunc adapts a function to Backend.
type BackendFunc func(ctx context.Context, inst Instance) (Executor, error)

// NewExecutor calls f.
func (f BackendFunc) NewExecutor(ctx context.Context, inst Instance) (Executor, error) {
	return f(ctx, inst)
}

// ConfigCompleter is a Backend that fills in the configs of its models, as
// Triton's backends auto-complete theirs (the Python backend's
// auto_complete_config): CompleteConfig gets the config that
// config.pbtxt or a load's override gives, with the backend fields filled
// and normalized, before it is completed and validated for each version. It
// is not called when auto-complete is disabled
// (--disable-auto-complete-config).
type ConfigCompleter interface {
	Backend
	CompleteConfig(cfg *inference.ModelConfig)
}
