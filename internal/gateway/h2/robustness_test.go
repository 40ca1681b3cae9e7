package h2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Regression tests for what a review of the data plane found: one slow or
// hostile peer must not hurt the others, and no claim a peer makes may cost
// the gateway more than the bytes it actually sent.

type rawClient struct {
	nc  net.Conn
	fr  *http2.Framer
	buf bytes.Buffer
	he  *hpack.Encoder
}

func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	io.WriteString(nc, http2.ClientPreface)
	c := &rawClient{nc: nc, fr: http2.NewFramer(nc, nc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.he = hpack.NewEncoder(&c.buf)
	c.fr.WriteSettings(settings...)
	return c
}

func (c *rawClient) enc(fields ...hpack.HeaderField) []byte {
	c.buf.Reset()
	for _, f := range fields {
		c.he.WriteField(f)
	}
	return append([]byte(nil), c.buf.Bytes()...)
}

// readUntil reads frames until one satisfies ok (or the connection ends).
func (c *rawClient) readUntil(t *testing.T, ok func(http2.Frame) bool) (http2.Frame, error) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil || ok(f) {
			return f, err
		}
	}
}

func TestInvalidSettingsEndTheConnection(t *testing.T) {
	srv, addr := serveH2(t, &echoHandler{maxMsg: 1 << 20})
	for _, st := range []http2.Setting{
		{ID: http2.SettingMaxFrameSize, Val: 0},
		{ID: http2.SettingMaxFrameSize, Val: 1 << 24},
		{ID: http2.SettingEnablePush, Val: 2},
		{ID: http2.SettingInitialWindowSize, Val: 1 << 31},
	} {
		c := dialRaw(t, addr, st)
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.enc(request("/x")...), EndHeaders: true})
		c.fr.WriteData(1, true, GRPCFrame([]byte("hi")))
		f, err := c.readUntil(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
		if err != nil {
			t.Fatalf("%v: no GOAWAY: %v", st, err)
		}
		if code := f.(*http2.GoAwayFrame).ErrCode; code != http2.ErrCodeProtocol && code != http2.ErrCodeFlowControl {
			t.Errorf("%v: GOAWAY %v", st, code)
		}
	}
	done := make(chan struct{})
	go func() { srv.Streams(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the server is wedged after invalid SETTINGS")
	}
}

func TestWindowOverflowIsAFlowControlError(t *testing.T) {
	_, addr := serveH2(t, &echoHandler{maxMsg: 1 << 20})
	c := dialRaw(t, addr)
	c.fr.WriteWindowUpdate(0, 1<<31-1)
	f, err := c.readUntil(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	if err != nil || f.(*http2.GoAwayFrame).ErrCode != http2.ErrCodeFlowControl {
		t.Fatalf("got %v %v, want GOAWAY FLOW_CONTROL_ERROR", f, err)
	}
}

// A client that stops reading its responses holds up only its own
// connection: other clients' calls through the same backend connection go
// on, and Shutdown keeps to its deadline.
func TestSlowClientDoesNotStallOthers(t *testing.T) {
	backend, _ := grpcEcho(t)
	up, err := Dial(context.Background(), backend, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	srv := NewServer(&echoHandler{up: up, maxMsg: 64 << 20}, ServerOptions{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Close()
	addr := lis.Addr().String()

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(nc, http2.ClientPreface)
	fr := http2.NewFramer(nc, nc)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var hb bytes.Buffer
	he := hpack.NewEncoder(&hb)
	big := GRPCFrame(bytes.Repeat([]byte("x"), 4<<20))
	go func() {
		for i := uint32(0); i < 8; i++ {
			id := 2*i + 1
			hb.Reset()
			for _, f := range request("/relay/echo") {
				he.WriteField(f)
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
			for off := 0; off < len(big); off += 16384 {
				end := min(off+16384, len(big))
				if fr.WriteData(id, end == len(big), big[off:end]) != nil {
					return
				}
			}
		}
	}()
	time.Sleep(time.Second) // responses pile up for the client that does not read

	cc, err := Dial(context.Background(), addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, path := range []string{"/relay/echo", "/local"} {
		cl := newCall()
		cs, err := cc.Open(request(path), cl, nil)
		if err != nil {
			t.Fatal(err)
		}
		cs.Send(GRPCFrame([]byte("hi")), true, nil)
		select {
		case <-cl.done:
			if code, _ := Status(cl.trailers); cl.reset != nil || code != 0 {
				t.Errorf("%s: %v %v", path, cl.reset, cl.trailers)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: a good client's call hangs behind a client that does not read", path)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	srv.Shutdown(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown with a 500ms deadline took %v", d)
	}
}

// A backend that stops reading holds up only the calls sent to it.
func TestStuckBackendDoesNotStallClients(t *testing.T) {
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	stuck := make(chan net.Conn, 1)
	go func() {
		nc, err := bl.Accept()
		if err != nil {
			return
		}
		nc.(*net.TCPConn).SetReadBuffer(4096)
		pre := make([]byte, len(http2.ClientPreface))
		io.ReadFull(nc, pre)
		fr := http2.NewFramer(nc, nc)
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
		fr.WriteWindowUpdate(0, 1<<31-1-65535)
		fr.ReadFrame()
		stuck <- nc // and never read again
	}()
	up, err := Dial(context.Background(), bl.Addr().String(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	_, addr := serveH2(t, &echoHandler{up: up, maxMsg: 64 << 20})
	ccA, err := Dial(context.Background(), addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ccA.Close()
	csA, _ := ccA.Open(request("/relay/x"), newCall(), nil)
	csA.Send(GRPCFrame(bytes.Repeat([]byte("x"), 16<<20)), true, nil)
	time.Sleep(time.Second)
	ccB, err := Dial(context.Background(), addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ccB.Close()
	csB, _ := ccB.Open(request("/relay/y"), newCall(), nil)
	csB.Send(GRPCFrame([]byte("small")), true, nil)
	for _, cc := range []*ClientConn{ccA, ccB} {
		local := newCall()
		cs, _ := cc.Open(request("/local"), local, nil)
		cs.Send(GRPCFrame([]byte("hi")), true, nil)
		select {
		case <-local.done:
		case <-time.After(5 * time.Second):
			t.Fatal("a call the server answers itself hangs behind a backend that does not read")
		}
	}
	if nc := <-stuck; nc != nil {
		nc.Close()
	}
}

// The body buffer grows with the data, not with what the 5-byte header
// claims.
func TestUnaryBodyIsNotAllocatedAhead(t *testing.T) {
	const maxMsg = 64 << 20
	_, addr := serveH2(t, &echoHandler{maxMsg: maxMsg})
	c := dialRaw(t, addr)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 32
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[1:], maxMsg)
	for i := uint32(0); i < n; i++ {
		id := 2*i + 1
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.enc(request("/x")...), EndHeaders: true})
		c.fr.WriteData(id, false, hdr[:])
	}
	time.Sleep(300 * time.Millisecond)
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d streams announcing %d MiB each grew the heap by %d MiB", n, maxMsg>>20, grew>>20)
	if grew > n*int64(8<<20) {
		t.Errorf("the heap grew by %d MiB for %d bytes sent", grew>>20, n*5)
	}
}

// Requests held per connection are bounded: past the budget, streams are
// refused with RESOURCE_EXHAUSTED instead of buffered.
func TestConnectionBudget(t *testing.T) {
	srv := NewServer(&echoHandler{maxMsg: 4 << 20}, ServerOptions{MaxBufferedBytes: 1 << 20})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Close()
	c := dialRaw(t, lis.Addr().String())
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[1:], 600<<10)
	chunk := make([]byte, 16384)
	for _, id := range []uint32{1, 3} {
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.enc(request("/x")...), EndHeaders: true})
		c.fr.WriteData(id, false, hdr[:])
		for sent := 0; sent < 590<<10; sent += len(chunk) {
			c.fr.WriteData(id, false, chunk)
		}
	}
	f, err := c.readUntil(t, func(f http2.Frame) bool {
		h, ok := f.(*http2.MetaHeadersFrame)
		return ok && h.StreamID == 3
	})
	if err != nil {
		t.Fatal(err)
	}
	if code := Get(f.(*http2.MetaHeadersFrame).Fields, "grpc-status"); code != "8" {
		t.Errorf("second stream over the budget: grpc-status %q, want 8 (RESOURCE_EXHAUSTED)", code)
	}
}

type emfileListener struct{ net.Listener }

func (l emfileListener) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func TestServeSurvivesAcceptErrors(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	srv := NewServer(&echoHandler{maxMsg: 1 << 20}, ServerOptions{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(emfileListener{lis}) }()
	select {
	case err := <-done:
		t.Fatalf("Serve gave up on a transient EMFILE: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	srv.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

func TestKeepaliveClosesDeadConnections(t *testing.T) {
	srv := NewServer(&echoHandler{maxMsg: 1 << 20}, ServerOptions{KeepaliveTime: 50 * time.Millisecond, KeepaliveTimeout: 50 * time.Millisecond})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Close()
	c := dialRaw(t, lis.Addr().String())
	// Answer nothing: the server pings, then gives up.
	_, err = c.readUntil(t, func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && !p.IsAck() })
	if err != nil {
		t.Fatalf("no keepalive ping: %v", err)
	}
	_, err = c.readUntil(t, func(http2.Frame) bool { return false })
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the silent connection was not closed: %v", err)
	}
}
