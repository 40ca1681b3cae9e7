package tritonlite_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/proto/inference"
)

// Expected values and messages below are what tritonserver 2.51 answered
// for interop/triton/simple_sequence (the Python model with the same
// semantics as the builtin "sequence" backend).

// simpleSequence is interop/triton/simple_sequence/config.pbtxt with the
// builtin backend; replace rewrites parts of it.
func simpleSequence(name string, replace ...string) string {
	c := `name: "simple_sequence"
backend: "sequence"
max_batch_size: 0
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  direct { }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] }
  ]
}
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1, 1 ] } ]
output [
  { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1, 1 ] },
  { name: "ACCUMULATOR" data_type: TYPE_INT32 dims: [ 1, 1 ] }
]
instance_group [ { kind: KIND_CPU count: 1 } ]
`
	c = strings.Replace(c, `name: "simple_sequence"`, `name: "`+name+`"`, 1)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(c, replace[i]) {
			panic("simpleSequence: no " + replace[i])
		}
		c = strings.Replace(c, replace[i], replace[i+1], 1)
	}
	return c
}

// batchedSequence is the same model with max_batch_size 4 and dims [1].
func batchedSequence(name string, replace ...string) string {
	return simpleSequence(name, append([]string{"max_batch_size: 0", "max_batch_size: 4",
		`name: "INPUT" data_type: TYPE_INT32 dims: [ 1, 1 ]`, `name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ]`,
		`name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1, 1 ]`, `name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ]`,
		`name: "ACCUMULATOR" data_type: TYPE_INT32 dims: [ 1, 1 ]`, `name: "ACCUMULATOR" data_type: TYPE_INT32 dims: [ 1 ]`}, replace...)...)
}

// seqStep is one request of a sequence test and what it gets.
type seqStep struct {
	model      string
	id         any // int64, string or nil (no sequence_id)
	value      int32
	rows       int64 // the request's first dimension (default 1)
	start, end bool
	timeout    time.Duration
	out, acc   int32
	code       codes.Code
	msg        string
}

func seqRequest(s seqStep) *inference.ModelInferRequest {
	model := s.model
	if model == "" {
		model = "simple_sequence"
	}
	rows := s.rows
	if rows == 0 {
		rows = 1
	}
	vals := make([]int32, rows)
	for i := range vals {
		vals[i] = s.value
	}
	req := &inference.ModelInferRequest{ModelName: model, Parameters: map[string]*inference.InferParameter{}}
	tensor.SetRequestInputs(req, []tensor.Tensor{tensor.Of("INPUT", []int64{rows, 1}, vals)})
	switch id := s.id.(type) {
	case int64:
		req.Parameters["sequence_id"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: id}}
	case int:
		req.Parameters["sequence_id"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: int64(id)}}
	case string:
		req.Parameters["sequence_id"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_StringParam{StringParam: id}}
	}
	if s.start {
		req.Parameters["sequence_start"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}}
	}
	if s.end {
		req.Parameters["sequence_end"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}}
	}
	if s.timeout > 0 {
		req.Parameters["timeout"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: s.timeout.Microseconds()}}
	}
	return req
}

// checkSeqResponse compares a response with a step's expectation.
func checkSeqResponse(t *testing.T, label string, s seqStep, resp *inference.ModelInferResponse, err error) {
	t.Helper()
	if s.code != codes.OK {
		if err == nil {
			t.Errorf("%s: answered, want %s %q", label, s.code, s.msg)
			return
		}
		if st, _ := status.FromError(err); st.Code() != s.code || st.Message() != s.msg {
			t.Errorf("%s: got %s %q\nwant %s %q", label, st.Code(), st.Message(), s.code, s.msg)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", label, err)
		return
	}
	outs, err := tensor.ResponseOutputs(resp)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]int32{}
	for _, o := range outs {
		v, _ := tensor.Values[int32](o)
		got[o.Name] = v
	}
	if len(got["OUTPUT"]) == 0 || got["OUTPUT"][0] != s.out || (got["ACCUMULATOR"] != nil && got["ACCUMULATOR"][0] != s.acc) {
		t.Errorf("%s: OUTPUT %v ACCUMULATOR %v, want %d %d", label, got["OUTPUT"], got["ACCUMULATOR"], s.out, s.acc)
	}
}

func runSeqSteps(t *testing.T, c inference.GRPCInferenceServiceClient, steps []seqStep) {
	t.Helper()
	for i, s := range steps {
		resp, err := c.ModelInfer(context.Background(), seqRequest(s))
		checkSeqResponse(t, "step "+itoa(i), s, resp, err)
	}
}

func notStarted(id, model string) string {
	return "inference request for sequence " + id + " to model '" + model + "' must specify the START flag on the first request of the sequence"
}

const noCorrID = "inference request to model 'simple_sequence' must specify a non-zero or non-empty correlation ID"

// nvidiaSequences are the three sequences of NVIDIA's
// simple_grpc_sequence_{sync,stream}_infer_client examples and the OUTPUT
// values they check.
func nvidiaSequences() [][]seqStep {
	values := []int32{11, 7, 5, 3, 2, 0, 1}
	seqs := []struct {
		id    any
		first int32
		sign  int32
	}{{int64(1000), 0, 1}, {int64(1001), 100, -1}, {"c6c2cc5a-7f34-4d3e-9c1e-3f8f2b1d6a90", 20, -1}}
	var out [][]seqStep
	for _, sq := range seqs {
		in := []int32{sq.first}
		for _, v := range values {
			in = append(in, sq.sign*v)
		}
		var steps []seqStep
		var acc int32
		for i, v := range in {
			acc += v
			want := v
			if i == 0 {
				want = v + 1
			}
			steps = append(steps, seqStep{id: sq.id, value: v, start: i == 0, end: i == len(in)-1, out: want, acc: acc})
		}
		out = append(out, steps)
	}
	return out
}

func TestSequenceBatcher(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "simple_sequence", simpleSequence("simple_sequence"))
	writeModel(t, repo, "seqb", batchedSequence("seqb"))
	writeModel(t, repo, "corr_u64", simpleSequence("corr_u64", `{ name: "READY"`, `{ name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] },
    { name: "READY"`))
	writeModel(t, repo, "corr_str", simpleSequence("corr_str", `{ name: "READY"`, `{ name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_STRING } ] },
    { name: "READY"`))
	h := start(t, repo, tritonlite.ModeNone)
	long := strings.Repeat("x", 129)
	tests := []struct {
		name  string
		steps []seqStep
	}{
		{"NVIDIA sync example", slices.Concat(nvidiaSequences()...)},
		{"no sequence id", []seqStep{
			{value: 1, code: codes.InvalidArgument, msg: noCorrID},
			{value: 1, start: true, code: codes.InvalidArgument, msg: noCorrID},
			{id: 0, value: 1, start: true, code: codes.InvalidArgument, msg: noCorrID},
			{id: "", value: 7, start: true, code: codes.InvalidArgument, msg: noCorrID},
		}},
		{"not started", []seqStep{
			{id: 5, value: 1, code: codes.InvalidArgument, msg: notStarted("5", "simple_sequence")},
			{id: 5, value: 1, end: true, code: codes.InvalidArgument, msg: notStarted("5", "simple_sequence")},
			{id: "zzz", value: 7, code: codes.InvalidArgument, msg: notStarted("zzz", "simple_sequence")},
		}},
		{"start, restart, end, after the end", []seqStep{
			{id: 7, value: 3, start: true, out: 4, acc: 3},
			{id: 7, value: 2, out: 2, acc: 5},
			{id: 7, value: 10, start: true, out: 11, acc: 10},
			{id: 7, value: 1, end: true, out: 1, acc: 11},
			{id: 7, value: 1, code: codes.InvalidArgument, msg: notStarted("7", "simple_sequence")},
		}},
		{"one request sequences", []seqStep{
			{id: 8, value: 4, start: true, end: true, out: 5, acc: 4},
			{id: -3, value: 4, start: true, end: true, out: 5, acc: 4},
			{id: strings.Repeat("x", 128), value: 7, start: true, end: true, out: 8, acc: 7},
		}},
		{"string ids", []seqStep{
			{id: "abc", value: 5, start: true, out: 6, acc: 5},
			{id: "abc", value: 6, out: 6, acc: 11},
			{id: "abc", value: 7, end: true, out: 7, acc: 18},
			{id: long, value: 7, start: true, code: codes.Unimplemented, msg: "string correlation ID cannot be longer than 128 characters"},
		}},
		{"batch size", []seqStep{
			{model: "seqb", id: 12, value: 1, rows: 2, start: true, code: codes.InvalidArgument, msg: "inference request to model 'seqb' must specify batch-size 1 due to requirements of sequence batcher"},
			{model: "seqb", id: 12, value: 1, start: true, out: 2, acc: 1},
			{model: "seqb", id: 12, value: 1, end: true, out: 1, acc: 2},
		}},
		{"CORRID data type (Triton's later message; 2.51 crashes)", []seqStep{
			{model: "corr_u64", id: "abc", value: 1, start: true, code: codes.InvalidArgument, msg: "[request id: <id_unknown>] sequence batching control 'CORRID' data-type is 'BYTES', but model 'corr_u64' expects 'UINT64'"},
			{model: "corr_str", id: 9, value: 1, start: true, code: codes.InvalidArgument, msg: "[request id: <id_unknown>] sequence batching control 'CORRID' data-type is 'UINT64', but model 'corr_str' expects 'BYTES'"},
			{model: "corr_u64", id: 9, value: 1, start: true, end: true, out: 2, acc: 1},
			{model: "corr_str", id: "abc", value: 1, start: true, end: true, out: 2, acc: 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSeqSteps(t, h.client, tc.steps) })
	}
	// Refused requests were never issued: the statistics count only the
	// executions.
	st, err := h.client.ModelStatistics(context.Background(), &inference.ModelStatisticsRequest{Name: "simple_sequence"})
	if err != nil {
		t.Fatal(err)
	}
	is := st.ModelStats[0].InferenceStats
	if is.Fail.Count != 0 || is.Success.Count != st.ModelStats[0].ExecutionCount || is.Success.Count != 24+4+3+3 {
		t.Errorf("statistics: success %d, fail %d, executions %d", is.Success.Count, is.Fail.Count, st.ModelStats[0].ExecutionCount)
	}
}

// TestSequenceStream: NVIDIA's stream example sends all three sequences on
// one stream without waiting; they run in order (one slot: one after the
// other) and every response carries the example's value.
func TestSequenceStream(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "simple_sequence", simpleSequence("simple_sequence"))
	h := start(t, repo, tritonlite.ModeNone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := h.client.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]seqStep{}
	for i, steps := range nvidiaSequences() {
		for j, s := range steps {
			req := seqRequest(s)
			req.Id = itoa(i) + "_" + itoa(j)
			want[req.Id] = s
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Errors come back on the stream, with only the request's id.
	bad := seqRequest(seqStep{id: 77, value: 1})
	bad.Id = "bad"
	if err := stream.Send(bad); err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	n := 0
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		id := r.GetInferResponse().GetId()
		if id == "bad" {
			if r.ErrorMessage != notStarted("77", "simple_sequence") || r.InferResponse.String() != (&inference.ModelInferResponse{Id: "bad"}).String() {
				t.Errorf("bad: %v", r)
			}
			continue
		}
		var respErr error
		if r.ErrorMessage != "" {
			respErr = errors.New(r.ErrorMessage)
		}
		checkSeqResponse(t, id, want[id], r.InferResponse, respErr)
	}
	if n != len(want)+1 {
		t.Errorf("%d responses, want %d", n, len(want)+1)
	}
}

// TestSequenceSlots: with one slot a second sequence waits in the backlog
// until the first ends, or is rejected when its request's timeout passes
// first; an idle sequence loses its slot (the waiting one gets it) and its
// next request is refused; with two slots (two instances, or
// max_batch_size 2) interleaved sequences keep separate state.
func TestSequenceSlots(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "one", simpleSequence("one", "max_sequence_idle_microseconds: 5000000", "max_sequence_idle_microseconds: 3600000000"))
	writeModel(t, repo, "idle", simpleSequence("idle", "max_sequence_idle_microseconds: 5000000", "max_sequence_idle_microseconds: 20000"))
	writeModel(t, repo, "two", simpleSequence("two", "count: 1", "count: 2"))
	writeModel(t, repo, "rows", batchedSequence("rows", "max_batch_size: 4", "max_batch_size: 2"))
	writeModel(t, repo, "oldest", simpleSequence("oldest", "direct { }", "oldest { max_candidate_sequences: 2 }"))
	h := start(t, repo, tritonlite.ModeNone)
	c := h.client
	send := func(s seqStep) chan error {
		done := make(chan error, 1)
		go func() {
			resp, err := c.ModelInfer(context.Background(), seqRequest(s))
			if err == nil {
				checkSeqResponse(t, "async", s, resp, nil)
			}
			done <- err
		}()
		return done
	}
	waitDone := func(what string, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no answer", what)
			return nil
		}
	}

	t.Run("backlog until END", func(t *testing.T) {
		runSeqSteps(t, c, []seqStep{{model: "one", id: 100, value: 1, start: true, out: 2, acc: 1}})
		b := send(seqStep{model: "one", id: 200, value: 50, start: true, out: 51, acc: 50})
		runSeqSteps(t, c, []seqStep{{model: "one", id: 100, value: 2, out: 2, acc: 3}})
		select {
		case err := <-b:
			t.Fatalf("the second sequence ran while the only slot was taken: %v", err)
		default:
		}
		runSeqSteps(t, c, []seqStep{{model: "one", id: 100, value: 3, end: true, out: 3, acc: 6}})
		if err := waitDone("backlogged START", b); err != nil {
			t.Fatal(err)
		}
		runSeqSteps(t, c, []seqStep{{model: "one", id: 200, value: 1, end: true, out: 1, acc: 51}})
	})
	t.Run("backlog timeout", func(t *testing.T) {
		runSeqSteps(t, c, []seqStep{
			{model: "one", id: 500, value: 1, start: true, out: 2, acc: 1},
			{model: "one", id: 600, value: 1, start: true, timeout: 50 * time.Millisecond, code: codes.Unavailable, msg: "timeout of the corresponding sequence has been expired"},
			{model: "one", id: 500, value: 1, end: true, out: 1, acc: 2},
			{model: "one", id: 600, value: 1, code: codes.InvalidArgument, msg: notStarted("600", "one")},
		})
		if got := metric(t, h, "nv_inference_request_failure", map[string]string{"model": "one", "version": "1", "reason": "REJECTED"}); got != 1 {
			t.Errorf("failure{REJECTED} = %v, want 1", got)
		}
	})
	t.Run("idle sequence loses its slot", func(t *testing.T) {
		runSeqSteps(t, c, []seqStep{{model: "idle", id: 300, value: 1, start: true, out: 2, acc: 1}})
		// Whatever the timing, the waiting sequence runs once the idle
		// one's slot is released.
		if err := waitDone("START behind an idle sequence", send(seqStep{model: "idle", id: 400, value: 60, start: true, out: 61, acc: 60})); err != nil {
			t.Fatal(err)
		}
		runSeqSteps(t, c, []seqStep{{model: "idle", id: 300, value: 2, code: codes.InvalidArgument, msg: notStarted("300", "idle")}})
	})
	for _, model := range []string{"two", "rows", "oldest"} {
		t.Run("interleaved on "+model, func(t *testing.T) {
			runSeqSteps(t, c, []seqStep{
				{model: model, id: 1, value: 1, start: true, out: 2, acc: 1},
				{model: model, id: 2, value: 10, start: true, out: 11, acc: 10},
				{model: model, id: 1, value: 2, out: 2, acc: 3},
				{model: model, id: 2, value: 20, out: 20, acc: 30},
				{model: model, id: 2, value: 30, end: true, out: 30, acc: 60},
				{model: model, id: 1, value: 3, end: true, out: 3, acc: 6},
			})
		})
	}
}

// TestSequenceUnload: unloading a model with a sequence in progress does
// not wait for the sequence; the new load knows nothing of it.
func TestSequenceUnload(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "simple_sequence", simpleSequence("simple_sequence", "max_sequence_idle_microseconds: 5000000", "max_sequence_idle_microseconds: 3600000000"))
	h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.StartupModels = []string{"simple_sequence"} })
	ctx := context.Background()
	runSeqSteps(t, h.client, []seqStep{{id: 1, value: 1, start: true, out: 2, acc: 1}})
	done := make(chan error, 1)
	go func() {
		_, err := h.client.RepositoryModelUnload(ctx, &inference.RepositoryModelUnloadRequest{ModelName: "simple_sequence"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("unload waited for a sequence in progress")
	}
	if _, err := h.client.RepositoryModelLoad(ctx, loadReq("simple_sequence")); err != nil {
		t.Fatal(err)
	}
	runSeqSteps(t, h.client, []seqStep{{id: 1, value: 1, code: codes.InvalidArgument, msg: notStarted("1", "simple_sequence")}})
}

// recorder is a backend that records the inputs of each execution and the
// sequence slot.
type recorder struct {
	mu    sync.Mutex
	seen  [][]tensor.Tensor
	slots []int
}

func (rec *recorder) backend() tritonlite.Backend {
	return tritonlite.BackendFunc(func(_ context.Context, inst tritonlite.Instance) (tritonlite.Executor, error) {
		return recExec{rec, inst.Config.GetOutput()[0].GetName()}, nil
	})
}

type recExec struct {
	rec *recorder
	out string
}

func (e recExec) Execute(ctx context.Context, inputs []tensor.Tensor, _ []string) ([]tensor.Tensor, error) {
	slot, _ := tritonlite.SequenceSlot(ctx)
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	e.rec.seen = append(e.rec.seen, slices.Clone(inputs))
	e.rec.slots = append(e.rec.slots, slot)
	in := inputs[0]
	return []tensor.Tensor{{Name: e.out, DataType: in.DataType, Shape: in.Shape, Data: in.Data}}, nil
}

func (e recExec) Close() error { return nil }

// TestSequenceControls: every control kind and data type reaches the model
// as an input with the configured false/true values, shape [1] ([1,1] when
// the model batches).
func TestSequenceControls(t *testing.T) {
	controls := `control_input [
    { name: "S" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0.5, 1.5 ] } ] },
    { name: "E" control [ { kind: CONTROL_SEQUENCE_END bool_false_true: [ false, true ] } ] },
    { name: "R" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 7, 9 ] } ] },
    { name: "C" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: %s } ] }
  ]`
	cfg := func(mbs, corr string) string {
		return `name: "m"
backend: "rec"
max_batch_size: ` + mbs + `
sequence_batching { ` + strings.Replace(controls, "%s", corr, 1) + ` }
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]`
	}
	f32 := func(v float32) []byte { return tensor.Of("", nil, []float32{v}).Data }
	i32 := func(v int32) []byte { return tensor.Of("", nil, []int32{v}).Data }
	tests := []struct {
		corr   string
		id     any
		batch  bool
		wantC  []byte
		wantDT string
	}{
		{"TYPE_UINT64", int64(0x0102030405060708), false, []byte{8, 7, 6, 5, 4, 3, 2, 1}, "UINT64"},
		{"TYPE_INT64", int64(-2), true, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "INT64"},
		{"TYPE_UINT32", int64(0x0102030405060708), false, []byte{8, 7, 6, 5}, "UINT32"},
		{"TYPE_INT32", int64(42), true, []byte{42, 0, 0, 0}, "INT32"},
		{"TYPE_STRING", "seq-α", false, tensor.EncodeBytes([][]byte{[]byte("seq-α")}), "BYTES"},
	}
	for _, tc := range tests {
		t.Run(tc.corr, func(t *testing.T) {
			rec := &recorder{}
			backends := tritonlite.Builtins()
			backends["rec"] = rec.backend()
			mbs := "0"
			shape := []int64{1}
			if tc.batch {
				mbs, shape = "2", []int64{1, 1}
			}
			repo := t.TempDir()
			writeModel(t, repo, "m", cfg(mbs, tc.corr))
			h := start(t, repo, tritonlite.ModeNone, func(o *tritonlite.Options) { o.Backends = backends })
			for _, s := range []seqStep{{id: tc.id, start: true}, {id: tc.id}, {id: tc.id, end: true}} {
				s.model = "m"
				req := seqRequest(s)
				if !tc.batch {
					req.Inputs[0].Shape = []int64{1}
				}
				if _, err := h.client.ModelInfer(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			}
			want := []map[string][]byte{
				{"S": f32(1.5), "E": {0}, "R": i32(9), "C": tc.wantC},
				{"S": f32(0.5), "E": {0}, "R": i32(9), "C": tc.wantC},
				{"S": f32(0.5), "E": {1}, "R": i32(9), "C": tc.wantC},
			}
			dts := map[string]string{"S": "FP32", "E": "BOOL", "R": "INT32", "C": tc.wantDT}
			if len(rec.seen) != 3 {
				t.Fatalf("%d executions, want 3", len(rec.seen))
			}
			for i, inputs := range rec.seen {
				names := []string{}
				for _, in := range inputs {
					names = append(names, in.Name)
					w, ok := want[i][in.Name]
					if !ok {
						continue
					}
					if in.DataType.String() != dts[in.Name] || !slices.Equal(in.Shape, shape) || string(in.Data) != string(w) {
						t.Errorf("request %d: control %s = %s %v %v, want %s %v %v", i, in.Name, in.DataType, in.Shape, in.Data, dts[in.Name], shape, w)
					}
				}
				if !slices.Equal(names, []string{"INPUT", "S", "E", "R", "C"}) {
					t.Errorf("request %d: inputs %v", i, names)
				}
				if rec.slots[i] != 0 {
					t.Errorf("request %d ran in slot %d, want 0", i, rec.slots[i])
				}
			}
		})
	}
}

// TestSequenceConfigs: the sequence_batching features tritonlite does not
// implement fail the load naming the field; the others load as in Triton.
func TestSequenceConfigs(t *testing.T) {
	tests := []struct {
		name, config string
		wantErr      string
	}{
		{"direct", simpleSequence("m"), ""},
		{"direct with options", simpleSequence("m", "direct { }", "direct { max_queue_delay_microseconds: 100 minimum_slot_utilization: 0.5 }"), ""},
		{"oldest", batchedSequence("m", "direct { }", "oldest { max_candidate_sequences: 4 preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 100 preserve_ordering: true }"), ""},
		{"oldest with no candidates", simpleSequence("m", "direct { }", "oldest { }"), ""},
		{"no strategy", simpleSequence("m", "direct { }", ""), ""},
		{"default idle time", simpleSequence("m", "max_sequence_idle_microseconds: 5000000", ""), ""},
		{"implicit state", simpleSequence("m", "direct { }", `direct { } state [ { input_name: "IS" output_name: "OS" data_type: TYPE_INT32 dims: [ 1 ] } ]`),
			"load failed for model 'm': version 1 is at UNAVAILABLE state: Unsupported: model 'm': sequence_batching.state (implicit state) is not supported by tritonlite;\n"},
		{"iterative sequence", simpleSequence("m", "direct { }", "direct { } iterative_sequence: true"),
			"load failed for model 'm': version 1 is at UNAVAILABLE state: Unsupported: model 'm': sequence_batching.iterative_sequence is not supported by tritonlite;\n"},
		{"sequence backend without sequence batching", `name: "m" backend: "sequence" max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ] output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]`,
			"sequence model 'm': needs sequence_batching"},
		{"sequence backend without START", simpleSequence("m", `{ name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },`, ""),
			"sequence model 'm': needs a CONTROL_SEQUENCE_START control input"},
		{"sequence backend with FP32 data", simpleSequence("m", `name: "INPUT" data_type: TYPE_INT32`, `name: "INPUT" data_type: TYPE_FP32`),
			"sequence model 'm': 'INPUT' must be TYPE_INT32, is TYPE_FP32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			writeModel(t, repo, "m", tc.config)
			h := start(t, repo, tritonlite.ModeExplicit)
			_, err := h.client.RepositoryModelLoad(context.Background(), loadReq("m"))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				runSeqSteps(t, h.client, []seqStep{{model: "m", id: 3, value: 2, start: true, end: true, out: 3, acc: 2, rows: 1}})
				return
			}
			if st, _ := status.FromError(err); err == nil || !strings.Contains(st.Message(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
