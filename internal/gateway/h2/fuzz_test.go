package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// frames builds seed input: a sequence of HTTP/2 frames.
func frames(build func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte)) []byte {
	var out, hb bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	he := hpack.NewEncoder(&hb)
	enc := func(fields ...hpack.HeaderField) []byte {
		hb.Reset()
		for _, f := range fields {
			he.WriteField(f)
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	build(fr, enc)
	return out.Bytes()
}

func seeds() [][]byte {
	return [][]byte{
		frames(func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(request("/x")...), EndHeaders: true})
			fr.WriteData(1, true, GRPCFrame([]byte("hello")))
			fr.WriteWindowUpdate(1, 100)
			fr.WriteWindowUpdate(0, 100)
		}),
		frames(func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			block := enc(request("/x", Field("grpc-timeout", "5S"), Field("delay", "1ms"))...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block[:4], EndHeaders: false})
			fr.WriteContinuation(3, true, block[4:])
			fr.WriteData(3, false, []byte{0, 0, 0})
			fr.WriteData(3, true, []byte{0, 1, 'x'})
			fr.WriteRSTStream(3, http2.ErrCodeCancel)
			fr.WritePing(false, [8]byte{1})
			fr.WriteGoAway(3, http2.ErrCodeNo, nil)
		}),
		frames(func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: enc(request("/x", Field("hold", "1"))...), EndHeaders: true, EndStream: true})
			fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		}),
	}
}

// FuzzServerFrames feeds arbitrary frames to a server connection after the
// preface: it must neither panic nor hang, whatever a client sends.
func FuzzServerFrames(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	srv := NewServer(&echoHandler{maxMsg: 1 << 16}, ServerOptions{MaxConcurrentStreams: 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, nc := net.Pipe()
		c := newServerConn(srv, nc)
		done := make(chan struct{})
		go func() {
			c.serve()
			close(done)
		}()
		go io.Copy(io.Discard, cli)
		cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		cli.Write([]byte(http2.ClientPreface))
		cli.Write(data)
		cli.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the server connection did not end after its client closed")
		}
	})
}

// FuzzClientFrames feeds arbitrary frames from a backend to a client
// connection with a stream open: no panic, no hang, and the stream ends.
func FuzzClientFrames(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Add(frames(func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(Field(":status", "200"), Field("content-type", "application/grpc")), EndHeaders: true})
		fr.WriteData(1, false, GRPCFrame([]byte("reply")))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(Field("grpc-status", "0")), EndHeaders: true, EndStream: true})
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, backend := net.Pipe()
		go func() {
			backend.SetDeadline(time.Now().Add(3 * time.Second))
			preface := make([]byte, len(http2.ClientPreface))
			io.ReadFull(backend, preface)
			go io.Copy(io.Discard, backend)
			fr := http2.NewFramer(backend, nil)
			fr.WriteSettings()
			time.Sleep(time.Millisecond) // let the client open its stream
			backend.Write(data)
			backend.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		cc, err := Dial(ctx, "backend", ClientOptions{Dial: func(context.Context, string) (net.Conn, error) { return cli, nil }})
		if err != nil {
			return
		}
		defer cc.Close()
		r := newCall()
		if s, err := cc.Open(request("/x"), r, nil); err == nil {
			s.Send(GRPCFrame([]byte("q")), true, nil)
		} else {
			return
		}
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatal("the stream never ended although the backend closed the connection")
		}
	})
}

// FuzzParseTimeout: any grpc-timeout value parses or errors, never panics,
// and what parses is not negative.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"1S", "100m", "99999999H", "0n", "", "-1S", "1x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := ParseTimeout(v)
		if err == nil && d < 0 {
			t.Fatalf("ParseTimeout(%q) = %v", v, d)
		}
	})
}
