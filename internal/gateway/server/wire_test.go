package server

import (
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

func marshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fp32Input(name string, shape ...int64) *inference.ModelInferRequest_InferInputTensor {
	return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: "FP32", Shape: shape}
}

func TestScanRequestReadsRoutingFields(t *testing.T) {
	b := marshal(t, &inference.ModelInferRequest{ModelName: "resnet", ModelVersion: "3", Id: "req-1",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{fp32Input("X", 2, 3)}, RawInputContents: [][]byte{make([]byte, 24)}})
	// An override appended (as the gateway does for version splits) wins.
	b = appendString(b, reqModelVersion, "7")
	r, err := scanRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.model != "resnet" || r.version != "7" || r.id != "req-1" {
		t.Errorf("scanned %+v", r)
	}
	var back inference.ModelInferRequest
	if err := proto.Unmarshal(b, &back); err != nil || back.ModelVersion != "7" {
		t.Errorf("protobuf reads version %q (%v): the override must win there too", back.ModelVersion, err)
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 'a'}, {0xff}, {0x2a, 0x02, 0x0a}} {
		if _, err := scanRequest(bad); err == nil {
			t.Errorf("scanRequest(%x) accepted malformed protobuf", bad)
		}
	}
}

func TestStreamOKIsAStreamResponse(t *testing.T) {
	resp := marshal(t, &inference.ModelInferResponse{ModelName: "m", ModelVersion: "1", Id: "x", RawOutputContents: [][]byte{{1, 2, 3, 4}}})
	out := streamOK(&rawMsg{b: resp})
	var s inference.ModelStreamInferResponse
	if err := proto.Unmarshal(append(append([]byte{}, out.b...), out.extra...), &s); err != nil {
		t.Fatal(err)
	}
	if s.ErrorMessage != "" || s.InferResponse.GetModelName() != "m" || s.InferResponse.GetId() != "x" {
		t.Errorf("stream response %v", &s)
	}
}

func TestCompareResponses(t *testing.T) {
	resp := func(v ...float32) []byte {
		r := &inference.ModelInferResponse{}
		tensor.SetResponseOutputs(r, []tensor.Tensor{tensor.Of("Y", []int64{int64(len(v))}, v)})
		return marshal(t, r)
	}
	cases := []struct {
		name     string
		a, b     []byte
		abs, rel float64
		same     bool
		maxAbs   float64
	}{
		{"equal", resp(1, 2), resp(1, 2), 0, 0, true, 0},
		{"within abs", resp(1, 2), resp(1, 2.25), 0.5, 0, true, 0.25},
		{"within rel", resp(100, 2), resp(101, 2), 0, 0.02, true, 1},
		{"outside", resp(1, 2), resp(1, 4), 0.1, 0.1, false, 2},
		{"shape", resp(1, 2), resp(1, 2, 3), 1, 1, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			abs, _, same, err := compareResponses(c.a, c.b, c.abs, c.rel)
			if err != nil {
				t.Fatal(err)
			}
			if same != c.same || abs != c.maxAbs {
				t.Errorf("same=%v maxAbs=%v, want %v %v", same, abs, c.same, c.maxAbs)
			}
		})
	}
	if _, _, _, err := compareResponses([]byte{0xff}, resp(1), 0, 0); err == nil {
		t.Error("a malformed response compared")
	}
}

// FuzzScanRequest feeds arbitrary bytes to the wire scanner. It must never
// panic, and it must agree with protobuf: a request protobuf can parse scans
// to the same routing fields.
// seqRequestOf is a request of a sequence, with its flags.
func seqRequestOf(id int64, start, end bool) *inference.ModelInferRequest {
	return &inference.ModelInferRequest{ModelName: "m", Parameters: map[string]*inference.InferParameter{
		"sequence_id":    {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: id}},
		"sequence_start": {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: start}},
		"sequence_end":   {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: end}},
	}}
}

func FuzzScanRequest(f *testing.F) {
	seed := []*inference.ModelInferRequest{
		{ModelName: "m", Inputs: []*inference.ModelInferRequest_InferInputTensor{fp32Input("X", 1, 4)}, RawInputContents: [][]byte{make([]byte, 16)}},
		{ModelName: "m", ModelVersion: "2", Id: "a", Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "X", Datatype: "INT32", Shape: []int64{2},
			Contents: &inference.InferTensorContents{IntContents: []int32{1, -1}}}}},
		{ModelName: "s", Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "S", Datatype: "BYTES", Shape: []int64{2}}},
			RawInputContents: [][]byte{tensor.EncodeBytes([][]byte{[]byte("hi"), []byte("there")})}},
		{ModelName: "b", Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "B", Datatype: "BOOL", Shape: []int64{1},
			Contents: &inference.InferTensorContents{BoolContents: []bool{true}}}}},
	}
	seed = append(seed, seqRequestOf(7, true, false), seqRequestOf(7, false, true))
	str := seqRequestOf(0, false, false)
	str.Parameters["sequence_id"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_StringParam{StringParam: "corr-1"}}
	seed = append(seed, str)
	for _, r := range seed {
		f.Add(marshal(f, r))
	}
	f.Add([]byte{0x2a, 0x03, 0x1a, 0x01, 0x80})
	f.Add(protowire.AppendTag(nil, 5, protowire.BytesType))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := scanRequest(b)
		var pb inference.ModelInferRequest
		perr := proto.Unmarshal(b, &pb)
		if perr == nil && err != nil {
			t.Fatalf("protobuf parses what the scanner refuses: %v", err)
		}
		if err != nil || perr != nil {
			return
		}
		if r.model != pb.ModelName || r.version != pb.ModelVersion || r.id != pb.Id {
			t.Fatalf("scanner read %q/%q/%q, protobuf %q/%q/%q", r.model, r.version, r.id, pb.ModelName, pb.ModelVersion, pb.Id)
		}
		want := ""
		switch p := pb.Parameters["sequence_id"].GetParameterChoice().(type) {
		case *inference.InferParameter_Int64Param:
			if p.Int64Param != 0 {
				want = strconv.FormatInt(p.Int64Param, 10)
			}
		case *inference.InferParameter_Uint64Param:
			if p.Uint64Param != 0 {
				want = strconv.FormatUint(p.Uint64Param, 10)
			}
		case *inference.InferParameter_StringParam:
			if p.StringParam != "" {
				want = "s:" + p.StringParam
			}
		}
		if r.seqID != want || r.seqStart != pb.Parameters["sequence_start"].GetBoolParam() || r.seqEnd != pb.Parameters["sequence_end"].GetBoolParam() {
			t.Fatalf("scanner read sequence %q start %v end %v, protobuf %v", r.seqID, r.seqStart, r.seqEnd, pb.Parameters)
		}
	})
}
