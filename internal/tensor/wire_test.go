package tensor

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/proto/inference"
)

func TestRequestRoundTrip(t *testing.T) {
	var ts []Tensor
	for _, dt := range All {
		s := sample(dt)
		s.Name = "in_" + dt.String()
		ts = append(ts, s)
	}
	req := &inference.ModelInferRequest{ModelName: "m"}
	SetRequestInputs(req, ts)
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var got inference.ModelInferRequest
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	back, err := RequestInputs(&got)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ts {
		if back[i].Name != ts[i].Name || back[i].DataType != ts[i].DataType || !slices.Equal(back[i].Shape, ts[i].Shape) || !bytes.Equal(back[i].Data, ts[i].Data) {
			t.Fatalf("input %d: got %+v, want %+v", i, back[i], ts[i])
		}
	}

	// The same tensors as typed contents (where the protocol has a field).
	typed := &inference.ModelInferRequest{ModelName: "m"}
	for _, s := range ts {
		c, err := ToContents(s.DataType, s.Data)
		if err != nil {
			continue // FP16, BF16
		}
		typed.Inputs = append(typed.Inputs, &inference.ModelInferRequest_InferInputTensor{Name: s.Name, Datatype: s.DataType.String(), Shape: s.Shape, Contents: c})
	}
	back, err = RequestInputs(typed)
	if err != nil || len(back) != len(ts)-2 {
		t.Fatalf("typed: %v (%d tensors)", err, len(back))
	}
	for _, b := range back {
		if err := b.Validate(); err != nil {
			t.Fatal(err)
		}
	}

	resp := &inference.ModelInferResponse{}
	SetResponseOutputs(resp, ts)
	outs, err := ResponseOutputs(resp)
	if err != nil || len(outs) != len(ts) || !bytes.Equal(outs[3].Data, ts[3].Data) {
		t.Fatalf("response: %v", err)
	}
}

func TestRequestInputsErrors(t *testing.T) {
	in := func(name, dt string, c *inference.InferTensorContents) *inference.ModelInferRequest_InferInputTensor {
		return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: []int64{1}, Contents: c}
	}
	tests := []struct {
		name string
		req  *inference.ModelInferRequest
		want string
	}{
		{"mixed", &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("a", "FP32", &inference.InferTensorContents{Fp32Contents: []float32{1}})}, RawInputContents: [][]byte{{0, 0, 0, 0}}},
			"contents field must not be specified when using raw_input_contents for 'a' for model 'm'"},
		{"no data", &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("a", "FP32", nil), in("b", "FP32", nil)}, RawInputContents: [][]byte{{0, 0, 0, 0}}},
			"unable to find data for input tensor 'b' for model 'm' in request."},
		{"wrong field", &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("a", "INT32", &inference.InferTensorContents{Fp32Contents: []float32{1}})}},
			"unexpected explicit tensor data for input tensor 'a' for model 'm' of type 'FP32', expected datatype 'INT32'"},
		{"int_contents for INT64", &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("a", "INT64", &inference.InferTensorContents{IntContents: []int32{1}})}},
			"unexpected explicit tensor data for input tensor 'a' for model 'm' of type 'INT32', expected datatype 'INT64'"},
		{"two fields", &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("a", "INT64", &inference.InferTensorContents{Int64Contents: []int64{1}, Fp64Contents: []float64{2}})}},
			"unexpected explicit tensor data for input tensor 'a' for model 'm', binary data was already supplied."},
		{"FP16 has no field", &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("h", "FP16", &inference.InferTensorContents{Fp32Contents: []float32{1}})}},
			"unexpected explicit tensor data for input tensor 'h' for model 'm' of type 'FP32', expected datatype 'FP16'"},
		{"unknown datatype, typed", &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("a", "FLOAT32", &inference.InferTensorContents{Fp32Contents: []float32{1}})}},
			"unexpected explicit tensor data for input tensor 'a' for model 'm' of type 'FP32', expected datatype '<invalid>'"},
	}
	for _, tc := range tests {
		_, err := RequestInputs(tc.req)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestRequestInputsAcceptsWhatTritonAccepts: Triton's gRPC frontend takes
// the low bytes of int_contents/uint_contents for 8- and 16-bit inputs,
// ignores raw_input_contents beyond the inputs, and leaves an unknown
// datatype to the model's datatype check.
func TestRequestInputsAcceptsWhatTritonAccepts(t *testing.T) {
	req := &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{
		{Name: "i8", Datatype: "INT8", Shape: []int64{3}, Contents: &inference.InferTensorContents{IntContents: []int32{1000, -1, 127}}},
		{Name: "u16", Datatype: "UINT16", Shape: []int64{2}, Contents: &inference.InferTensorContents{UintContents: []uint32{65537, 2}}},
		{Name: "empty", Datatype: "FP32", Shape: []int64{1}, Contents: &inference.InferTensorContents{}},
	}}
	ts, err := RequestInputs(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ts[0].Data, []byte{0xe8, 0xff, 0x7f}) || !bytes.Equal(ts[1].Data, []byte{1, 0, 2, 0}) || ts[2].Data == nil || len(ts[2].Data) != 0 {
		t.Errorf("typed contents packed as %x, %x, %x", ts[0].Data, ts[1].Data, ts[2].Data)
	}
	raw := &inference.ModelInferRequest{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "a", Datatype: "FLOAT32", Shape: []int64{1}}},
		RawInputContents: [][]byte{{1, 2, 3, 4}, {5}}}
	ts, err = RequestInputs(raw)
	if err != nil {
		t.Fatalf("unknown datatype with an extra raw entry: %v", err)
	}
	if len(ts) != 1 || ts[0].DataType != Invalid || !bytes.Equal(ts[0].Data, []byte{1, 2, 3, 4}) {
		t.Errorf("decoded %+v", ts)
	}
}

// FuzzRequestInputs: arbitrary request bytes never panic the decoder, and
// what it accepts and validates re-encodes to the same raw data.
func FuzzRequestInputs(f *testing.F) {
	req := &inference.ModelInferRequest{ModelName: "m"}
	SetRequestInputs(req, []Tensor{sample(FP32), sample(Bytes), sample(Int8)})
	b, _ := proto.Marshal(req)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var req inference.ModelInferRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		ts, err := RequestInputs(&req)
		if err != nil {
			return
		}
		for _, x := range ts {
			if x.Validate() != nil {
				continue
			}
			c, err := ToContents(x.DataType, x.Data)
			if err != nil {
				continue
			}
			back, err := FromContents(x.DataType, c)
			want := x.Data
			if x.DataType == Bool { // typed contents carry true/false: any non-zero byte is true
				want = make([]byte, len(x.Data))
				for i, v := range x.Data {
					if v != 0 {
						want[i] = 1
					}
				}
			}
			if err != nil || !bytes.Equal(back, want) {
				t.Fatalf("%s: contents round trip: %v", x.Name, err)
			}
		}
	})
}
