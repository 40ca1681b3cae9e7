package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// A lean gRPC client for unary calls, written on x/net/http2's framer.
//
// grpc-go hands every call between several goroutines (the caller, the
// transport's writer, its reader), which on an idle machine means a dozen
// system calls and thread wake-ups per request: a load generator built on it
// spends more CPU per request than a small model does. This client does what
// a load generator needs and nothing else: requests are pre-encoded (one
// HPACK header block per connection, the gRPC-framed message per request),
// sending writes two frames into a buffer, and responses are parsed and
// completed on the connection's single reader goroutine, which also sends a
// closed-loop client's next request and flushes once its input is drained.
// Flow control, stream limits, SETTINGS, PING, GOAWAY, RST_STREAM, trailers-
// only responses and deadlines are handled per RFC 9113 and the gRPC HTTP/2
// protocol.

const (
	// Receive windows we advertise: responses never wait for us.
	h2InitialWindow = 1 << 30
	h2ConnWindow    = 1 << 30
	h2WindowRefill  = 1 << 28
)

// h2call is one unary call.
type h2call struct {
	id     uint32
	body   []byte // the gRPC-framed request
	sent   int
	window int64 // the peer's send window for this stream
	keep   bool  // keep the response message (to verify it)
	resp   []byte
	// outcome
	code      codes.Code
	msg       string
	gotStatus bool
	deadline  time.Time
	refused   int // times the server refused the stream
	done      func(*h2call)
}

// h2conn is one HTTP/2 connection carrying unary calls.
type h2conn struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	fr    *http2.Framer
	block []byte // the request header block

	mu           sync.Mutex
	nextID       uint32
	streams      map[uint32]*h2call
	maxStreams   int
	peerWindow   int64 // SETTINGS_INITIAL_WINDOW_SIZE of the peer
	connWindow   int64 // connection-level send window
	maxFrame     int
	waiting      []*h2call // no stream slot yet
	blocked      []*h2call // opened, body waiting for flow control
	recvUnacked  int64
	err          error // set once the connection is unusable
	readerExited chan struct{}
	settings     chan struct{} // closed when the server's SETTINGS arrived
	gotSettings  bool
}

// dialH2 connects and starts the reader. headers are sent with every call.
func dialH2(ctx context.Context, t Target, method string, timeout time.Duration) (*h2conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	var nc net.Conn
	var err error
	scheme := "http"
	if t.TLS != nil {
		cfg := t.TLS.Clone()
		cfg.NextProtos = []string{"h2"}
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(t.Address)
			cfg.ServerName = host
		}
		td := tls.Dialer{NetDialer: &d, Config: cfg}
		nc, err = td.DialContext(ctx, "tcp", t.Address)
		scheme = "https"
		if err == nil {
			if p := nc.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
				nc.Close()
				return nil, fmt.Errorf("%s: server did not negotiate HTTP/2 over TLS (ALPN %q)", t.Address, p)
			}
		}
	} else {
		nc, err = d.DialContext(ctx, "tcp", t.Address)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &h2conn{
		nc: nc, br: bufio.NewReaderSize(nc, 64<<10), bw: bufio.NewWriterSize(nc, 64<<10),
		nextID: 1, streams: map[uint32]*h2call{}, maxStreams: 100, peerWindow: 65535, connWindow: 65535,
		maxFrame: 16384, readerExited: make(chan struct{}), settings: make(chan struct{}),
	}
	c.fr = http2.NewFramer(c.bw, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
	c.fr.MaxHeaderListSize = 16 << 20
	c.block = headerBlock(scheme, authority(t.Address), method, t.Headers, timeout)

	if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
		nc.Close()
		return nil, err
	}
	err = errors.Join(
		c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2InitialWindow},
			http2.Setting{ID: http2.SettingEnablePush, Val: 0}),
		c.fr.WriteWindowUpdate(0, h2ConnWindow-65535),
		c.bw.Flush())
	if err != nil {
		nc.Close()
		return nil, err
	}
	go c.readLoop()
	// Like grpc-go, start no stream before the server's SETTINGS: its limits
	// (concurrent streams, windows) apply from the first call.
	select {
	case <-c.settings:
		return c, nil
	case <-c.readerExited:
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", t.Address, err)
	case <-time.After(10 * time.Second):
		c.fail(errors.New("no HTTP/2 SETTINGS from the server within 10s"))
		return nil, fmt.Errorf("%s: no HTTP/2 SETTINGS from the server within 10s (is it a gRPC endpoint?)", t.Address)
	case <-ctx.Done():
		c.fail(ctx.Err())
		return nil, ctx.Err()
	}
}

func authority(addr string) string {
	if u, err := url.Parse("//" + addr); err == nil && u.Host != "" {
		return u.Host
	}
	return addr
}

// headerBlock encodes the request headers once; every call reuses them.
func headerBlock(scheme, authority, method string, headers map[string]string, timeout time.Duration) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	field := func(k, v string) { enc.WriteField(hpack.HeaderField{Name: k, Value: v}) }
	field(":method", "POST")
	field(":scheme", scheme)
	field(":path", method)
	field(":authority", authority)
	field("content-type", "application/grpc")
	field("te", "trailers")
	field("user-agent", "tritongate-loadtest")
	if timeout > 0 {
		field("grpc-timeout", strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)+"m")
	}
	for k, v := range headers {
		field(strings.ToLower(k), v)
	}
	return buf.Bytes()
}

// frame prefixes a message with gRPC's 5-byte length prefix.
func grpcFrame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// send starts a call; done runs exactly once with the outcome (on the
// reader goroutine, or on a new goroutine if the connection already failed).
// flush=false leaves the frames buffered for the reader to flush: for sends
// made from completion callbacks.
func (c *h2conn) send(call *h2call, flush bool) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		call.code, call.msg = codes.Unavailable, err.Error()
		go call.done(call)
		return
	}
	if len(c.streams) >= c.maxStreams {
		c.waiting = append(c.waiting, call)
	} else {
		c.open(call)
	}
	var err error
	if flush {
		err = c.bw.Flush()
	}
	c.mu.Unlock()
	if err != nil {
		c.fail(err)
	}
}

// open starts a stream for call (c.mu held).
func (c *h2conn) open(call *h2call) {
	call.id = c.nextID
	c.nextID += 2
	call.window = c.peerWindow
	c.streams[call.id] = call
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: call.id, BlockFragment: c.block, EndHeaders: true})
	c.sendBody(call)
}

// sendBody writes what flow control allows of call's body (c.mu held).
func (c *h2conn) sendBody(call *h2call) bool {
	for call.sent < len(call.body) {
		n := min(len(call.body)-call.sent, c.maxFrame, int(min(c.connWindow, call.window)))
		if n <= 0 {
			c.blocked = append(c.blocked, call)
			return false
		}
		end := call.sent+n == len(call.body)
		c.fr.WriteData(call.id, end, call.body[call.sent:call.sent+n])
		call.sent += n
		c.connWindow -= int64(n)
		call.window -= int64(n)
	}
	return true
}

// unblock resumes bodies waiting for flow control (c.mu held).
func (c *h2conn) unblock() {
	blocked := c.blocked
	c.blocked = nil
	for _, call := range blocked {
		if _, open := c.streams[call.id]; open {
			c.sendBody(call)
		}
	}
}

// finish completes a call (c.mu held) and returns the callbacks to run once
// the lock is released: its own and none other; freed stream slots go to
// waiting calls.
func (c *h2conn) finish(call *h2call, code codes.Code, msg string) *h2call {
	if _, open := c.streams[call.id]; !open {
		return nil
	}
	delete(c.streams, call.id)
	if code != codes.OK && !call.deadline.IsZero() && !time.Now().Before(call.deadline) {
		// Past its deadline the caller sees DEADLINE_EXCEEDED, whatever
		// the server answered meanwhile (as grpc-go clients do).
		code, msg = codes.DeadlineExceeded, "context deadline exceeded"
	}
	call.code, call.msg = code, msg
	for len(c.waiting) > 0 && len(c.streams) < c.maxStreams {
		next := c.waiting[0]
		c.waiting = c.waiting[1:]
		c.open(next)
	}
	return call
}

