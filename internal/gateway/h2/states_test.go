package h2

import (
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The stream states of RFC 9113 §5.1 and the header rules of §8.1-8.2, as
// h2spec checks them (its cases 5.1, 5.1.1, 8.1, 8.1.2.1, 8.1.2.2; grpc-go
// passes them): each probe is sent on a fresh connection, then a normal
// request on a new stream tells whether the connection survived.
func TestStreamStates(t *testing.T) {
	_, addr := serveH2(t, &echoHandler{maxMsg: 1 << 20})
	open := func(c *rawClient, id uint32, end bool) {
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.enc(request("/x")...), EndHeaders: true, EndStream: end})
	}
	for _, tc := range []struct {
		name  string
		probe func(t *testing.T, c *rawClient)
		// rst is the RST_STREAM code expected on stream 1 (0: none);
		// goaway the GOAWAY code that ends the connection (-1: it lives).
		rst    http2.ErrCode
		goaway int
	}{
		{"trailers end the request", func(t *testing.T, c *rawClient) {
			open(c, 1, false)
			c.fr.WriteData(1, false, GRPCFrame([]byte("hi")))
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(Field("x-trailer", "1")), EndHeaders: true, EndStream: true})
		}, 0, -1},
		{"HEADERS on a half-closed (remote) stream", func(t *testing.T, c *rawClient) {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(append(request("/x"), Field("hold", "1"))...), EndHeaders: true})
			c.fr.WriteData(1, true, GRPCFrame([]byte("hi")))
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(Field("x-trailer", "1")), EndHeaders: true, EndStream: true})
		}, http2.ErrCodeStreamClosed, -1},
		{"second HEADERS without END_STREAM", func(t *testing.T, c *rawClient) {
			open(c, 1, false)
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(Field("x-trailer", "1")), EndHeaders: true})
		}, http2.ErrCodeProtocol, -1},
		{"pseudo-header in trailers", func(t *testing.T, c *rawClient) {
			open(c, 1, false)
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(Field(":path", "/y")), EndHeaders: true, EndStream: true})
		}, http2.ErrCodeProtocol, -1},
		{"connection-specific header", func(t *testing.T, c *rawClient) {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(append(request("/x"), Field("connection", "keep-alive"))...), EndHeaders: true, EndStream: true})
		}, http2.ErrCodeProtocol, -1},
		{"TE other than trailers", func(t *testing.T, c *rawClient) {
			fields := request("/x")
			fields[len(fields)-1] = Field("te", "gzip")
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(fields...), EndHeaders: true, EndStream: true})
		}, http2.ErrCodeProtocol, -1},
		{"HEADERS on a closed stream", func(t *testing.T, c *rawClient) {
			open(c, 1, false)
			c.fr.WriteData(1, true, GRPCFrame([]byte("hi")))
			c.readUntil(t, func(f http2.Frame) bool { h, ok := f.(*http2.MetaHeadersFrame); return ok && h.StreamEnded() })
			open(c, 1, true)
		}, 0, int(http2.ErrCodeProtocol)},
		{"a stream id lower than the last", func(t *testing.T, c *rawClient) {
			open(c, 5, false)
			open(c, 3, true)
		}, 0, int(http2.ErrCodeProtocol)},
		{"frames the client sent before it saw our RST_STREAM", func(t *testing.T, c *rawClient) {
			// An answer before the request ended (a refusal) resets the
			// stream (NO_ERROR); the client's trailers, already on the way,
			// are discarded.
			open(c, 1, false)
			c.fr.WriteData(1, false, []byte{0, 0, 0x20, 0, 0}) // a 2 MiB message: over the limit, refused at once
			c.readUntil(t, func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(Field("x-trailer", "1")), EndHeaders: true, EndStream: true})
		}, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
			tc.probe(t, c)
			// A normal request on stream 7: answered unless the connection
			// ended.
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: c.enc(request("/x")...), EndHeaders: true})
			c.fr.WriteData(7, true, GRPCFrame([]byte("after")))
			var rst http2.ErrCode
			goaway := -1
			answered := false
			for !answered && goaway < 0 {
				f, err := c.readUntil(t, func(http2.Frame) bool { return true })
				if err != nil {
					break
				}
				switch f := f.(type) {
				case *http2.RSTStreamFrame:
					if f.StreamID == 1 {
						rst = f.ErrCode
					}
				case *http2.GoAwayFrame:
					goaway = int(f.ErrCode)
				case *http2.MetaHeadersFrame:
					answered = f.StreamID == 7 && f.StreamEnded()
				}
			}
			if goaway != tc.goaway {
				t.Errorf("GOAWAY %d, want %d (-1: none)", goaway, tc.goaway)
			}
			if tc.goaway < 0 && !answered {
				t.Error("the connection lives but the next request was not answered")
			}
			if tc.rst != 0 && rst != tc.rst {
				t.Errorf("RST_STREAM on stream 1: %v, want %v", rst, tc.rst)
			}
		})
	}
}
