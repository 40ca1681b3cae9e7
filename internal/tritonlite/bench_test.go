package tritonlite_test

import (
	"context"
	"testing"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// BenchmarkIdentityOverhead decomposes the per-request cost on the identity
// model (1x4 FP32): the executor alone, the server's handler (validation,
// scheduling, response) called in-process, and a full gRPC round trip in
// memory (bufconn) and over loopback TCP.
func BenchmarkIdentityOverhead(b *testing.B) {
	repo := b.TempDir()
	litetest.WriteModel(b, repo, "ident", litetest.Identity("ident"))
	req := fp32Request("ident", 1, 1, 2, 3, 4)
	ctx := context.Background()

	b.Run("executor", func(b *testing.B) {
		cfg := &inference.ModelConfig{
			Input:  []*inference.ModelInput{{Name: "INPUT0", DataType: inference.DataType_TYPE_FP32, Dims: []int64{4}}},
			Output: []*inference.ModelOutput{{Name: "OUTPUT0", DataType: inference.DataType_TYPE_FP32, Dims: []int64{4}}},
		}
		e, err := tritonlite.Builtins()["identity"].NewExecutor(ctx, tritonlite.Instance{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		in := []tensor.Tensor{tensor.Of("INPUT0", []int64{1, 4}, []float32{1, 2, 3, 4})}
		outs := []string{"OUTPUT0"}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Execute(ctx, in, outs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handler", func(b *testing.B) {
		s := litetest.Start(b, repo, litetest.Config{})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Server.ModelInfer(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tcp := range []bool{false, true} {
		name := "grpc-bufconn"
		if tcp {
			name = "grpc-loopback"
		}
		b.Run(name, func(b *testing.B) {
			s := litetest.Start(b, repo, litetest.Config{TCP: tcp})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Client.ModelInfer(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
