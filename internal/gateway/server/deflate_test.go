package server_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// Triton takes gzip and deflate (Triton's own examples send both with -C);
// the gateway refused deflate ("grpc: Decompressor is not installed for
// grpc-encoding \"deflate\"").
func TestCompressedRequests(t *testing.T) {
	b := backend(t, map[string]string{"m": identity("m")})
	g := startGateway(t, `
pools:
  - name: cpu
    endpoints: [{b}]
    health: {interval: 50ms}
routes:
  - {model: m, pool: cpu}
`, addrs("b", b))
	g.waitReady(t, "m", "")
	for _, c := range []string{"gzip", "deflate"} {
		r, err := g.client.ModelInfer(context.Background(), request("m", 1, 2, 3, 4), grpc.UseCompressor(c))
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if len(r.RawOutputContents) != 1 || len(r.RawOutputContents[0]) != 16 {
			t.Fatalf("%s: answer %v", c, r)
		}
	}
	// deflate is zlib's format, as grpc core (Triton) writes it.
	var zb bytes.Buffer
	zw := zlib.NewWriter(&zb)
	zw.Write([]byte("tensor bytes"))
	zw.Close()
	r, err := encoding.GetCompressor("deflate").Decompress(&zb)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "tensor bytes" {
		t.Fatalf("deflate read %q from a zlib stream", got)
	}
}
