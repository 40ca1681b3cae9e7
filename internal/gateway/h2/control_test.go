package h2

import (
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// A PING flood: pings with nothing sent by the server between them are
// strikes (grpc-go's server policy, which Triton's grpc core shares); the
// fourth ping ends the connection with GOAWAY ENHANCE_YOUR_CALM
// "too_many_pings". The gateway answered every ping, without limit.
func TestPingFlood(t *testing.T) {
	_, addr := serveH2(t, &echoHandler{maxMsg: 1 << 20})
	c := dialRaw(t, addr)
	for i := range 10 {
		c.fr.WritePing(false, [8]byte{byte(i)})
	}
	acks := 0
	var goaway *http2.GoAwayFrame
	for goaway == nil {
		f, err := c.readUntil(t, func(http2.Frame) bool { return true })
		if err != nil {
			t.Fatalf("no GOAWAY (%d pings answered): %v", acks, err)
		}
		switch f := f.(type) {
		case *http2.PingFrame:
			acks++
		case *http2.GoAwayFrame:
			goaway = f
		}
	}
	if goaway.ErrCode != http2.ErrCodeEnhanceYourCalm || string(goaway.DebugData()) != "too_many_pings" || acks != 3 {
		t.Fatalf("GOAWAY %v %q after %d pings answered, want ENHANCE_YOUR_CALM too_many_pings after 3", goaway.ErrCode, goaway.DebugData(), acks)
	}
}

// Pings between answers are keepalive, as in grpc-go: the server sent
// HEADERS or DATA since the last one, so no strike.
func TestPingsBetweenRequests(t *testing.T) {
	_, addr := serveH2(t, &echoHandler{maxMsg: 1 << 20})
	c := dialRaw(t, addr)
	for i := range 10 {
		id := uint32(2*i + 1)
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.enc(request("/x")...), EndHeaders: true})
		c.fr.WriteData(id, true, GRPCFrame([]byte("hi")))
		if _, err := c.readUntil(t, func(f http2.Frame) bool { h, ok := f.(*http2.MetaHeadersFrame); return ok && h.StreamEnded() }); err != nil {
			t.Fatal(err)
		}
		c.fr.WritePing(false, [8]byte{byte(i)})
		f, err := c.readUntil(t, func(f http2.Frame) bool {
			switch f.(type) {
			case *http2.PingFrame, *http2.GoAwayFrame:
				return true
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("ping %d between requests: GOAWAY %v %q", i, g.ErrCode, g.DebugData())
		}
	}
}

// A client that floods SETTINGS (which need an acknowledgement each) and
// never reads: past maxQueuedControlFrames acknowledgements waiting to be
// written, the connection is closed, as Go's http2 server does. The
// gateway kept reading and buffering them. The client is one end of an
// in-memory pipe, which takes no byte the other side does not read: no
// socket buffer hides what the server holds.
func TestControlFramesFromAPeerThatDoesNotRead(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	srv := NewServer(&echoHandler{maxMsg: 1 << 20}, ServerOptions{})
	go srv.Serve(&oneConnListener{c: server, done: make(chan struct{})})
	t.Cleanup(srv.Close)
	written := make(chan error, 1)
	go func() {
		if _, err := client.Write([]byte(http2.ClientPreface)); err != nil {
			written <- err
			return
		}
		fr := http2.NewFramer(client, client)
		for range 30_000 { // three times the limit
			if err := fr.WriteSettings(); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	select {
	case err := <-written:
		if err == nil {
			t.Fatal("30,000 SETTINGS frames taken from a client that reads nothing")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the server neither took nor refused the SETTINGS frames in 60 s")
	}
}

// oneConnListener accepts c once, then waits until closed.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }
