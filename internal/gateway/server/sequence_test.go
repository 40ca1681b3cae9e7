package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// seqRequest is a request of sequence id, with its flags, as Triton's
// clients send it (parameters sequence_id, sequence_start, sequence_end).
func seqRequest(id int64, start, end bool) *inference.ModelInferRequest {
	r := request("m")
	r.Parameters = map[string]*inference.InferParameter{
		"sequence_id":    {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: id}},
		"sequence_start": {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: start}},
		"sequence_end":   {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: end}},
	}
	return r
}

// Every request of a sequence reaches the backend and the version that
// served its START (Triton keeps the sequence's state there), through the
// data plane and on streams; the pin goes with END. Without it, requests
// of one sequence were spread over the backends and the split's versions.
func TestSequencesStayOnTheirBackendAndVersion(t *testing.T) {
	model := identity("m", `version_policy { all {} }`)
	b1 := backend(t, map[string]string{"m": model}, 1, 2)
	b2 := backend(t, map[string]string{"m": model}, 1, 2)
	g := startGateway(t, `
pools:
  - name: cpu
    endpoints: [{b1}, {b2}]
    health: {interval: 50ms}
routes:
  - model: m
    pool: cpu
    versions:
      - {version: "1", weight: 50}
      - {version: "2", weight: 50}
`, addrs("b1", b1, "b2", b2))
	g.waitReady(t, "m", "1")
	g.waitReady(t, "m", "2")
	backends := []*litetest.Server{b1, b2}
	count := func() [2]uint64 { return [2]uint64{served(t, b1, "m"), served(t, b2, "m")} }

	for seq := int64(1); seq <= 8; seq++ {
		before := count()
		r, err := g.client.ModelInfer(context.Background(), seqRequest(seq, true, false))
		if err != nil {
			t.Fatalf("sequence %d START: %v", seq, err)
		}
		version := r.ModelVersion
		after := count()
		on := 0
		if after[1] > before[1] {
			on = 1
		}
		for i := range 10 {
			r, err := g.client.ModelInfer(context.Background(), seqRequest(seq, false, i == 9))
			if err != nil {
				t.Fatalf("sequence %d request %d: %v", seq, i, err)
			}
			if r.ModelVersion != version {
				t.Fatalf("sequence %d started on version %s, request %d served by version %s", seq, version, i, r.ModelVersion)
			}
		}
		now := count()
		if now[on]-after[on] != 10 || now[1-on] != after[1-on] {
			t.Fatalf("sequence %d started on %s; its 10 later requests: %d there, %d on the other backend",
				seq, backends[on].Addr, now[on]-after[on], now[1-on]-after[1-on])
		}
	}

	// On a stream (the relayed path), the same.
	stream, err := g.client.ModelStreamInfer(context.Background(), grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	before := count()
	var version string
	for i := range 12 {
		if err := stream.Send(seqRequest(100, i == 0, i == 11)); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil || r.ErrorMessage != "" {
			t.Fatalf("stream request %d: %v %q", i, err, r.GetErrorMessage())
		}
		if i == 0 {
			version = r.InferResponse.ModelVersion
		} else if r.InferResponse.ModelVersion != version {
			t.Fatalf("stream sequence started on version %s, request %d served by %s", version, i, r.InferResponse.ModelVersion)
		}
	}
	stream.CloseSend()
	after := count()
	if d0, d1 := after[0]-before[0], after[1]-before[1]; d0 != 0 && d1 != 0 {
		t.Fatalf("one stream sequence was served by both backends: %d and %d", d0, d1)
	}
}

// A stream's requests of one sequence reach the backend in the order they
// were sent, and their answers come back in that order, as Triton's stream
// handler does; requests of other sequences and without one are not held
// up behind them. The gateway ran every request of a stream at once, so a
// burst of one sequence reached the backend (and came back) out of order:
// NVIDIA's simple_grpc_sequence_stream_infer_client then got "must specify
// the START flag on the first request of the sequence".
func TestStreamKeepsASequencesOrder(t *testing.T) {
	// Executions take 0-20 ms at random: requests run at once finish in
	// any order.
	b := backend(t, map[string]string{"m": identity("m",
		`parameters { key: "fault_latency_jitter" value { string_value: "20ms" } }`,
		`parameters { key: "fault_latency_distribution" value { string_value: "uniform" } }`)})
	g := startGateway(t, `
pools:
  - name: cpu
    endpoints: [{b}]
    health: {interval: 50ms}
routes:
  - {model: m, pool: cpu}
`, addrs("b", b))
	g.waitReady(t, "m", "")
	stream, err := g.client.ModelStreamInfer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	for seq := int64(1); seq <= 2; seq++ {
		for i := range n {
			r := seqRequest(seq, i == 0, i == n-1)
			r.Id = fmt.Sprintf("%d-%02d", seq, i)
			if err := stream.Send(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	stream.CloseSend()
	next := map[string]int{}
	for range 2 * n {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.ErrorMessage != "" {
			t.Fatalf("stream error: %s", r.ErrorMessage)
		}
		seq, i, _ := strings.Cut(r.InferResponse.Id, "-")
		if want := fmt.Sprintf("%02d", next[seq]); i != want {
			t.Fatalf("sequence %s: answer %s came before %s", seq, i, want)
		}
		next[seq]++
	}
}
