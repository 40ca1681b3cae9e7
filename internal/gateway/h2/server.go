package h2

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// ServerOptions tune the server; zero values take the defaults.
type ServerOptions struct {
	// MaxConcurrentStreams per connection (default 1024); more are refused
	// (REFUSED_STREAM, which gRPC clients retry).
	MaxConcurrentStreams uint32
	// StreamWindow and ConnWindow are the receive windows advertised to
	// clients (default 4 MiB and 16 MiB), refilled as data is consumed.
	StreamWindow, ConnWindow uint32
	// MaxHeaderListSize bounds a request's headers (default 1 MiB).
	MaxHeaderListSize uint32
	// PrefaceTimeout bounds how long a new connection may take to send the
	// HTTP/2 preface (default 10s).
	PrefaceTimeout time.Duration
	// MaxBufferedBytes bounds what one connection may make the server hold
	// (default 256 MiB): request bodies being received, and response bytes
	// waiting to be written or for the client's window. A request that would
	// exceed it is refused (RESOURCE_EXHAUSTED); a client that stops reading
	// its responses past it is disconnected.
	MaxBufferedBytes int
	// KeepaliveTime: a connection silent this long is pinged, and closed if
	// the ping is not answered within KeepaliveTimeout (defaults 2h, 20s,
	// as grpc-go's server).
	KeepaliveTime, KeepaliveTimeout time.Duration
}

func (o *ServerOptions) defaults() {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 1024
	}
	if o.MaxBufferedBytes == 0 {
		o.MaxBufferedBytes = 256 << 20
	}
	if o.KeepaliveTime == 0 {
		o.KeepaliveTime = 2 * time.Hour
	}
	if o.KeepaliveTimeout == 0 {
		o.KeepaliveTimeout = 20 * time.Second
	}
	if o.StreamWindow == 0 {
		o.StreamWindow = 4 << 20
	}
	if o.ConnWindow == 0 {
		o.ConnWindow = 16 << 20
	}
	if o.MaxHeaderListSize == 0 {
		o.MaxHeaderListSize = 1 << 20
	}
	if o.PrefaceTimeout == 0 {
		o.PrefaceTimeout = 10 * time.Second
	}
}

// Handler serves streams. Its methods run on the connection's reader
// goroutine and must not block; they may write to streams (from there or
// from any other goroutine).
type Handler interface {
	// Open is called when a stream's request headers arrive. To take the
	// stream as a unary call it returns maxMessage > 0: the request body is
	// collected (a body over maxMessage bytes of message is refused with
	// RESOURCE_EXHAUSTED) and passed to Unary. Otherwise it returns a Sink
	// that receives the body as it arrives.
	Open(s *ServerStream, b *Batch) (maxMessage int, sink Sink)
	// Unary is called with the whole request body (gRPC-framed).
	Unary(s *ServerStream, body []byte, b *Batch)
}

// Sink receives a streamed request body.
type Sink interface {
	// Data delivers body bytes (valid only during the call); end marks the
	// client's half-close.
	Data(p []byte, end bool, b *Batch)
	// Cancel: the client reset the stream, or the connection closed, before
	// the response finished. No more calls follow.
	Cancel(b *Batch)
}

// Server accepts HTTP/2 connections from gRPC clients.
type Server struct {
	opts    ServerOptions
	handler Handler

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*ServerConn]struct{}
	stopping  bool
	wg        sync.WaitGroup
	janitor   sync.Once
	stop      chan struct{}
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("h2: server closed")

// NewServer makes a server for h.
func NewServer(h Handler, opts ServerOptions) *Server {
	opts.defaults()
	return &Server{opts: opts, handler: h, listeners: map[net.Listener]struct{}{}, conns: map[*ServerConn]struct{}{}, stop: make(chan struct{})}
}

// keepalive pings connections that have been silent for KeepaliveTime and
// closes those that do not answer.
func (s *Server) keepalive() {
	tick := min(s.opts.KeepaliveTime, s.opts.KeepaliveTimeout) / 2
	t := time.NewTicker(max(tick, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			conns := make([]*ServerConn, 0, len(s.conns))
			for c := range s.conns {
				conns = append(conns, c)
			}
			s.mu.Unlock()
			for _, c := range conns {
				c.keepalive(now)
			}
		}
	}
}

// Serve accepts connections on lis until Shutdown or Close.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		lis.Close()
		return ErrServerClosed
	}
	s.listeners[lis] = struct{}{}
	s.mu.Unlock()
	s.janitor.Do(func() { go s.keepalive() })
	var delay time.Duration
	for {
		nc, err := lis.Accept()
		if err != nil {
			s.mu.Lock()
			stopping := s.stopping
			s.mu.Unlock()
			if stopping {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors, aborted handshakes...: back off and
			// keep serving (as net/http and grpc-go do).
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c := newServerConn(s, nc)
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

// Shutdown stops accepting, sends GOAWAY on every connection and waits for
// their streams to finish; when ctx ends first, it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*ServerConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.stopJanitor()
	for _, c := range conns {
		c.goAway()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() {
	s.mu.Lock()
	s.stopping = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.stopJanitor()
	s.wg.Wait()
}

func (s *Server) stopJanitor() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
}

// Streams counts the streams open on every connection (for tests and drain).
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		c.mu.Lock()
		n += len(c.streams)
		c.mu.Unlock()
	}
	return n
}

// ServerConn is one client connection.
type ServerConn struct {
	wconn // mu guards the fields below and every stream's output state
	srv   *Server
	br    *bufio.Reader

	streams     map[uint32]*ServerStream
	lastID      uint32
	peerWindow  int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE: our initial send window per stream
	connWindow  int64 // our send window on the connection
	recvUnacked int64
	blocked     []*ServerStream
	bodyBytes   int // unary request bodies being received
	started     bool
	goaway      bool
	closing     bool
	closed      bool
	lastRead    atomic.Int64 // unix nanos of the last frame read
	pingSent    time.Time
	// reset remembers the last streams this side reset while the client
	// was still sending: frames it sent before seeing the RST_STREAM are
	// discarded (RFC 9113 §5.1), not taken for a protocol error.
	reset     [64]uint32
	resetNext int
	// The ping policy (grpc-go's server's, whose defaults Triton's grpc
	// core shares): pings closer than pingMinTime apart (pingNoStreamTime
	// with no stream open), with no HEADERS or DATA sent between them,
	// are strikes; more than maxPingStrikes end the connection with
	// GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
	pingStrikes    int
	lastPingAt     time.Time
	pingFramesMark uint64 // streamFrames at the last ping
}

const (
	pingMinTime      = 5 * time.Minute
	pingNoStreamTime = 2 * time.Hour
	maxPingStrikes   = 2
)

// pingPolicy judges a PING from the client (c.mu held); false: too many.
func (c *ServerConn) pingPolicy(now time.Time) bool {
	defer func() { c.lastPingAt, c.pingFramesMark = now, c.streamFrames }()
	if c.streamFrames != c.pingFramesMark {
		c.pingStrikes = 0 // the server has sent since: a keepalive
		return true
	}
	min := pingMinTime
	if len(c.streams) == 0 {
		min = pingNoStreamTime
	}
	if !c.lastPingAt.IsZero() && now.Sub(c.lastPingAt) < min {
		c.pingStrikes++
	}
	return c.pingStrikes <= maxPingStrikes
}

// noteReset records a stream this side reset (c.mu held).
func (c *ServerConn) noteReset(id uint32) {
	c.reset[c.resetNext] = id
	c.resetNext = (c.resetNext + 1) % len(c.reset)
}

// wasReset reports whether this side reset stream id lately (c.mu held).
func (c *ServerConn) wasReset(id uint32) bool {
	for _, r := range c.reset {
		if r == id {
			return true
		}
	}
	return false
}

func newServerConn(s *Server, nc net.Conn) *ServerConn {
	c := &ServerConn{srv: s, streams: map[uint32]*ServerStream{}, peerWindow: 65535, connWindow: 65535}
	c.br = bufio.NewReaderSize(nc, 64<<10)
	c.init(nc, c.br, s.opts.MaxBufferedBytes)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = s.opts.MaxHeaderListSize
	c.fr.SetMaxReadFrameSize(16384) // what we advertise (the default)
	c.fr.SetReuseFrames()
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// keepalive pings a silent connection, closes one that did not answer.
func (c *ServerConn) keepalive(now time.Time) {
	o := c.srv.opts
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started || c.closed {
		return
	}
	silent := now.Sub(time.Unix(0, c.lastRead.Load()))
	switch {
	case !c.pingSent.IsZero() && now.Sub(c.pingSent) > o.KeepaliveTimeout && silent > o.KeepaliveTimeout:
		c.failWrite(errors.New("keepalive ping not answered"))
	case c.pingSent.IsZero() && silent > o.KeepaliveTime:
		c.pingSent = now
		c.fr.WritePing(false, [8]byte{'k', 'e', 'e', 'p'})
		c.done(nil)
	}
}

// ServerStream is one request stream. The request fields are read-only.
type ServerStream struct {
	c  *ServerConn
	id uint32

	Method, Path, Authority, Scheme string
	// Header holds the request's regular (non-pseudo) header fields.
	Header []hpack.HeaderField
	// Timeout is the grpc-timeout (0: none); TimeoutErr is set when the
	// header was malformed.
	Timeout    time.Duration
	TimeoutErr error
	// Received is when the headers arrived.
	Received time.Time

	// input: reader goroutine only
	maxMessage int
	sink       Sink
	body       []byte
	refused    bool

	// output and shared state: c.mu
	inEnded         bool
	recvUnacked     int64
	window          int64
	sentHeaders     bool
	pending         []byte
	trailers        []hpack.HeaderField
	trailersPending bool
	outDone         bool
	onCancel        func(*Batch)
}

// RemoteAddr is the client's address.
func (s *ServerStream) RemoteAddr() net.Addr { return s.c.nc.RemoteAddr() }

// OnCancel sets what runs (on the reader goroutine) if the client resets
// the stream, or the connection closes, before the response is finished.
func (s *ServerStream) OnCancel(f func(*Batch)) {
	s.c.mu.Lock()
	s.onCancel = f
	s.c.mu.Unlock()
}

// WriteHeaders sends the response headers (with :status).
func (s *ServerStream) WriteHeaders(fields []hpack.HeaderField, b *Batch) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.outDone || s.sentHeaders || c.closed {
		return
	}
	s.sentHeaders = true
	c.writeHeaders(s.id, fields, false)
	c.done(b)
}

// WriteData sends response body bytes, as flow control allows; the rest is
// kept (copied) and sent as the client grants window.
func (s *ServerStream) WriteData(p []byte, b *Batch) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.outDone || c.closed || len(p) == 0 {
		return
	}
	if !s.sentHeaders {
		s.sentHeaders = true
		c.writeHeaders(s.id, okHeaders, false)
	}
	if len(s.pending) > 0 {
		s.pending = append(s.pending, p...)
		c.pendingOut += len(p)
		c.checkBudget()
		return
	}
	n := c.sendData(s, p)
	if n < len(p) {
		s.pending = append([]byte(nil), p[n:]...)
		c.pendingOut += len(p) - n
		c.blocked = append(c.blocked, s)
		c.checkBudget()
	}
	c.done(b)
}

// checkBudget disconnects a client that lets too much wait for it (c.mu held).
func (c *ServerConn) checkBudget() {
	if c.buffered() > c.maxBuffered {
		c.failWrite(fmt.Errorf("client is not reading: %d bytes waiting for it", c.buffered()))
	}
}

// dropPending forgets a stream's unsent output (c.mu held).
func (c *ServerConn) dropPending(s *ServerStream) {
	c.pendingOut -= len(s.pending)
	s.pending, s.trailersPending = nil, false
}

var okHeaders = []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}

// Finish ends the response with trailers (grpc-status, ...). Without
// response headers sent yet it is a trailers-only response: :status and
// content-type are added when missing.
func (s *ServerStream) Finish(trailers []hpack.HeaderField, b *Batch) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.outDone || c.closed {
		return
	}
	s.outDone = true
	if !s.sentHeaders {
		s.sentHeaders = true
		if Get(trailers, ":status") == "" {
			trailers = append(okHeaders[:2:2], trailers...)
		}
		c.writeHeaders(s.id, trailers, true)
		c.finishOut(s)
		c.done(b)
		return
	}
	if len(s.pending) > 0 {
		s.trailers, s.trailersPending = trailers, true
		return
	}
	c.writeHeaders(s.id, trailers, true)
	c.finishOut(s)
	c.done(b)
}

// Fail ends the response with a gRPC error status.
func (s *ServerStream) Fail(code codes.Code, msg string, b *Batch) {
	s.Finish([]hpack.HeaderField{{Name: "grpc-status", Value: strconv.Itoa(int(code))}, {Name: "grpc-message", Value: EncodeMessage(msg)}}, b)
}

// Reset aborts the stream with RST_STREAM.
func (s *ServerStream) Reset(code http2.ErrCode, b *Batch) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.outDone || c.closed {
		return
	}
	s.outDone = true
	c.dropPending(s)
	s.inEnded = true // no NO_ERROR reset on top
	c.fr.WriteRSTStream(s.id, code)
	c.noteReset(s.id)
	c.finishOut(s)
	c.done(b)
}

// sendData writes what the windows allow of p (c.mu held).
func (c *ServerConn) sendData(s *ServerStream, p []byte) int {
	sent := 0
	for sent < len(p) {
		n := min(len(p)-sent, c.maxFrame, int(min(c.connWindow, s.window)))
		if n <= 0 {
			break
		}
		c.fr.WriteData(s.id, false, p[sent:sent+n])
		c.streamFrames++
		sent += n
		c.connWindow -= int64(n)
		s.window -= int64(n)
	}
	return sent
}

// unblock sends pending output the windows now allow (c.mu held).
func (c *ServerConn) unblock() bool {
	if len(c.blocked) == 0 {
		return false
	}
	blocked := c.blocked
	c.blocked = nil
	for _, s := range blocked {
		if len(s.pending) == 0 || c.streams[s.id] != s {
			continue
		}
		n := c.sendData(s, s.pending)
		s.pending = s.pending[n:]
		c.pendingOut -= n
		if len(s.pending) > 0 {
			c.blocked = append(c.blocked, s)
			continue
		}
		s.pending = nil
		if s.trailersPending {
			s.trailersPending = false
			c.writeHeaders(s.id, s.trailers, true)
			c.finishOut(s)
		}
	}
	return true
}

// finishOut retires a stream whose response ended (c.mu held): a client
// still sending is told to stop (RST_STREAM NO_ERROR, as gRPC servers do).
func (c *ServerConn) finishOut(s *ServerStream) {
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	if !s.inEnded {
		c.fr.WriteRSTStream(s.id, http2.ErrCodeNo)
		c.noteReset(s.id)
	}
	c.maybeClose()
}

// maybeClose closes a connection that sent GOAWAY once its streams are done
// (c.mu held).
func (c *ServerConn) maybeClose() {
	if c.goaway && len(c.streams) == 0 && !c.closing {
		c.closing = true
		c.closeWhenWritten()
	}
}

// goAway starts a graceful close: streams open now finish, new ones are
// ignored (the client retries them elsewhere), then the connection closes.
func (c *ServerConn) goAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goaway || c.closed {
		return
	}
	c.goaway = true
	if c.started { // the server preface (SETTINGS) goes first
		c.fr.WriteGoAway(c.lastID, http2.ErrCodeNo, nil)
		c.flushLocked()
	}
	c.maybeClose()
}

