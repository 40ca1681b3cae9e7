// Package deflate installs the "deflate" gRPC message encoding in grpc-go,
// as Triton's server (grpc core) speaks it, and grpc's own "gzip" beside
// it: Triton accepts both (its examples send them with -C), grpc-go ships
// only gzip. grpc core's deflate is the zlib format (RFC 1950), which
// compress/zlib reads and writes. Import it for its side effect.
package deflate

import (
	"compress/zlib"
	"io"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // Triton takes gzip too
)

// Name is the grpc-encoding value.
const Name = "deflate"

func init() { encoding.RegisterCompressor(compressor{}) }

type compressor struct{}

func (compressor) Name() string { return Name }

func (compressor) Compress(w io.Writer) (io.WriteCloser, error) { return zlib.NewWriter(w), nil }

func (compressor) Decompress(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }
