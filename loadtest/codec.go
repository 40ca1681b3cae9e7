package loadtest

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// The generator sends requests it serialized once, and by default does not
// decode responses: a raw codec passes bytes through both ways, so the cost
// per request is gRPC's alone, not the load generator's.

// frame is a serialized message to send.
type frame struct{ b []byte }

// sink receives a response; it keeps the bytes only when asked to.
type sink struct {
	n    int
	keep bool
	b    []byte
}

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("loadtest codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(f.b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	s, ok := v.(*sink)
	if !ok {
		return fmt.Errorf("loadtest codec: cannot unmarshal into %T", v)
	}
	s.n = data.Len()
	if s.keep {
		s.b = data.Materialize()
	}
	return nil
}

// verifyResponse decodes a response and checks it is a well-formed answer
// from the model asked (used with Config.Verify).
func verifyResponse(b []byte, model string) error {
	var resp inference.ModelInferResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return err
	}
	if resp.GetModelName() != model {
		return fmt.Errorf("response from model %q, asked %q", resp.GetModelName(), model)
	}
	outs, err := tensor.ResponseOutputs(&resp)
	if err != nil {
		return err
	}
	if len(outs) == 0 {
		return fmt.Errorf("response has no outputs")
	}
	for _, o := range outs {
		if err := o.Validate(); err != nil {
			return err
		}
	}
	return nil
}