// serve runs the connection's reader until the connection ends.
func (c *ServerConn) serve() {
	defer c.cleanup()
	o := c.srv.opts
	c.nc.SetReadDeadline(time.Now().Add(o.PrefaceTimeout))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c.br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: o.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: o.StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: o.MaxHeaderListSize})
	if o.ConnWindow > 65535 {
		c.fr.WriteWindowUpdate(0, o.ConnWindow-65535)
	}
	c.started = true
	if c.goaway { // Shutdown came first
		c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}
	c.done(nil)
	c.mu.Unlock()

	b := &Batch{}
	defer b.Flush()
	for {
		if !frameBuffered(c.br) {
			b.Flush()
		}
		f, err := c.fr.ReadFrame()
		if err == nil {
			c.lastRead.Store(time.Now().UnixNano())
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code, b)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.connError(http2.ErrCode(ce), err.Error())
			}
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if !c.onHeaders(f, b) {
				return
			}
		case *http2.DataFrame:
			c.onData(f, b)
		case *http2.RSTStreamFrame:
			c.mu.Lock()
			s := c.streams[f.StreamID]
			c.mu.Unlock()
			if s != nil {
				c.cancel(s, b)
			}
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			c.mu.Lock()
			err := f.ForeachSetting(func(st http2.Setting) error {
				if err := st.Valid(); err != nil {
					return err
				}
				switch st.ID {
				case http2.SettingInitialWindowSize:
					delta := int64(st.Val) - c.peerWindow
					c.peerWindow = int64(st.Val)
					for _, s := range c.streams {
						s.window += delta
					}
				case http2.SettingMaxFrameSize:
					c.maxFrame = int(st.Val)
				case http2.SettingHeaderTableSize:
					c.henc.SetMaxDynamicTableSizeLimit(st.Val)
				}
				return nil
			})
			if err != nil {
				c.mu.Unlock()
				c.connError(http2.ErrCodeProtocol, err.Error())
				return
			}
			if !c.queueControl() {
				c.mu.Unlock()
				return
			}
			c.fr.WriteSettingsAck()
			c.unblock()
			c.done(b)
			c.mu.Unlock()
		case *http2.WindowUpdateFrame:
			c.mu.Lock()
			if f.StreamID == 0 {
				c.connWindow += int64(f.Increment)
				if c.connWindow > maxWindow {
					c.mu.Unlock()
					c.connError(http2.ErrCodeFlowControl, "connection window over 2^31-1")
					return
				}
			} else if s := c.streams[f.StreamID]; s != nil {
				s.window += int64(f.Increment)
				if s.window > maxWindow {
					c.mu.Unlock()
					c.cancel(s, b)
					c.mu.Lock()
					c.fr.WriteRSTStream(f.StreamID, http2.ErrCodeFlowControl)
					c.noteReset(f.StreamID)
				}
			}
			if c.unblock() {
				c.done(b)
			}
			c.mu.Unlock()
		case *http2.PingFrame:
			c.mu.Lock()
			if f.IsAck() {
				c.pingSent = time.Time{}
				c.mu.Unlock()
				continue
			}
			if !c.pingPolicy(time.Now()) {
				c.fr.WriteGoAway(c.lastID, http2.ErrCodeEnhanceYourCalm, []byte("too_many_pings"))
				c.done(nil)
				c.closeWhenWritten()
				c.mu.Unlock()
				return
			}
			if !c.queueControl() {
				c.mu.Unlock()
				return
			}
			c.fr.WritePing(true, f.Data)
			c.done(b)
			c.mu.Unlock()
		case *http2.GoAwayFrame:
			// The client opens no more streams: close once these finish.
			c.mu.Lock()
			c.goaway = true
			c.maybeClose()
			c.mu.Unlock()
		}
	}
}

// maxWindow is the largest flow-control window HTTP/2 allows.
const maxWindow = 1<<31 - 1

// connError ends the connection with GOAWAY (a protocol violation).
func (c *ServerConn) connError(code http2.ErrCode, msg string) {
	c.mu.Lock()
	c.fr.WriteGoAway(c.lastID, code, []byte(msg))
	c.done(nil)
	c.closeWhenWritten()
	c.mu.Unlock()
}

// onHeaders starts a stream (or ends one's input); false ends the connection.
func (c *ServerConn) onHeaders(f *http2.MetaHeadersFrame, b *Batch) bool {
	id := f.StreamID
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		// A second HEADERS: trailers (gRPC clients send none), which must
		// end the stream and hold no pseudo-header or connection-specific
		// field (RFC 9113 §8.1); after the client's END_STREAM the stream
		// is half-closed (remote) and takes no more frames (§5.1).
		var code http2.ErrCode
		switch {
		case s.inEnded:
			code = http2.ErrCodeStreamClosed
		case !f.StreamEnded() || f.PseudoFields() != nil || !validFields(f.RegularFields()):
			code = http2.ErrCodeProtocol
		}
		if code != 0 {
			c.mu.Unlock()
			c.resetStream(id, code, b)
			return true
		}
		s.inEnded = true
		c.mu.Unlock()
		c.endInput(s, b)
		return true
	}
	if id%2 == 1 && id <= c.lastID && c.wasReset(id) {
		c.mu.Unlock() // sent before the client saw our RST_STREAM: discarded
		return true
	}
	if id%2 == 0 || id <= c.lastID {
		c.mu.Unlock()
		if id%2 == 0 {
			c.connError(http2.ErrCodeProtocol, "even stream id from a client")
		} else {
			// A stream id at or below the last one: a closed stream, or
			// one skipped, which is closed too (RFC 9113 §5.1.1).
			c.connError(http2.ErrCodeProtocol, fmt.Sprintf("HEADERS on closed stream %d (last opened %d)", id, c.lastID))
		}
		return false
	}
	if c.goaway {
		c.mu.Unlock() // after GOAWAY: not processed; the client retries it
		return true
	}
	c.lastID = id
	if uint32(len(c.streams)) >= c.srv.opts.MaxConcurrentStreams {
		c.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		c.noteReset(id)
		c.done(b)
		c.mu.Unlock()
		return true
	}
	if f.Truncated {
		// Headers over MAX_HEADER_LIST_SIZE: refuse rather than serve a
		// request with fields silently dropped.
		c.writeHeaders(id, append(okHeaders[:2:2], Field("grpc-status", strconv.Itoa(int(codes.ResourceExhausted))),
			Field("grpc-message", EncodeMessage(fmt.Sprintf("request headers larger than %d bytes", c.srv.opts.MaxHeaderListSize)))), true)
		if !f.StreamEnded() {
			c.fr.WriteRSTStream(id, http2.ErrCodeNo)
			c.noteReset(id)
		}
		c.done(b)
		c.mu.Unlock()
		return true
	}
	s := &ServerStream{c: c, id: id, window: c.peerWindow, Received: time.Now(), Header: make([]hpack.HeaderField, 0, len(f.Fields))}
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			s.Method = hf.Value
		case ":path":
			s.Path = hf.Value
		case ":authority":
			s.Authority = hf.Value
		case ":scheme":
			s.Scheme = hf.Value
		case "grpc-timeout":
			s.Timeout, s.TimeoutErr = ParseTimeout(hf.Value)
			s.Header = append(s.Header, hf)
		default:
			if !hf.IsPseudo() {
				s.Header = append(s.Header, hf)
			}
		}
	}
	if s.Method == "" || s.Path == "" || !validFields(f.RegularFields()) {
		c.fr.WriteRSTStream(id, http2.ErrCodeProtocol)
		c.noteReset(id)
		c.done(b)
		c.mu.Unlock()
		return true
	}
	s.inEnded = f.StreamEnded()
	c.streams[id] = s
	c.mu.Unlock()

	s.maxMessage, s.sink = c.srv.handler.Open(s, b)
	if s.inEnded {
		c.endInput(s, b)
	}
	return true
}

// validFields reports whether a header block holds none of the
// connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2): Connection,
// Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, and TE other
// than "trailers".
func validFields(fields []hpack.HeaderField) bool {
	for _, hf := range fields {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return false
		case "te":
			if hf.Value != "trailers" {
				return false
			}
		}
	}
	return true
}

