package tritonlite_test

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/proto/inference"
)

// Regression tests for differences from tritonserver 2.51 found by running
// Triton's Python client against both (interop/tritonclient_test.go); each
// expected message is the one Triton 2.51 answered.

// simpleRequest is an INT32 request for the add_sub model, with inputs named
// names in that order, each [1,16] of datatype dt.
func simpleRequest(dt string, shape []int64, names ...string) *inference.ModelInferRequest {
	req := &inference.ModelInferRequest{ModelName: "simple"}
	for _, n := range names {
		req.Inputs = append(req.Inputs, &inference.ModelInferRequest_InferInputTensor{Name: n, Datatype: dt, Shape: shape})
		req.RawInputContents = append(req.RawInputContents, make([]byte, 64))
	}
	return req
}

func startSimple(t *testing.T) *harness {
	repo := t.TempDir()
	writeModel(t, repo, "simple", addSubInt32)
	return start(t, repo, tritonlite.ModeNone)
}

// TestTritonReportsInputsInItsMapOrder: with two wrong inputs, Triton names
// the first in its unordered_map's order (INPUT1 before INPUT0), and lists
// the inputs of a request with too many in that order.
func TestTritonReportsInputsInItsMapOrder(t *testing.T) {
	h := startSimple(t)
	ctx := context.Background()
	_, err := h.client.ModelInfer(ctx, simpleRequest("FP32", []int64{1, 16}, "INPUT0", "INPUT1"))
	wantExact(t, err, codes.InvalidArgument, "[request id: <id_unknown>] inference input 'INPUT1' data-type is 'FP32', but model 'simple' expects 'INT32'")
	_, err = h.client.ModelInfer(ctx, simpleRequest("INT32", []int64{1, 8}, "INPUT1", "INPUT0"))
	wantExact(t, err, codes.InvalidArgument, "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,8]. "+
		"NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.")
	_, err = h.client.ModelInfer(ctx, simpleRequest("INT32", []int64{1, 16}, "B", "A", "INPUT0"))
	wantExact(t, err, codes.InvalidArgument, "[request id: <id_unknown>] expected 2 inputs but got 3 inputs for model 'simple'. Got input(s) ['INPUT0','A','B'], but missing required input(s) ['INPUT1']. Please provide all required input(s).")
}

// TestTritonRequestParameters: Triton 2.51 takes double parameters, refuses
// uint64 and unset ones, and names the reserved keys without a trailing
// space.
func TestTritonRequestParameters(t *testing.T) {
	h := startSimple(t)
	ctx := context.Background()
	with := func(key string, p *inference.InferParameter) *inference.ModelInferRequest {
		req := simpleRequest("INT32", []int64{1, 16}, "INPUT0", "INPUT1")
		req.Parameters = map[string]*inference.InferParameter{key: p}
		return req
	}
	if _, err := h.client.ModelInfer(ctx, with("custom_f", &inference.InferParameter{ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: 1.5}})); err != nil {
		t.Errorf("a double parameter: %v", err)
	}
	_, err := h.client.ModelInfer(ctx, with("custom_u", &inference.InferParameter{ParameterChoice: &inference.InferParameter_Uint64Param{Uint64Param: 1}}))
	wantExact(t, err, codes.InvalidArgument, "invalid value type for 'custom_u' parameter, expected int64_param, bool_param, or string_param.")
	_, err = h.client.ModelInfer(ctx, with("custom_n", &inference.InferParameter{}))
	wantExact(t, err, codes.InvalidArgument, "invalid value type for 'custom_n' parameter, expected int64_param, bool_param, or string_param.")
	_, err = h.client.ModelInfer(ctx, with("triton_x", &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: 1}}))
	wantExact(t, err, codes.InvalidArgument, "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys starting with 'triton_' are allowed: triton_enable_empty_final_response")
}

