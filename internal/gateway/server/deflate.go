package server

import (
	"compress/zlib"
	"io"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // Triton takes gzip; so does the gateway
)

// Triton's gRPC server (grpc core) takes the "gzip" and "deflate" message
// encodings; grpc-go ships only gzip. grpc core's deflate is the zlib
// format (RFC 1950), which compress/zlib reads and writes. Compressed calls
// take the relayed path (see fastEligible).
func init() { encoding.RegisterCompressor(deflate{}) }

type deflate struct{}

func (deflate) Name() string { return "deflate" }

func (deflate) Compress(w io.Writer) (io.WriteCloser, error) { return zlib.NewWriter(w), nil }

func (deflate) Decompress(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }
