package h2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec carries messages as bytes (*[]byte), for grpc-go peers.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

var _ encoding.CodecV2 = rawCodec{}

// grpcEcho is a grpc-go server answering every method: unary calls echo
// the request (or fail as the "fail" header asks, or wait for "delay");
// streams echo each message.
func grpcEcho(t *testing.T) (addr string, srv *grpc.Server) {
	t.Helper()
	srv = grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			if v := md.Get("fail"); len(v) > 0 {
				n, _ := strconv.Atoi(v[0])
				return status.Error(codes.Code(n), "failed as asked: 100% ünïcode\nnewline")
			}
			if v := md.Get("delay"); len(v) > 0 {
				d, _ := time.ParseDuration(v[0])
				select {
				case <-time.After(d):
				case <-stream.Context().Done():
					return stream.Context().Err()
				}
			}
			stream.SetTrailer(metadata.Pairs("x-echo", "yes"))
			for {
				var msg []byte
				if err := stream.RecvMsg(&msg); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if err := stream.SendMsg(&msg); err != nil {
					return err
				}
			}
		}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), srv
}

// call is a unary call's outcome through a Receiver.
type call struct {
	headers  []hpack.HeaderField
	data     []byte
	trailers []hpack.HeaderField
	reset    *ResetError
	done     chan struct{}
	once     sync.Once
}

func newCall() *call { return &call{done: make(chan struct{})} }

func (c *call) Headers(f []hpack.HeaderField, _ *Batch) { c.headers = f }
func (c *call) Data(p []byte, _ *Batch)                 { c.data = append(c.data, p...) }
func (c *call) Trailers(f []hpack.HeaderField, _ *Batch) {
	c.trailers = f
	c.once.Do(func() { close(c.done) })
}
func (c *call) Reset(err *ResetError, _ *Batch) {
	c.reset = err
	c.once.Do(func() { close(c.done) })
}

func (c *call) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("call never finished")
	}
}

func request(path string, extra ...hpack.HeaderField) []hpack.HeaderField {
	return append([]hpack.HeaderField{Field(":method", "POST"), Field(":scheme", "http"), Field(":path", path),
		Field(":authority", "test"), Field("content-type", "application/grpc"), Field("te", "trailers")}, extra...)
}

func TestClientAgainstGRPCGo(t *testing.T) {
	addr, _ := grpcEcho(t)
	cc, err := Dial(context.Background(), addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: beyond every window
	cases := []struct {
		name    string
		extra   []hpack.HeaderField
		msg     []byte
		code    codes.Code
		wantMsg string
	}{
		{"small", nil, []byte("hello"), codes.OK, ""},
		{"empty", nil, nil, codes.OK, ""},
		{"16 MiB", nil, big, codes.OK, ""},
		{"error", []hpack.HeaderField{Field("fail", "5")}, []byte("x"), codes.NotFound, "failed as asked: 100% ünïcode\nnewline"},
		{"deadline", []hpack.HeaderField{Field("delay", "5s"), Field("grpc-timeout", "50m")}, []byte("x"), codes.DeadlineExceeded, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newCall()
			s, err := cc.Open(request("/test.Echo/Unary", c.extra...), r, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.Send(GRPCFrame(c.msg), true, nil)
			r.wait(t)
			if r.reset != nil && c.code == codes.DeadlineExceeded && r.reset.Code == codes.Canceled {
				return // grpc-go may end an expired call with RST_STREAM CANCEL
			}
			if r.reset != nil {
				t.Fatalf("reset: %v", r.reset)
			}
			code, msg := Status(r.trailers)
			if code != c.code || (c.wantMsg != "" && msg != c.wantMsg) {
				t.Fatalf("status %v %q, want %v %q", code, msg, c.code, c.wantMsg)
			}
			if code == codes.OK {
				got, err := Unframe(r.data)
				if err != nil || !bytes.Equal(got, c.msg) {
					t.Fatalf("echo of %d bytes came back as %d bytes (%v)", len(c.msg), len(got), err)
				}
				if Get(r.trailers, "x-echo") != "yes" {
					t.Errorf("custom trailer lost: %v", r.trailers)
				}
			}
		})
	}
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := newCall()
				msg := []byte(strings.Repeat(strconv.Itoa(i), 1000))
				s, err := cc.Open(request("/test.Echo/Unary"), r, nil)
				if err != nil {
					bad.Add(1)
					return
				}
				s.Send(GRPCFrame(msg), true, nil)
				select {
				case <-r.done:
				case <-time.After(10 * time.Second):
					t.Errorf("stuck: %d streams open", cc.Streams())
					bad.Add(1)
					return
				}
				got, _ := Unframe(r.data)
				if code, _ := Status(r.trailers); code != codes.OK || !bytes.Equal(got, msg) {
					bad.Add(1)
				}
			}()
		}
		wg.Wait()
		if bad.Load() > 0 {
			t.Errorf("%d of 200 concurrent calls failed", bad.Load())
		}
	})
	t.Run("cancel", func(t *testing.T) {
		r := newCall()
		s, _ := cc.Open(request("/test.Echo/Unary", Field("delay", "10s")), r, nil)
		s.Send(GRPCFrame([]byte("x")), true, nil)
		time.Sleep(20 * time.Millisecond)
		s.Cancel(nil)
		// The connection stays usable and the stream slot is free.
		deadline := time.Now().Add(5 * time.Second)
		for cc.Streams() != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := cc.Streams(); n != 0 {
			t.Errorf("%d streams left after cancel", n)
		}
	})
}