// onData takes request body bytes.
func (c *ServerConn) onData(f *http2.DataFrame, b *Batch) {
	n := int64(f.Length)
	o := c.srv.opts
	c.mu.Lock()
	c.recvUnacked += n
	if c.recvUnacked >= int64(o.ConnWindow/2) {
		c.fr.WriteWindowUpdate(0, uint32(c.recvUnacked))
		c.recvUnacked = 0
		c.done(b)
	}
	s := c.streams[f.StreamID]
	if s == nil || s.inEnded {
		c.mu.Unlock()
		return
	}
	end := f.StreamEnded()
	if end {
		s.inEnded = true
	}
	c.mu.Unlock()
	data := f.Data()
	if s.sink != nil {
		s.sink.Data(data, end, b)
		if !end {
			c.ackStream(s, n, b)
		}
		return
	}
	if s.refused {
		return
	}
	if len(s.body) < 5 && len(s.body)+len(data) >= 5 {
		var hdr [5]byte
		k := copy(hdr[:], s.body)
		copy(hdr[k:], data)
		size := binary.BigEndian.Uint32(hdr[1:])
		if uint64(size) > uint64(s.maxMessage) {
			c.refuse(s, fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", size, s.maxMessage), b)
			return
		}
		// Room for what the header announces, but never more ahead of
		// the data than a window's worth: claims cost nothing to make.
		if want := min(5+int(size), len(s.body)+len(data)+int(o.StreamWindow)); cap(s.body) < want {
			s.body = append(make([]byte, 0, want), s.body...)
		}
	}
	if len(s.body)+len(data) > s.maxMessage+5 {
		c.refuse(s, fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", len(s.body)+len(data)-5, s.maxMessage), b)
		return
	}
	c.mu.Lock()
	over := c.bodyBytes+len(data) > c.maxBuffered
	if !over {
		c.bodyBytes += len(data)
	}
	c.mu.Unlock()
	if over {
		c.refuse(s, fmt.Sprintf("connection holds %d bytes of unfinished requests: over the server's limit", c.bodyBytes), b)
		return
	}
	s.body = append(s.body, data...)
	if end {
		c.endInput(s, b)
		return
	}
	c.ackStream(s, n, b)
}

// refuse ends a unary stream whose body cannot be taken.
func (c *ServerConn) refuse(s *ServerStream, msg string, b *Batch) {
	s.refused = true
	c.releaseBody(s)
	s.Fail(codes.ResourceExhausted, msg, b)
}

// releaseBody returns a unary body's bytes to the connection's budget.
func (c *ServerConn) releaseBody(s *ServerStream) {
	if len(s.body) == 0 {
		return
	}
	c.mu.Lock()
	c.bodyBytes -= len(s.body)
	c.mu.Unlock()
	s.body = nil
}

// ackStream refills a stream's receive window once half of it is consumed.
func (c *ServerConn) ackStream(s *ServerStream, n int64, b *Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams[s.id] != s {
		return
	}
	s.recvUnacked += n
	if s.recvUnacked >= int64(c.srv.opts.StreamWindow/2) {
		c.fr.WriteWindowUpdate(s.id, uint32(s.recvUnacked))
		s.recvUnacked = 0
		c.done(b)
	}
}

// endInput delivers the end of a request body.
func (c *ServerConn) endInput(s *ServerStream, b *Batch) {
	if s.sink != nil {
		s.sink.Data(nil, true, b)
		return
	}
	if s.refused {
		return
	}
	body := s.body
	c.releaseBody(s)
	c.srv.handler.Unary(s, body, b)
}

// resetStream answers a stream-level protocol error.
func (c *ServerConn) resetStream(id uint32, code http2.ErrCode, b *Batch) {
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		c.cancel(s, b)
	}
	c.mu.Lock()
	c.fr.WriteRSTStream(id, code)
	c.noteReset(id)
	c.done(b)
	c.mu.Unlock()
}

// cancel tells the handler of an unfinished stream that the client is gone
// (once); a stream whose response has been fully written is not told.
func (c *ServerConn) cancel(s *ServerStream, b *Batch) {
	c.mu.Lock()
	if c.streams[s.id] != s {
		c.mu.Unlock()
		return
	}
	s.outDone, s.inEnded = true, true
	c.dropPending(s)
	delete(c.streams, s.id)
	f := s.onCancel
	s.onCancel = nil
	c.maybeClose()
	c.mu.Unlock()
	c.releaseBody(s)
	if s.sink != nil {
		s.sink.Cancel(b)
	} else if f != nil {
		f(b)
	}
}

// cleanup runs when the reader exits: every unfinished stream is cancelled.
func (c *ServerConn) cleanup() {
	c.mu.Lock()
	c.closed = true
	open := make([]*ServerStream, 0, len(c.streams))
	for _, s := range c.streams {
		open = append(open, s)
	}
	c.failWrite(errors.New("connection closed"))
	c.mu.Unlock()
	b := &Batch{}
	for _, s := range open {
		c.cancel(s, b)
	}
	b.Flush()
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	c.srv.mu.Unlock()
}
