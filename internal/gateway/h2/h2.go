// Package h2 is the gateway's data plane: a lean HTTP/2 server for gRPC
// clients and a lean HTTP/2 client for gRPC backends, written on x/net/http2's
// framer and hpack.
//
// grpc-go hands every call between several goroutines on each side (the
// connection's reader, a handler goroutine, the transport's writer), and a
// proxy built on it pays that twice, plus a fresh goroutine and stack per
// request: on a small machine that is most of the latency it adds and most of
// its CPU. Here a request is read on the client connection's reader
// goroutine and written to the backend's connection from there; the answer
// is read on the backend connection's reader and written back to the client
// from there. Nothing else runs per request. Writes made while a reader
// handles a burst of frames are flushed together before it next blocks
// (Batch), so under load many requests share one system call.
//
// The package knows HTTP/2 and gRPC's use of it (framing, trailers,
// grpc-timeout, status mapping), not Triton: what to do with a call is the
// Handler's business. Flow control, stream limits, SETTINGS, PING, GOAWAY,
// RST_STREAM, CONTINUATION and trailers-only responses follow RFC 9113 and
// gRPC's HTTP/2 protocol.
package h2

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// Batch defers the flushes of the connections its owner writes to while it
// handles a burst of frames: the owner (a connection's reader goroutine)
// flushes them all before its next read could block. A nil *Batch flushes at
// once.
type Batch struct{ dirty []*wconn }

// Flush writes out every connection written to through b.
func (b *Batch) Flush() {
	for i, w := range b.dirty {
		w.flushQueued()
		b.dirty[i] = nil
	}
	b.dirty = b.dirty[:0]
}

// writeTimeout bounds one socket write by a connection's writer goroutine:
// a peer that reads nothing for that long is cut off.
const writeTimeout = 30 * time.Second

// wconn is the write side of a connection, shared by the server and the
// client. Its mutex also guards the owning connection's state.
//
// Frames are encoded into out under mu. A flush first tries a non-blocking
// write straight to the socket (on the goroutine that flushes: no hand-off in
// the common case); whatever the kernel does not take at once goes to the
// connection's writer goroutine, which writes it outside the lock. So a write
// never blocks the goroutine making it, whichever connection's reader that is,
// and a peer that stops reading holds up only its own connection. What waits
// to be written is bounded by maxBuffered: beyond it the peer is not reading
// and the connection is closed.
type wconn struct {
	mu          sync.Mutex
	nc          net.Conn
	raw         syscall.RawConn // nil: no non-blocking writes (TLS, in-memory)
	fr          *http2.Framer
	henc        *hpack.Encoder
	hbuf        bytes.Buffer
	maxFrame    int // the peer's SETTINGS_MAX_FRAME_SIZE
	out         outBuf
	spare       []byte
	writing     int // bytes the writer goroutine is writing (>0: it owns the socket)
	wake        chan struct{}
	maxBuffered int // budget for out + writing + the owner's pending stream data
	pendingOut  int // stream data waiting for the peer's flow-control window
	queued      bool
	werr        error
	drainClose  bool // half-close once everything is written
	// streamFrames counts HEADERS and DATA written (the server's ping
	// policy: pings between them are keepalive, not a flood).
	streamFrames uint64
	// ctrlQueued counts the control frames written in answer to the peer
	// (PING and SETTINGS acknowledgements) since the output was last
	// written out whole: a peer that sends them and never reads cannot
	// make the queue grow without bound.
	ctrlQueued int
}

// maxQueuedControlFrames is how many answers to control frames may wait to
// be written (Go's http2 server's limit).
const maxQueuedControlFrames = 10000

// queueControl accounts for one control-frame answer (w.mu held); false
// means the peer has not been reading them and the connection is closed.
func (w *wconn) queueControl() bool {
	w.ctrlQueued++
	if w.ctrlQueued > maxQueuedControlFrames {
		w.failWrite(fmt.Errorf("peer is not reading: %d control frames waiting to be written", w.ctrlQueued))
		return false
	}
	return true
}

var errWriteClosed = errors.New("connection closing")