func TestClientSeesBackendGoAwayAndDeath(t *testing.T) {
	addr, srv := grpcEcho(t)
	cc, err := Dial(context.Background(), addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	slow := newCall()
	s, _ := cc.Open(request("/test.Echo/Unary", Field("delay", "300ms")), slow, nil)
	s.Send(GRPCFrame([]byte("in flight")), true, nil)
	time.Sleep(50 * time.Millisecond)
	go srv.GracefulStop()
	slow.wait(t)
	if code, _ := Status(slow.trailers); slow.reset != nil || code != codes.OK {
		t.Errorf("a call in flight during the backend's graceful stop: %v %v", slow.reset, slow.trailers)
	}
	deadline := time.Now().Add(5 * time.Second)
	for cc.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if cc.Err() == nil {
		t.Fatal("the connection still takes streams after GOAWAY")
	}
	if _, err := cc.Open(request("/test.Echo/Unary"), newCall(), nil); err == nil {
		t.Error("Open succeeded on a connection going away")
	}

	// A backend that dies resets its streams.
	addr2, srv2 := grpcEcho(t)
	cc2, err := Dial(context.Background(), addr2, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	r := newCall()
	s2, _ := cc2.Open(request("/test.Echo/Unary", Field("delay", "10s")), r, nil)
	s2.Send(GRPCFrame([]byte("x")), true, nil)
	time.Sleep(50 * time.Millisecond)
	srv2.Stop()
	r.wait(t)
	if r.reset == nil || r.reset.Code != codes.Unavailable {
		t.Errorf("backend died: %+v %v, want UNAVAILABLE reset", r.reset, r.trailers)
	}
}

// echoHandler serves unary calls itself (echo, with test knobs) and relays
// anything else to a grpc-go server.
type echoHandler struct {
	up        *ClientConn
	maxMsg    int
	cancelled atomic.Int64
	pending   sync.Map // delayed streams
}

func (h *echoHandler) Open(s *ServerStream, b *Batch) (int, Sink) {
	if strings.HasPrefix(s.Path, "/relay/") {
		sink, err := Relay(s, h.up, b)
		if err != nil {
			s.Fail(codes.Unavailable, err.Error(), b)
			return h.maxMsg, nil
		}
		return 0, sink
	}
	return h.maxMsg, nil
}

func (h *echoHandler) Unary(s *ServerStream, body []byte, b *Batch) {
	msg, err := Unframe(body)
	if err != nil {
		s.Fail(codes.Internal, err.Error(), b)
		return
	}
	if s.TimeoutErr != nil {
		s.Fail(codes.Internal, s.TimeoutErr.Error(), b)
		return
	}
	if v := Get(s.Header, "fail"); v != "" {
		n, _ := strconv.Atoi(v)
		s.Fail(codes.Code(n), "failed as asked: 100% ünïcode", b)
		return
	}
	if Get(s.Header, "hold") != "" {
		// Answer never; count the cancel.
		s.OnCancel(func(*Batch) { h.cancelled.Add(1) })
		return
	}
	reply := func(b *Batch) {
		s.WriteHeaders(okHeaders, b)
		s.WriteData(GRPCFrame(msg), b)
		s.Finish([]hpack.HeaderField{Field("grpc-status", "0"), Field("x-timeout", s.Timeout.String())}, b)
	}
	if d := Get(s.Header, "delay"); d != "" {
		dur, _ := time.ParseDuration(d)
		time.AfterFunc(dur, func() { reply(nil) })
		return
	}
	reply(b)
}

func serveH2(t *testing.T, h Handler) (*Server, string) {
	t.Helper()
	srv := NewServer(h, ServerOptions{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Close)
	return srv, lis.Addr().String()
}

func grpcClient(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestServerWithGRPCGoClient(t *testing.T) {
	upAddr, _ := grpcEcho(t)
	up, err := Dial(context.Background(), upAddr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	h := &echoHandler{up: up, maxMsg: 32 << 20}
	srv, addr := serveH2(t, h)
	conn := grpcClient(t, addr)
	ctx := context.Background()
	invoke := func(ctx context.Context, method string, msg []byte) ([]byte, metadata.MD, error) {
		var out []byte
		var tr metadata.MD
		err := conn.Invoke(ctx, method, &msg, &out, grpc.Trailer(&tr))
		return out, tr, err
	}
	big := bytes.Repeat([]byte("fedcba9876543210"), 1<<20)
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"small", []byte("hi")}, {"empty", []byte{}}, {"16 MiB", big}} {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []string{"/test.Echo/Unary", "/relay/Unary"} {
				got, tr, err := invoke(ctx, method, c.msg)
				if err != nil || !bytes.Equal(got, c.msg) {
					t.Fatalf("%s: %d bytes back for %d (%v)", method, len(got), len(c.msg), err)
				}
				if method == "/relay/Unary" && tr.Get("x-echo")[0] != "yes" {
					t.Errorf("relayed trailers %v", tr)
				}
			}
		})
	}
	t.Run("status with special characters", func(t *testing.T) {
		for _, method := range []string{"/test.Echo/Unary", "/relay/Unary"} {
			_, _, err := invoke(metadata.AppendToOutgoingContext(ctx, "fail", "9"), method, []byte("x"))
			if status.Code(err) != codes.FailedPrecondition || !strings.HasPrefix(status.Convert(err).Message(), "failed as asked: 100% ünïcode") {
				t.Errorf("%s: %v", method, err)
			}
		}
	})
	t.Run("grpc-timeout reaches the handler", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, tr, err := invoke(cctx, "/test.Echo/Unary", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		d, _ := time.ParseDuration(tr.Get("x-timeout")[0])
		if d <= 2*time.Second || d > 3*time.Second {
			t.Errorf("handler saw timeout %v for a 3s deadline", d)
		}
	})
	t.Run("message over the limit", func(t *testing.T) {
		h.maxMsg = 1 << 20
		defer func() { h.maxMsg = 32 << 20 }()
		_, _, err := invoke(ctx, "/test.Echo/Unary", make([]byte, 2<<20))
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max (2097152 vs. 1048576)") {
			t.Errorf("got %v", err)
		}
		// The connection is still fine.
		if _, _, err := invoke(ctx, "/test.Echo/Unary", []byte("ok")); err != nil {
			t.Error(err)
		}
	})
	t.Run("client cancel reaches the handler", func(t *testing.T) {
		before := h.cancelled.Load()
		cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "hold", "1"), 100*time.Millisecond)
		defer cancel()
		_, _, err := invoke(cctx, "/test.Echo/Unary", []byte("x"))
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for h.cancelled.Load() == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if h.cancelled.Load() == before {
			t.Error("the handler never heard of the cancel")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 50 {
					msg := []byte(fmt.Sprintf("%d-%d-%s", i, j, strings.Repeat("x", i*100)))
					method := "/test.Echo/Unary"
					if j%5 == 0 {
						method = "/relay/Unary"
					}
					got, _, err := invoke(ctx, method, msg)
					if err != nil || !bytes.Equal(got, msg) {
						bad.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if bad.Load() > 0 {
			t.Errorf("%d of 3200 calls failed", bad.Load())
		}
	})
	t.Run("bidi stream through the relay", func(t *testing.T) {
		st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/relay/Stream")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			msg := []byte(strings.Repeat(strconv.Itoa(i), 5000))
			if err := st.SendMsg(&msg); err != nil {
				t.Fatal(err)
			}
			var got []byte
			if err := st.RecvMsg(&got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		st.CloseSend()
		var extra []byte
		if err := st.RecvMsg(&extra); !errors.Is(err, io.EOF) {
			t.Errorf("end of stream: %v", err)
		}
	})
	if n := srv.Streams(); n != 0 {
		t.Errorf("%d streams left open", n)
	}
}

func TestServerShutdownFinishesStreams(t *testing.T) {
	h := &echoHandler{maxMsg: 1 << 20}
	srv, addr := serveH2(t, h)
	conn := grpcClient(t, addr)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "delay", "300ms")
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			msg := []byte("x")
			var out []byte
			errs <- conn.Invoke(ctx, "/test.Echo/Unary", &msg, &out)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Streams() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Errorf("call in flight at shutdown: %v", err)
		}
	}
}

