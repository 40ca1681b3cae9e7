package h2

import (
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// Relay forwards a server stream to a new stream on up, both ways, as the
// bytes come (streaming calls, and every call the handler does not serve
// itself). The returned Sink takes the request body; pass it back from
// Handler.Open.
func Relay(s *ServerStream, up *ClientConn, b *Batch) (Sink, error) {
	fields := make([]hpack.HeaderField, 0, 4+len(s.Header))
	scheme := s.Scheme
	if scheme == "" {
		scheme = "http"
	}
	fields = append(fields, Field(":method", s.Method), Field(":scheme", scheme), Field(":path", s.Path), Field(":authority", s.Authority))
	fields = append(fields, s.Header...)
	cs, err := up.Open(fields, relayReceiver{s}, b)
	if err != nil {
		return nil, err
	}
	return relaySink{cs}, nil
}

type relaySink struct{ cs *ClientStream }

func (r relaySink) Data(p []byte, end bool, b *Batch) { r.cs.Send(p, end, b) }
func (r relaySink) Cancel(b *Batch)                   { r.cs.Cancel(b) }

type relayReceiver struct{ s *ServerStream }

func (r relayReceiver) Headers(fields []hpack.HeaderField, b *Batch) { r.s.WriteHeaders(fields, b) }
func (r relayReceiver) Data(p []byte, b *Batch)                      { r.s.WriteData(p, b) }
func (r relayReceiver) Trailers(fields []hpack.HeaderField, b *Batch) {
	if fields == nil {
		r.s.Fail(codes.Internal, "server closed the stream without sending trailers", b)
		return
	}
	r.s.Finish(fields, b)
}
func (r relayReceiver) Reset(err *ResetError, b *Batch) { r.s.Fail(err.Code, err.Msg, b) }
