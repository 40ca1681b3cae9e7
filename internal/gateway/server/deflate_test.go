package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
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
}
