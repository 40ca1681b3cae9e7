package tritonlite

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// FuzzSequenceControls feeds arbitrary sequence_batching configs and
// correlation IDs to the control-input parser: it must never panic; every
// control it accepts yields, for any request, a tensor whose data matches
// its datatype and shape; and a correlation ID the CORRID control cannot
// carry is refused as INVALID_ARGUMENT.
func FuzzSequenceControls(f *testing.F) {
	seed := func(sb *inference.ModelSequenceBatching, id string, num uint64, isStr, start, end bool) {
		b, _ := proto.Marshal(sb)
		f.Add(b, id, num, isStr, start, end)
	}
	ctl := func(name string, c *inference.ModelSequenceBatching_Control) *inference.ModelSequenceBatching_ControlInput {
		return &inference.ModelSequenceBatching_ControlInput{Name: name, Control: []*inference.ModelSequenceBatching_Control{c}}
	}
	seed(&inference.ModelSequenceBatching{ControlInput: []*inference.ModelSequenceBatching_ControlInput{
		ctl("START", &inference.ModelSequenceBatching_Control{Kind: inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_START, Int32FalseTrue: []int32{0, 1}}),
		ctl("END", &inference.ModelSequenceBatching_Control{Kind: inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_END, Fp32FalseTrue: []float32{0, 1}}),
		ctl("READY", &inference.ModelSequenceBatching_Control{Kind: inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_READY, BoolFalseTrue: []bool{false, true}}),
		ctl("CORRID", &inference.ModelSequenceBatching_Control{Kind: inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID, DataType: inference.DataType_TYPE_UINT32}),
	}}, "", 1000, false, true, false)
	seed(&inference.ModelSequenceBatching{ControlInput: []*inference.ModelSequenceBatching_ControlInput{
		ctl("C", &inference.ModelSequenceBatching_Control{Kind: inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID, DataType: inference.DataType_TYPE_STRING}),
	}}, "a-sequence", 0, true, false, true)
	f.Fuzz(func(t *testing.T, b []byte, id string, num uint64, isStr, start, end bool) {
		var sb inference.ModelSequenceBatching
		if proto.Unmarshal(b, &sb) != nil {
			return
		}
		controls, err := parseControls(&sb)
		if err != nil {
			return
		}
		info := seqInfo{id: seqID{str: id, num: num, isStr: isStr}, start: start, end: end}
		corrErr := checkCorrID(controls, "", "m", info.id)
		if corrErr != nil && status.Code(corrErr) != codes.InvalidArgument {
			t.Fatalf("CORRID check: %v", corrErr)
		}
		for _, c := range controls {
			for _, batched := range []bool{false, true} {
				tt := c.tensorFor(info, batched)
				if c.kind == inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID && (corrErr != nil || info.id.isStr != (c.dt == tensor.Bytes)) {
					continue // refused before it is built
				}
				if err := tt.Validate(); err != nil {
					t.Fatalf("control %s (%s): %v", c.name, c.kind, err)
				}
			}
		}
	})
}
