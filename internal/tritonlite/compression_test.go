package tritonlite_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// encodings records, on the client, the grpc-encoding of each answer's
// headers and whether its messages arrived compressed.
type encodings struct {
	mu         sync.Mutex
	header     []string
	compressed []bool
}

func (e *encodings) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (e *encodings) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (e *encodings) HandleConn(context.Context, stats.ConnStats) {}
func (e *encodings) HandleRPC(_ context.Context, s stats.RPCStats) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch s := s.(type) {
	case *stats.InHeader:
		e.header = append(e.header, s.Compression)
	case *stats.InPayload:
		e.compressed = append(e.compressed, s.CompressedLength != s.Length)
	}
}

func (e *encodings) take() ([]string, []bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, c := e.header, e.compressed
	e.header, e.compressed = nil, nil
	return h, c
}

// TestCompression: requests compressed with gzip or deflate (grpc core's
// zlib format, as Triton's clients send with -C) are served, and the
// answers come back compressed in the request's encoding, as grpc-go does;
// an uncompressed request gets an uncompressed answer.
func TestCompression(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	s := litetest.Start(t, repo, litetest.Config{TCP: true, Options: tritonlite.Options{ControlMode: tritonlite.ModeNone}})
	rec := &encodings{}
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := inference.NewGRPCInferenceServiceClient(conn)
	for _, enc := range []string{"gzip", "deflate", ""} {
		t.Run("encoding "+enc, func(t *testing.T) {
			ctx := context.Background()
			var opts []grpc.CallOption
			if enc != "" {
				opts = append(opts, grpc.UseCompressor(enc))
			}
			vals := make([]float32, 8*4) // zeros compress
			resp, err := c.ModelInfer(ctx, fp32Request("ident", 8, vals...), opts...)
			if err != nil {
				t.Fatal(err)
			}
			outs, err := tensor.ResponseOutputs(resp)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := tensor.Values[float32](outs[0]); !slices.Equal(got, vals) {
				t.Errorf("outputs %v, want %v", got, vals)
			}
			header, compressed := rec.take()
			if !slices.Equal(header, []string{enc}) || !slices.Equal(compressed, []bool{enc != ""}) {
				t.Errorf("unary answer: grpc-encoding %q, compressed %v; want %q, %v", header, compressed, enc, enc != "")
			}

			stream, err := c.ModelStreamInfer(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := stream.Send(fp32Request("ident", 8, vals...)); err != nil {
					t.Fatal(err)
				}
				r, err := stream.Recv()
				if err != nil || r.ErrorMessage != "" {
					t.Fatalf("stream: %v %v", r, err)
				}
			}
			stream.CloseSend()
			if _, err := stream.Recv(); err == nil {
				t.Fatal("a third answer")
			}
			header, compressed = rec.take()
			if !slices.Equal(header, []string{enc}) || !slices.Equal(compressed, []bool{enc != "", enc != ""}) {
				t.Errorf("stream answers: grpc-encoding %q, compressed %v; want %q, %v", header, compressed, enc, enc != "")
			}
		})
	}
}
