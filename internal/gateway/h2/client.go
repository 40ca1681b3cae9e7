package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// Receive windows the client advertises: backends never wait for it.
const (
	clientWindow = 1 << 30
	clientRefill = 1 << 28
)

// ClientOptions configure a backend connection.
type ClientOptions struct {
	// TLS, when set, dials TLS with ALPN h2; otherwise cleartext HTTP/2.
	TLS *tls.Config
	// Dial replaces the TCP dialer (in-memory connections).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// MaxBufferedBytes bounds request bytes waiting to be written or for
	// the backend's window (default 256 MiB); a backend that stops reading
	// past it is disconnected (its streams fail and may be retried).
	MaxBufferedBytes int
}

// Receiver gets a stream's response. Its methods run on the connection's
// reader goroutine, one at a time, without locks held, and must not block.
// After Trailers or Reset nothing more arrives; after Cancel a stale event
// may still arrive and must be ignored.
type Receiver interface {
	// Headers are the response headers (with :status 200).
	Headers(fields []hpack.HeaderField, b *Batch)
	// Data is response body bytes, valid only during the call.
	Data(p []byte, b *Batch)
	// Trailers end the stream: the trailers, or for a trailers-only
	// response its one header block (nil when the backend ended the stream
	// without trailers).
	Trailers(fields []hpack.HeaderField, b *Batch)
	// Reset ends the stream without trailers.
	Reset(err *ResetError, b *Batch)
}

// ResetError is how a stream ended without trailers.
type ResetError struct {
	Code codes.Code
	Msg  string
	// Unprocessed: the backend did not start on the request (refused
	// stream, beyond its GOAWAY, or never sent): safe to send elsewhere.
	Unprocessed bool
}

func (e *ResetError) Error() string { return e.Msg }

// ClientConn is one HTTP/2 connection to a gRPC backend.
type ClientConn struct {
	wconn // mu guards the fields below and every stream's state
	br    *bufio.Reader
	Addr  string

	streams     map[uint32]*ClientStream
	nextID      uint32
	maxStreams  int
	peerWindow  int64
	connWindow  int64
	recvUnacked int64
	waiting     []*ClientStream
	blocked     []*ClientStream
	err         error // set once no new stream may start (setErr)
	unusable    chan struct{}
	readerDone  chan struct{}
	settings    chan struct{}
	gotSettings bool
}

// ClientStream is one request stream on a ClientConn.
type ClientStream struct {
	c      *ClientConn
	r      Receiver
	id     uint32 // 0 while waiting for a stream slot
	fields []hpack.HeaderField

	pending    []byte
	endPending bool
	endSent    bool
	window     int64
	gotHeaders bool
	done       bool
	recvAcked  int64
}

// Dial connects to addr and waits for the backend's SETTINGS.
func Dial(ctx context.Context, addr string, o ClientOptions) (*ClientConn, error) {
	var nc net.Conn
	var err error
	switch {
	case o.Dial != nil:
		nc, err = o.Dial(ctx, addr)
	case o.TLS != nil:
		cfg := o.TLS.Clone()
		cfg.NextProtos = []string{"h2"}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		td := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 15 * time.Second}, Config: cfg}
		nc, err = td.DialContext(ctx, "tcp", addr)
		if err == nil {
			if p := nc.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
				nc.Close()
				return nil, fmt.Errorf("%s: backend did not negotiate HTTP/2 over TLS (ALPN %q)", addr, p)
			}
		}
	default:
		d := net.Dialer{KeepAlive: 15 * time.Second}
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &ClientConn{Addr: addr, streams: map[uint32]*ClientStream{}, nextID: 1, maxStreams: 100,
		peerWindow: 65535, connWindow: 65535, readerDone: make(chan struct{}), settings: make(chan struct{}), unusable: make(chan struct{})}
	c.br = bufio.NewReaderSize(nc, 64<<10)
	if o.MaxBufferedBytes == 0 {
		o.MaxBufferedBytes = 256 << 20
	}
	c.init(nc, c.br, o.MaxBufferedBytes)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 16 << 20
	c.fr.SetMaxReadFrameSize(16384) // what we advertise (the default)
	c.fr.SetReuseFrames()
	c.mu.Lock()
	c.out.Write([]byte(http2.ClientPreface))
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: clientWindow},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	c.fr.WriteWindowUpdate(0, clientWindow-65535)
	c.done(nil)
	werr := c.werr
	c.mu.Unlock()
	if werr != nil {
		nc.Close()
		return nil, werr
	}
	go c.readLoop()
	// Like grpc-go, no stream starts before the backend's SETTINGS.
	select {
	case <-c.settings:
		return c, nil
	case <-c.readerDone:
		return nil, fmt.Errorf("%s: %w", addr, c.Err())
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("%s: no HTTP/2 SETTINGS from the backend: %w", addr, ctx.Err())
	}
}

// setErr records why no new stream may start (c.mu held; first reason wins).
func (c *ClientConn) setErr(err error) {
	if c.err == nil {
		c.err = err
		close(c.unusable)
	}
}

// Unusable is closed once the connection takes no new streams (GOAWAY,
// failure, Close): time to dial a new one.
func (c *ClientConn) Unusable() <-chan struct{} { return c.unusable }

// Err is why the connection takes no new streams (nil while it does).
func (c *ClientConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection; open streams are reset.
func (c *ClientConn) Close() {
	c.mu.Lock()
	c.setErr(errors.New("connection closed"))
	c.failWrite(errors.New("connection closed"))
	c.mu.Unlock()
	<-c.readerDone
}

// Streams is the number of streams open or waiting.
func (c *ClientConn) Streams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams) + len(c.waiting)
}

// Open starts a stream with the request headers (pseudo-headers first). An
// error means it was not sent (the connection is going away or broken).
func (c *ClientConn) Open(fields []hpack.HeaderField, r Receiver, b *Batch) (*ClientStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	s := &ClientStream{c: c, r: r, fields: fields}
	if len(c.streams) >= c.maxStreams {
		c.waiting = append(c.waiting, s)
		return s, nil
	}
	c.open(s)
	c.done(b)
	return s, nil
}

// open gives a stream its id and sends its headers (c.mu held).
func (c *ClientConn) open(s *ClientStream) {
	s.id = c.nextID
	c.nextID += 2
	s.window = c.peerWindow
	c.streams[s.id] = s
	c.writeHeaders(s.id, s.fields, false)
	s.fields = nil
	if len(s.pending) > 0 || s.endPending {
		c.sendPending(s)
	}
	if c.nextID > 1<<31-1-2 {
		// Stream ids run out: new streams go to a new connection.
		c.setErr(errors.New("stream ids exhausted"))
	}
}

// Send sends request body bytes (copied when they cannot go out at once);
// end half-closes the stream.
func (s *ClientStream) Send(p []byte, end bool, b *Batch) {
	s.SendParts([][]byte{p}, end, b)
}

// SendParts sends the parts one after the other, as Send would their
// concatenation, without joining them.
func (s *ClientStream) SendParts(parts [][]byte, end bool, b *Batch) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.done || s.endSent || s.endPending {
		return
	}
	if s.id == 0 || len(s.pending) > 0 {
		for _, p := range parts {
			s.pending = append(s.pending, p...)
			c.pendingOut += len(p)
		}
		s.endPending = end
		c.checkBudget()
		return
	}
	for i, p := range parts {
		last := i == len(parts)-1
		n := c.sendData(s, p, end && last)
		if n < len(p) {
			before := len(s.pending)
			s.pending = append([]byte(nil), p[n:]...)
			for _, q := range parts[i+1:] {
				s.pending = append(s.pending, q...)
			}
			c.pendingOut += len(s.pending) - before
			s.endPending = end
			c.blocked = append(c.blocked, s)
			c.checkBudget()
			break
		}
	}
	c.done(b)
}

// checkBudget disconnects a backend that lets too much wait for it (c.mu held).
func (c *ClientConn) checkBudget() {
	if c.buffered() > c.maxBuffered {
		c.failWrite(fmt.Errorf("backend %s is not reading: %d bytes waiting for it", c.Addr, c.buffered()))
	}
}

// dropPending forgets a stream's unsent body (c.mu held).
func (c *ClientConn) dropPending(s *ClientStream) {
	c.pendingOut -= len(s.pending)
	s.pending, s.endPending = nil, false
}

// sendData writes what the windows allow of p, with END_STREAM on the last
// frame when end and all of p fits (c.mu held).
func (c *ClientConn) sendData(s *ClientStream, p []byte, end bool) int {
	sent := 0
	for sent < len(p) {
		n := min(len(p)-sent, c.maxFrame, int(min(c.connWindow, s.window)))
		if n <= 0 {
			return sent
		}
		last := end && sent+n == len(p)
		c.fr.WriteData(s.id, last, p[sent:sent+n])
		sent += n
		c.connWindow -= int64(n)
		s.window -= int64(n)
		if last {
			s.endSent = true
		}
	}
	if end && !s.endSent {
		c.fr.WriteData(s.id, true, nil)
		s.endSent = true
	}
	return sent
}

// sendPending sends a stream's queued body (c.mu held).
func (c *ClientConn) sendPending(s *ClientStream) {
	n := c.sendData(s, s.pending, s.endPending)
	s.pending = s.pending[n:]
	c.pendingOut -= n
	if len(s.pending) > 0 {
		c.blocked = append(c.blocked, s)
		return
	}
	s.pending = nil
	s.endPending = false
}

func (c *ClientConn) unblock() bool {
	if len(c.blocked) == 0 {
		return false
	}
	blocked := c.blocked
	c.blocked = nil
	for _, s := range blocked {
		if c.streams[s.id] == s && (len(s.pending) > 0 || s.endPending) {
			c.sendPending(s)
		}
	}
	return true
}

// Cancel resets the stream (RST_STREAM CANCEL); no more events follow
// (but see Receiver).
func (s *ClientStream) Cancel(b *Batch) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	c.dropPending(s)
	if s.id == 0 {
		for i, w := range c.waiting {
			if w == s {
				c.waiting = append(c.waiting[:i], c.waiting[i+1:]...)
				break
			}
		}
		return
	}
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
		c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel)
		c.startWaiting()
		c.done(b)
	}
}

// startWaiting opens waiting streams while slots are free (c.mu held).
func (c *ClientConn) startWaiting() {
	for len(c.waiting) > 0 && len(c.streams) < c.maxStreams && c.err == nil {
		s := c.waiting[0]
		c.waiting = c.waiting[1:]
		c.open(s)
	}
}

// event is a Receiver call to make once c.mu is released.
type event struct {
	s        *ClientStream
	kind     byte // 'h' headers, 'd' data, 't' trailers, 'r' reset
	fields   []hpack.HeaderField
	data     []byte
	resetErr *ResetError
}

// end retires a stream (c.mu held); false if it had already ended.
func (c *ClientConn) end(s *ClientStream) bool {
	if s.done {
		return false
	}
	s.done = true
	c.dropPending(s)
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	c.startWaiting()
	return true
}

// fail marks the connection broken and resets every stream.
func (c *ClientConn) fail(err error, b *Batch) {
	c.mu.Lock()
	c.setErr(err)
	var evs []event
	for _, s := range c.streams {
		if c.end(s) {
			evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: codes.Unavailable, Msg: fmt.Sprintf("backend %s: %v", c.Addr, err)}})
		}
	}
	for _, s := range c.waiting {
		if !s.done {
			s.done = true
			evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: codes.Unavailable, Msg: fmt.Sprintf("backend %s: %v", c.Addr, err), Unprocessed: true}})
		}
	}
	c.waiting, c.blocked = nil, nil
	c.pendingOut = 0
	c.failWrite(err)
	c.mu.Unlock()
	for _, e := range evs {
		e.s.r.Reset(e.resetErr, b)
	}
}

// readLoop reads the backend's frames until the connection ends.
func (c *ClientConn) readLoop() {
	defer close(c.readerDone)
	b := &Batch{}
	defer b.Flush()
	var evs []event
	for {
		if !frameBuffered(c.br) {
			b.Flush()
			c.mu.Lock()
			// Going away with nothing left in flight: close (waiting
			// streams, if any, fail as unprocessed and go elsewhere).
			idle := c.err != nil && len(c.streams) == 0
			c.mu.Unlock()
			if idle {
				c.fail(c.Err(), b)
				return
			}
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.mu.Lock()
				s := c.streams[se.StreamID]
				if s != nil && c.end(s) {
					evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: codes.Internal, Msg: fmt.Sprintf("backend %s: %v", c.Addr, se)}})
				}
				c.fr.WriteRSTStream(se.StreamID, se.Code)
				c.done(b)
				c.mu.Unlock()
				evs = c.deliver(evs, b)
				continue
			}
			c.fail(fmt.Errorf("connection lost: %w", err), b)
			return
		}
		c.mu.Lock()
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			s := c.streams[f.StreamID]
			if s == nil {
				break
			}
			if !s.gotHeaders && !f.StreamEnded() {
				s.gotHeaders = true
				if st := Get(f.Fields, ":status"); st != "200" {
					c.end(s)
					c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel)
					c.done(b)
					evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: HTTPToGRPC(st), Msg: fmt.Sprintf("backend %s answered HTTP status %s", c.Addr, st)}})
					break
				}
				evs = append(evs, event{s: s, kind: 'h', fields: f.Fields})
				break
			}
			if f.StreamEnded() && c.end(s) {
				if !s.endSent {
					c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel)
					c.done(b)
				}
				evs = append(evs, event{s: s, kind: 't', fields: f.Fields})
			}
		case *http2.DataFrame:
			n := int64(f.Length)
			c.recvUnacked += n
			if c.recvUnacked >= clientRefill {
				c.fr.WriteWindowUpdate(0, uint32(c.recvUnacked))
				c.recvUnacked = 0
				c.done(b)
			}
			s := c.streams[f.StreamID]
			if s == nil {
				break
			}
			if len(f.Data()) > 0 {
				evs = append(evs, event{s: s, kind: 'd', data: f.Data()})
			}
			if f.StreamEnded() {
				if c.end(s) {
					evs = append(evs, event{s: s, kind: 't'})
				}
				break
			}
			s.recvAcked += n
			if s.recvAcked >= clientRefill {
				c.fr.WriteWindowUpdate(s.id, uint32(s.recvAcked))
				s.recvAcked = 0
				c.done(b)
			}
		case *http2.RSTStreamFrame:
			if s := c.streams[f.StreamID]; s != nil && c.end(s) {
				evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: RSTToGRPC(f.ErrCode),
					Msg: fmt.Sprintf("backend %s reset the stream: %s", c.Addr, f.ErrCode), Unprocessed: f.ErrCode == http2.ErrCodeRefusedStream}})
			}
		case *http2.SettingsFrame:
			if f.IsAck() {
				break
			}
			if !c.gotSettings {
				// The limit is 100 until the backend's SETTINGS say otherwise;
				// without the setting, streams are unlimited (RFC 9113 6.5.2).
				c.maxStreams = 1 << 20
			}
			err := f.ForeachSetting(func(st http2.Setting) error {
				if err := st.Valid(); err != nil {
					return err
				}
				switch st.ID {
				case http2.SettingMaxConcurrentStreams:
					c.maxStreams = int(min(st.Val, 1<<20))
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
				c.fr.WriteGoAway(0, http2.ErrCodeProtocol, []byte(err.Error()))
				c.flushLocked()
				c.mu.Unlock()
				c.fail(fmt.Errorf("backend sent invalid SETTINGS: %w", err), b)
				return
			}
			c.fr.WriteSettingsAck()
			if !c.gotSettings {
				c.gotSettings = true
				close(c.settings)
			}
			c.startWaiting()
			c.unblock()
			c.done(b)
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.connWindow += int64(f.Increment)
				if c.connWindow > maxWindow {
					c.mu.Unlock()
					c.fail(errors.New("backend overflowed the connection window"), b)
					return
				}
			} else if s := c.streams[f.StreamID]; s != nil {
				s.window += int64(f.Increment)
				if s.window > maxWindow && c.end(s) {
					c.fr.WriteRSTStream(s.id, http2.ErrCodeFlowControl)
					evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: codes.Internal, Msg: fmt.Sprintf("backend %s overflowed a stream window", c.Addr)}})
				}
			}
			if c.unblock() {
				c.done(b)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
				c.done(b)
			}
		case *http2.GoAwayFrame:
			// Streams beyond the last the backend will process did not
			// start: they may go elsewhere. The rest finish here.
			c.setErr(fmt.Errorf("backend %s is going away (GOAWAY %s)", c.Addr, f.ErrCode))
			for id, s := range c.streams {
				if id > f.LastStreamID && c.end(s) {
					evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: codes.Unavailable, Msg: c.err.Error(), Unprocessed: true}})
				}
			}
			for _, s := range c.waiting {
				if !s.done {
					s.done = true
					evs = append(evs, event{s: s, kind: 'r', resetErr: &ResetError{Code: codes.Unavailable, Msg: c.err.Error(), Unprocessed: true}})
				}
			}
			c.waiting = nil
		}
		if len(c.out.b) > 0 {
			c.done(b) // e.g. streams opened as others ended
		}
		c.mu.Unlock()
		evs = c.deliver(evs, b)
	}
}

// deliver makes the Receiver calls collected while c.mu was held.
func (c *ClientConn) deliver(evs []event, b *Batch) []event {
	for i, e := range evs {
		switch e.kind {
		case 'h':
			e.s.r.Headers(e.fields, b)
		case 'd':
			e.s.r.Data(e.data, b)
		case 't':
			e.s.r.Trailers(e.fields, b)
		case 'r':
			e.s.r.Reset(e.resetErr, b)
		}
		evs[i] = event{}
	}
	return evs[:0]
}