// fail marks the connection dead and fails every call on it.
func (c *h2conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	var calls []*h2call
	for _, call := range c.streams {
		call.code, call.msg = codes.Unavailable, err.Error()
		calls = append(calls, call)
	}
	for _, call := range c.waiting {
		call.code, call.msg = codes.Unavailable, err.Error()
		calls = append(calls, call)
	}
	c.streams, c.waiting, c.blocked = map[uint32]*h2call{}, nil, nil
	c.mu.Unlock()
	c.nc.Close()
	for _, call := range calls {
		call.done(call)
	}
}

func (c *h2conn) close() {
	c.fail(errors.New("connection closed"))
	<-c.readerExited
}

// alive reports whether new calls can use the connection.
func (c *h2conn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// expire fails the calls past their deadline (RST_STREAM CANCEL to the server).
func (c *h2conn) expire(now time.Time) {
	var done []*h2call
	c.mu.Lock()
	for _, call := range c.streams {
		if !call.deadline.IsZero() && now.After(call.deadline) {
			c.fr.WriteRSTStream(call.id, http2.ErrCodeCancel)
			if d := c.finish(call, codes.DeadlineExceeded, "context deadline exceeded"); d != nil {
				done = append(done, d)
			}
		}
	}
	kept := c.waiting[:0]
	for _, call := range c.waiting {
		if !call.deadline.IsZero() && now.After(call.deadline) {
			call.code, call.msg = codes.DeadlineExceeded, "context deadline exceeded"
			done = append(done, call)
		} else {
			kept = append(kept, call)
		}
	}
	c.waiting = kept
	err := c.bw.Flush()
	c.mu.Unlock()
	for _, call := range done {
		call.done(call)
	}
	if err != nil {
		c.fail(err)
	}
}

// httpToGRPC maps a non-200 HTTP status to a gRPC code (gRPC's HTTP mapping).
func httpToGRPC(status string) codes.Code {
	switch status {
	case "400":
		return codes.Internal
	case "401":
		return codes.Unauthenticated
	case "403":
		return codes.PermissionDenied
	case "404":
		return codes.Unimplemented
	case "429", "502", "503", "504":
		return codes.Unavailable
	}
	return codes.Unknown
}

func rstToGRPC(code http2.ErrCode) codes.Code {
	switch code {
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable
	case http2.ErrCodeCancel:
		return codes.Canceled
	case http2.ErrCodeEnhanceYourCalm:
		return codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied
	}
	return codes.Internal
}

// frameBuffered reports whether a whole frame is already buffered, so the
// next read will not block (only the reader goroutine calls it).
func (c *h2conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 9 {
		return false
	}
	hdr, err := c.br.Peek(9)
	if err != nil {
		return false
	}
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	return n >= 9+length
}

// readLoop reads frames until the connection fails, completing calls.
func (c *h2conn) readLoop() {
	defer close(c.readerExited)
	var done []*h2call
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.fail(fmt.Errorf("connection lost: %w", err))
			return
		}
		c.mu.Lock()
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			call := c.streams[f.StreamID]
			if call == nil {
				break
			}
			status, grpcStatus, grpcMsg := "", "", ""
			for _, hf := range f.Fields {
				switch hf.Name {
				case ":status":
					status = hf.Value
				case "grpc-status":
					grpcStatus = hf.Value
				case "grpc-message":
					grpcMsg, _ = url.PathUnescape(hf.Value)
				}
			}
			if status != "" && status != "200" {
				if d := c.finish(call, httpToGRPC(status), "HTTP status "+status); d != nil {
					done = append(done, d)
				}
				c.fr.WriteRSTStream(f.StreamID, http2.ErrCodeCancel)
				break
			}
			if grpcStatus != "" {
				n, err := strconv.Atoi(grpcStatus)
				if err != nil {
					n = int(codes.Unknown)
				}
				call.code, call.msg, call.gotStatus = codes.Code(n), grpcMsg, true
			}
			if f.StreamEnded() {
				code, msg := call.code, call.msg
				if !call.gotStatus {
					code, msg = codes.Internal, "server closed the stream without sending trailers"
				}
				if d := c.finish(call, code, msg); d != nil {
					done = append(done, d)
				}
			}
		case *http2.DataFrame:
			c.recvUnacked += int64(f.Length)
			if call := c.streams[f.StreamID]; call != nil {
				if call.keep {
					call.resp = append(call.resp, f.Data()...)
				}
				if f.StreamEnded() {
					if d := c.finish(call, codes.Internal, "server closed the stream without sending trailers"); d != nil {
						done = append(done, d)
					}
				}
			}
			if c.recvUnacked >= h2WindowRefill {
				c.fr.WriteWindowUpdate(0, uint32(c.recvUnacked))
				c.recvUnacked = 0
			}
		case *http2.RSTStreamFrame:
			if call := c.streams[f.StreamID]; call != nil && f.ErrCode == http2.ErrCodeRefusedStream && call.refused < 3 {
				call.refused++
				// The server did not process it: send it again on a new
				// stream once a slot frees.
				delete(c.streams, f.StreamID)
				call.sent, call.resp, call.gotStatus = 0, call.resp[:0], false
				c.waiting = append(c.waiting, call)
				break
			}
			if call := c.streams[f.StreamID]; call != nil {
				if d := c.finish(call, rstToGRPC(f.ErrCode), "stream reset by server: "+f.ErrCode.String()); d != nil {
					done = append(done, d)
				}
			}
		case *http2.SettingsFrame:
			if f.IsAck() {
				break
			}
			if !c.gotSettings {
				c.gotSettings = true
				close(c.settings)
			}
			f.ForeachSetting(func(s http2.Setting) error {
				switch s.ID {
				case http2.SettingMaxConcurrentStreams:
					c.maxStreams = int(min(s.Val, 1<<20))
				case http2.SettingInitialWindowSize:
					delta := int64(s.Val) - c.peerWindow
					c.peerWindow = int64(s.Val)
					for _, call := range c.streams {
						call.window += delta
					}
				case http2.SettingMaxFrameSize:
					c.maxFrame = int(s.Val)
				}
				return nil
			})
			c.fr.WriteSettingsAck()
			for len(c.waiting) > 0 && len(c.streams) < c.maxStreams {
				next := c.waiting[0]
				c.waiting = c.waiting[1:]
				c.open(next)
			}
			c.unblock()
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.connWindow += int64(f.Increment)
			} else if call := c.streams[f.StreamID]; call != nil {
				call.window += int64(f.Increment)
			}
			c.unblock()
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			// Streams above the last one the server will process fail now;
			// the rest finish; no new calls start on this connection.
			if c.err == nil {
				c.err = fmt.Errorf("server sent GOAWAY (%s)", f.ErrCode)
			}
			for id, call := range c.streams {
				if id > f.LastStreamID {
					if d := c.finish(call, codes.Unavailable, "server sent GOAWAY"); d != nil {
						done = append(done, d)
					}
				}
			}
			for _, call := range c.waiting {
				call.code, call.msg = codes.Unavailable, "server sent GOAWAY"
				done = append(done, call)
			}
			c.waiting = nil
		}
		dead := c.err != nil && len(c.streams) == 0
		c.mu.Unlock()
		for _, call := range done {
			call.done(call) // may send the client's next request (unflushed)
		}
		done = done[:0]
		// Flush before the next read could block: frames written while
		// handling a burst of responses, and the sends their callbacks made,
		// go out in one write.
		var werr error
		if !c.frameBuffered() {
			c.mu.Lock()
			werr = c.bw.Flush()
			c.mu.Unlock()
		}
		if werr != nil {
			c.fail(werr)
			return
		}
		if dead {
			c.fail(c.err)
			return
		}
	}
}