// outBuf collects encoded frames.
type outBuf struct{ b []byte }

func (o *outBuf) Write(p []byte) (int, error) {
	o.b = append(o.b, p...)
	return len(p), nil
}

func (w *wconn) init(nc net.Conn, br *bufio.Reader, maxBuffered int) {
	w.nc = nc
	w.raw = rawConn(nc)
	w.fr = http2.NewFramer(&w.out, br)
	w.henc = hpack.NewEncoder(&w.hbuf)
	w.maxFrame = 16384
	w.maxBuffered = maxBuffered
	w.wake = make(chan struct{}, 1)
	go w.writeLoop()
}

// done ends a write made with w.mu held: flush now (nil batch) or later.
func (w *wconn) done(b *Batch) {
	if w.werr != nil {
		return
	}
	if b == nil {
		w.flushLocked()
		return
	}
	if !w.queued {
		w.queued = true
		b.dirty = append(b.dirty, w)
	}
}

func (w *wconn) flushQueued() {
	w.mu.Lock()
	w.queued = false
	w.flushLocked()
	w.mu.Unlock()
}

// flushLocked sends what is buffered (w.mu held): straight to the socket as
// far as it takes it without blocking, the rest through the writer goroutine.
func (w *wconn) flushLocked() {
	if w.werr != nil {
		return
	}
	if len(w.out.b) == 0 {
		w.maybeHalfClose()
		return
	}
	if w.writing == 0 && w.raw != nil {
		n, err := tryWrite(w.raw, w.out.b)
		if err != nil {
			w.failWrite(err)
			return
		}
		if n == len(w.out.b) {
			w.out.b = w.out.b[:0]
			w.ctrlQueued = 0
			w.maybeHalfClose()
			return
		}
		w.out.b = append(w.out.b[:0], w.out.b[n:]...)
	}
	if w.buffered() > w.maxBuffered {
		w.failWrite(fmt.Errorf("peer is not reading: %d bytes waiting to be written", w.buffered()))
		return
	}
	if w.writing == 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// buffered is what waits to be written or for window (w.mu held).
func (w *wconn) buffered() int { return len(w.out.b) + w.writing + w.pendingOut }

// writeLoop writes what flushLocked could not, outside the lock, until the
// connection fails.
func (w *wconn) writeLoop() {
	for range w.wake {
		for {
			w.mu.Lock()
			if w.werr != nil || len(w.out.b) == 0 {
				w.writing = 0
				w.ctrlQueued = 0
				w.maybeHalfClose()
				failed := w.werr != nil
				w.mu.Unlock()
				if failed {
					return
				}
				break
			}
			data := w.out.b
			w.out.b = w.spare[:0]
			w.writing = len(data)
			w.mu.Unlock()
			w.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err := w.nc.Write(data)
			w.mu.Lock()
			w.spare = data[:0]
			if err != nil {
				w.failWrite(err)
			}
			w.mu.Unlock()
		}
	}
}

// failWrite records a write error (w.mu held) and closes the connection: its
// reader then fails and cleans up.
func (w *wconn) failWrite(err error) {
	if w.werr == nil || w.werr == errWriteClosed {
		w.werr = err
		w.out.b = nil
		w.nc.Close()
		select {
		case w.wake <- struct{}{}: // let the writer goroutine exit
		default:
		}
	}
}

// closeWhenWritten half-closes the connection once everything buffered is
// written (w.mu held): the peer reads it all, then sees EOF; the reader goes
// on until the peer closes too (or a second passes), so that nothing the peer
// still sends turns the close into a reset that could lose the last frames.
func (w *wconn) closeWhenWritten() {
	w.drainClose = true
	w.flushLocked()
}

func (w *wconn) maybeHalfClose() {
	if !w.drainClose || w.werr != nil || len(w.out.b) > 0 || w.writing > 0 {
		return
	}
	w.werr = errWriteClosed
	if cw, ok := w.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		w.nc.SetReadDeadline(time.Now().Add(time.Second))
	} else {
		w.nc.Close()
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// writeHeaders encodes fields as one header block (w.mu held), split into
// CONTINUATION frames when larger than the peer's frame size.
func (w *wconn) writeHeaders(id uint32, fields []hpack.HeaderField, end bool) {
	if w.werr != nil {
		return
	}
	w.hbuf.Reset()
	for _, f := range fields {
		w.henc.WriteField(f)
	}
	block := w.hbuf.Bytes()
	first := block
	if len(first) > w.maxFrame {
		first = block[:w.maxFrame]
	}
	rest := block[len(first):]
	w.streamFrames++
	w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(rest) == 0})
	for len(rest) > 0 {
		n := min(len(rest), w.maxFrame)
		w.fr.WriteContinuation(id, n == len(rest), rest[:n])
		rest = rest[n:]
	}
}

