package tritonlite_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// FuzzModelInfer feeds arbitrary requests to the server's handler: it must
// never panic, and every refusal must be a client error, never INTERNAL.
func FuzzModelInfer(f *testing.F) {
	repo := f.TempDir()
	litetest.WriteModel(f, repo, "ident", litetest.Identity("ident"))
	litetest.WriteModel(f, repo, "words", `name: "words" backend: "identity" max_batch_size: 4
input [ { name: "IN" data_type: TYPE_STRING dims: [ -1 ] reshape { shape: [ -1 ] } } ] output [ { name: "OUT" data_type: TYPE_STRING dims: [ -1 ] } ]
dynamic_batching { }`)
	litetest.WriteModel(f, repo, "simple_sequence", simpleSequence("simple_sequence", "max_sequence_idle_microseconds: 5000000", "max_sequence_idle_microseconds: 20000"))
	s := litetest.Start(f, repo, litetest.Config{})
	seed := func(req *inference.ModelInferRequest) {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	seed(fp32Request("ident", 2, seq(8, 0)...))
	words := &inference.ModelInferRequest{ModelName: "words"}
	tensor.SetRequestInputs(words, []tensor.Tensor{tensor.OfStrings("IN", []int64{1, 2}, []string{"a", "bc"})})
	seed(words)
	seed(seqRequest(seqStep{id: int64(7), value: 3, start: true}))
	seed(seqRequest(seqStep{id: "abc", value: 3, end: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req inference.ModelInferRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		_, err := s.Server.ModelInfer(context.Background(), &req)
		if st, _ := status.FromError(err); err != nil && st.Code() == codes.Internal {
			t.Fatalf("INTERNAL for a bad request: %v", err)
		}
	})
}