// TestServerRejectsProtocolViolations talks raw HTTP/2 to the server.
func TestServerRejectsProtocolViolations(t *testing.T) {
	_, addr := serveH2(t, &echoHandler{maxMsg: 1 << 20})
	cases := []struct {
		name  string
		write func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte)
		want  string // frame type expected back
	}{
		{"even stream id", func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, BlockFragment: enc(request("/x")...), EndHeaders: true})
		}, "GOAWAY"},
		{"no :path", func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(Field(":method", "POST")), EndHeaders: true})
		}, "RST_STREAM"},
		{"bad grpc-timeout", func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(request("/x", Field("grpc-timeout", "soon"))...), EndHeaders: true})
			fr.WriteData(1, true, GRPCFrame([]byte("x")))
		}, "HEADERS"},
		{"garbage", func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteRawFrame(http2.FrameType(0x1), 0x4, 1, []byte{0xff, 0xff, 0xff})
		}, "GOAWAY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(nc, http2.ClientPreface)
			fr := http2.NewFramer(nc, nc)
			fr.WriteSettings()
			var buf bytes.Buffer
			he := hpack.NewEncoder(&buf)
			enc := func(fields ...hpack.HeaderField) []byte {
				buf.Reset()
				for _, f := range fields {
					he.WriteField(f)
				}
				return append([]byte(nil), buf.Bytes()...)
			}
			c.write(fr, enc)
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("connection ended before a %s: %v", c.want, err)
				}
				if f.Header().Type.String() == c.want {
					return
				}
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	for in, want := range map[string]time.Duration{"1S": time.Second, "100m": 100 * time.Millisecond, "5u": 5 * time.Microsecond, "2H": 2 * time.Hour, "99999999n": 99999999} {
		if got, err := ParseTimeout(in); err != nil || got != want {
			t.Errorf("ParseTimeout(%q) = %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "1", "S", "1x", "-1S", "123456789S"} {
		if _, err := ParseTimeout(bad); err == nil {
			t.Errorf("ParseTimeout(%q) accepted", bad)
		}
	}
	for _, d := range []time.Duration{time.Nanosecond, 1500 * time.Millisecond, 3 * time.Hour, 1<<63 - 1} {
		got, err := ParseTimeout(FormatTimeout(d))
		if err != nil || got < d && d < 1<<62 {
			t.Errorf("FormatTimeout(%v) = %q → %v %v", d, FormatTimeout(d), got, err)
		}
	}
}

func TestMessages(t *testing.T) {
	for _, m := range []string{"plain", "100% done", "ünïcode\nand newline", ""} {
		if got := DecodeMessage(EncodeMessage(m)); got != m {
			t.Errorf("round trip of %q gave %q", m, got)
		}
	}
	for _, c := range []struct {
		body []byte
		want string
	}{{nil, "no request message"}, {[]byte{0, 0}, "truncated message header"}, {[]byte{1, 0, 0, 0, 0}, "compressed"},
		{[]byte{0, 0, 0, 0, 9, 1}, "truncated message"}, {[]byte{0, 0, 0, 0, 1, 1, 2}, "more than one message"}} {
		if _, err := Unframe(c.body); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Unframe(%v) = %v, want %q", c.body, err, c.want)
		}
	}
}