// Field makes a header field.
func Field(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }

// Get returns the first value of a header field ("" if absent).
func Get(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// GRPCFrame prefixes an uncompressed message with gRPC's 5-byte header.
func GRPCFrame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// Unframe returns the one uncompressed message of a unary gRPC body.
func Unframe(body []byte) ([]byte, error) {
	if len(body) < 5 {
		if len(body) == 0 {
			return nil, fmt.Errorf("grpc: no request message")
		}
		return nil, fmt.Errorf("grpc: truncated message header")
	}
	if body[0] != 0 {
		return nil, fmt.Errorf("grpc: compressed message without grpc-encoding")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	switch {
	case uint64(n) > uint64(len(body)-5):
		return nil, fmt.Errorf("grpc: truncated message: header says %d bytes, %d sent", n, len(body)-5)
	case uint64(n) < uint64(len(body)-5):
		return nil, fmt.Errorf("grpc: more than one message in a unary request")
	}
	return body[5:], nil
}

// ParseTimeout reads a grpc-timeout header value ("100m", "5S").
func ParseTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, fmt.Errorf("malformed grpc-timeout %q", v)
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("malformed grpc-timeout %q", v)
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("malformed grpc-timeout %q", v)
	}
	if n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, nil
	}
	return time.Duration(n) * unit, nil
}

// FormatTimeout writes d as a grpc-timeout value (at most 8 digits).
func FormatTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	for _, u := range []struct {
		unit time.Duration
		c    byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}} {
		n := d / u.unit
		if d%u.unit != 0 {
			n++
		}
		if n < 1e8 {
			return strconv.FormatInt(int64(n), 10) + string(u.c)
		}
	}
	return "99999999H"
}

// EncodeMessage percent-encodes a grpc-message value as gRPC requires.
func EncodeMessage(msg string) string {
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			return encodeMessageSlow(msg)
		}
	}
	return msg
}

func encodeMessageSlow(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// DecodeMessage undoes EncodeMessage (leniently: bad escapes stay as sent).
func DecodeMessage(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	if s, err := url.PathUnescape(v); err == nil {
		return s
	}
	return v
}

// Status reads grpc-status and grpc-message from trailers; a response
// without grpc-status is INTERNAL, per gRPC's protocol.
func Status(trailers []hpack.HeaderField) (codes.Code, string) {
	st := Get(trailers, "grpc-status")
	if st == "" {
		if s := Get(trailers, ":status"); s != "" && s != "200" {
			return HTTPToGRPC(s), "unexpected HTTP status " + s + " from the backend"
		}
		return codes.Internal, "server closed the stream without sending trailers"
	}
	n, err := strconv.ParseUint(st, 10, 32)
	if err != nil {
		return codes.Unknown, "malformed grpc-status " + strconv.Quote(st)
	}
	return codes.Code(n), DecodeMessage(Get(trailers, "grpc-message"))
}

// HTTPToGRPC maps a non-200 HTTP status to a gRPC code (gRPC's mapping).
func HTTPToGRPC(status string) codes.Code {
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

// RSTToGRPC maps an RST_STREAM error code to a gRPC code (gRPC's mapping).
func RSTToGRPC(code http2.ErrCode) codes.Code {
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

// frameBuffered reports whether a whole frame is already buffered in br, so
// that reading it will not block.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 9 {
		return false
	}
	hdr, err := br.Peek(9)
	if err != nil {
		return false
	}
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	return n >= 9+length
}
