package server_test

import (
	"context"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
)

// doubleBackend is a test model whose outputs are its FP32 inputs times two:
// the same interface as identity, different answers (for shadow mismatches).
type doubleBackend struct{}

func (doubleBackend) NewExecutor(ctx context.Context, inst tritonlite.Instance) (tritonlite.Executor, error) {
	return doubler{}, nil
}

type doubler struct{}

func (doubler) Close() error { return nil }

func (doubler) Execute(_ context.Context, in []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	v, err := tensor.Values[float32](in[0])
	if err != nil {
		return nil, err
	}
	for i := range v {
		v[i] *= 2
	}
	out := tensor.Of(outputs[0], in[0].Shape, v)
	return []tensor.Tensor{out}, nil
}