// TestTritonUnknownDatatypeMessage: a datatype Triton does not know is
// '<invalid>' in its message.
func TestTritonUnknownDatatypeMessage(t *testing.T) {
	h := startSimple(t)
	req := simpleRequest("INT32", []int64{1, 16}, "INPUT0", "INPUT1")
	req.Inputs[0].Datatype = "FOO"
	_, err := h.client.ModelInfer(context.Background(), req)
	wantExact(t, err, codes.InvalidArgument, "[request id: <id_unknown>] inference input 'INPUT0' data-type is '<invalid>', but model 'simple' expects 'INT32'")
}

// TestRefusedRequestsAreNotStatistics: requests refused before they reach
// the model (bad tensors) count neither as successes nor as failures.
func TestRefusedRequestsAreNotStatistics(t *testing.T) {
	h := startSimple(t)
	ctx := context.Background()
	for _, req := range []*inference.ModelInferRequest{
		simpleRequest("FP32", []int64{1, 16}, "INPUT0", "INPUT1"),
		simpleRequest("INT32", []int64{1, 8}, "INPUT0", "INPUT1"),
		simpleRequest("INT32", []int64{1, 16}, "INPUT0"),
		simpleRequest("INT32", []int64{9, 16}, "INPUT0", "INPUT1"),
	} {
		if _, err := h.client.ModelInfer(ctx, req); err == nil {
			t.Fatal("a bad request succeeded")
		}
	}
	if _, err := h.client.ModelInfer(ctx, simpleRequest("INT32", []int64{1, 16}, "INPUT0", "INPUT1")); err != nil {
		t.Fatal(err)
	}
	st, err := h.client.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: "simple"})
	if err != nil {
		t.Fatal(err)
	}
	is := st.GetModelStats()[0].GetInferenceStats()
	if is.GetFail().GetCount() != 0 || is.GetSuccess().GetCount() != 1 || st.GetModelStats()[0].GetExecutionCount() != 1 {
		t.Errorf("statistics %v, want 1 success, 0 failures", st.GetModelStats()[0])
	}
}

// TestStreamResponsesAreTritons: every stream response says it is the final
// one (parameters["triton_final_response"]); an error for a request that was
// never issued carries only the request's id.
func TestStreamResponsesAreTritons(t *testing.T) {
	h := startSimple(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := h.client.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok := simpleRequest("INT32", []int64{1, 16}, "INPUT0", "INPUT1")
	ok.Id = "ok"
	unknown := simpleRequest("INT32", []int64{1, 16}, "INPUT0", "INPUT1")
	unknown.ModelName, unknown.ModelVersion, unknown.Id = "nope", "3", "bad"
	missing := simpleRequest("INT32", []int64{1, 16}, "INPUT0")
	missing.Id = "missing"
	for _, r := range []*inference.ModelInferRequest{ok, unknown, missing} {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	got := map[string]*inference.ModelStreamInferResponse{}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.GetInferResponse().GetId()] = r
	}
	if r := got["ok"]; r.GetErrorMessage() != "" || !r.GetInferResponse().GetParameters()["triton_final_response"].GetBoolParam() {
		t.Errorf("ok: %v, want triton_final_response true", r)
	}
	for id, msg := range map[string]string{
		"bad":     "Request for unknown model: 'nope' is not found",
		"missing": "[request id: missing] expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s).",
	} {
		r := got[id]
		want := &inference.ModelInferResponse{Id: id}
		if r.GetErrorMessage() != msg || r.GetInferResponse().String() != want.String() {
			t.Errorf("%s: error %q, response %v; want %q and only the id", id, r.GetErrorMessage(), r.GetInferResponse(), msg)
		}
	}
}

func wantExact(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want %s %q", code, msg)
		return
	}
	if st, _ := status.FromError(err); st.Code() != code || st.Message() != msg {
		t.Errorf("got %s %q\nwant %s %q", st.Code(), st.Message(), code, msg)
	}
}
