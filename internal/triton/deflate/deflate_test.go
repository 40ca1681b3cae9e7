package deflate_test

import (
	"bytes"
	"compress/zlib"
	"io"
	"testing"

	"google.golang.org/grpc/encoding"

	_ "github.com/tritongate/tritongate/internal/triton/deflate"
)

// deflate is zlib's format, as grpc core (Triton) writes it; a raw deflate
// stream (no zlib header) is refused.
func TestDeflateIsZlib(t *testing.T) {
	c := encoding.GetCompressor("deflate")
	if c == nil || encoding.GetCompressor("gzip") == nil {
		t.Fatal("deflate or gzip not installed")
	}
	var zb bytes.Buffer
	zw := zlib.NewWriter(&zb)
	zw.Write([]byte("tensor bytes"))
	zw.Close()
	r, err := c.Decompress(&zb)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "tensor bytes" {
		t.Fatalf("deflate read %q from a zlib stream", got)
	}
	var out bytes.Buffer
	w, _ := c.Compress(&out)
	w.Write([]byte("answer"))
	w.Close()
	zr, err := zlib.NewReader(&out)
	if err != nil {
		t.Fatalf("what we write is not zlib: %v", err)
	}
	if got, _ := io.ReadAll(zr); string(got) != "answer" {
		t.Fatalf("zlib read %q", got)
	}
	if _, err := c.Decompress(bytes.NewReader([]byte{0xff, 0x00, 0x01})); err == nil {
		t.Fatal("a stream without a zlib header was taken")
	}
}
