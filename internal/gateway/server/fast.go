package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/gateway/h2"
	"github.com/tritongate/tritongate/internal/gateway/pool"
	"github.com/tritongate/tritongate/internal/gateway/route"
)

// The data plane. Unary ModelInfer calls (uncompressed, tracing off) are
// proxied by fastCall on the lean HTTP/2 connections of package h2: read on
// the client connection's goroutine, routed, written to the backend's
// connection, answered from the backend connection's goroutine. Every other
// call (metadata, health, reflection, streams, compressed messages, and all
// calls when tracing is on) is relayed as bytes to the grpc-go server that
// implements the whole service in-process.

// Open implements h2.Handler: which calls take the fast path.
func (s *Server) Open(fs *h2.ServerStream, b *h2.Batch) (int, h2.Sink) {
	if s.fastEligible(fs) {
		return s.maxMsg, nil
	}
	up, err := s.internalConn()
	if err == nil {
		var sink h2.Sink
		if sink, err = h2.Relay(fs, up, b); err == nil {
			return 0, sink
		}
	}
	fs.Fail(codes.Unavailable, "gateway: "+err.Error(), b)
	return 0, discard{}
}

type discard struct{}

func (discard) Data([]byte, bool, *h2.Batch) {}
func (discard) Cancel(*h2.Batch)             {}

func (s *Server) fastEligible(fs *h2.ServerStream) bool {
	if fs.Path != modelInferMethod || fs.Method != "POST" || s.otel != nil {
		return false
	}
	ct := h2.Get(fs.Header, "content-type")
	if ct != "application/grpc" && ct != "application/grpc+proto" {
		return false
	}
	enc := h2.Get(fs.Header, "grpc-encoding")
	return enc == "" || enc == "identity"
}

// Unary implements h2.Handler: a whole ModelInfer request arrived.
func (s *Server) Unary(fs *h2.ServerStream, body []byte, b *h2.Batch) {
	msg, err := h2.Unframe(body)
	if err != nil {
		fs.Fail(codes.Internal, err.Error(), b)
		return
	}
	if fs.TimeoutErr != nil {
		fs.Fail(codes.Internal, fs.TimeoutErr.Error(), b)
		return
	}
	c := &fastCall{s: s, fs: fs, msg: msg, start: time.Now()}
	c.run(b)
}

// fastCall is one ModelInfer call on the data plane.
type fastCall struct {
	s     *Server
	st    *state
	fs    *h2.ServerStream
	msg   []byte
	start time.Time

	rt         *route.Route
	target     route.Target
	version    string // metric label
	requestID  string
	fields     []hpack.HeaderField // regular headers for the backend
	extra      []byte              // fields appended to the request (version override)
	prefix     [5]byte
	deadline   time.Time
	routeBound bool // the route's timeout, not the client's deadline, set it
	anyBackend bool // see begin
	shadow     bool
	tried      []*pool.Endpoint
	attempts   int
	lastErr    error
	waitEnd    time.Time // until when a call that finds no backend waits for one
	seq        *seqCall  // the request's sequence, nil outside any

	mu       sync.Mutex
	finished bool
	cur      *fastAttempt
	timer    *time.Timer
}

// fastAttempt is one try on one backend; it receives the backend's answer.
type fastAttempt struct {
	c         *fastCall
	ep        *pool.Endpoint
	report    func(error)
	reported  bool
	cs        *h2.ClientStream
	committed bool // the response started going to the client: no retry
	header    []hpack.HeaderField
	data      []byte // kept for shadow comparison only
}

func (c *fastCall) run(b *h2.Batch) {
	s := c.s
	s.m.inFlight.Inc()
	c.st = s.acquire()
	req, err := scanRequest(c.msg)
	if err != nil {
		s.m.invalid.WithLabelValues("malformed").Inc()
		c.reply(codes.InvalidArgument, err.Error(), b)
		return
	}
	rt, ok := c.st.table.Lookup(req.model)
	if !ok {
		s.m.invalid.WithLabelValues("unknown_model").Inc()
		c.reply(codes.NotFound, status.Convert(unknownModel(req.model)).Message(), b)
		return
	}
	c.rt = rt
	get := func(k string) string { return h2.Get(c.fs.Header, k) }
	// The client's request id travels to the backend with the other
	// headers; the gateway names requests without one only in its logs.
	c.requestID = get("x-request-id")
	var how string
	c.target, how = rt.Choose(req.version, get)
	c.seq = s.sequenceOf(req, &c.target)
	c.anyBackend = answersAny(how)
	c.version = c.target.Version
	if c.version == "" {
		c.version = "latest"
	}
	s.m.choices.WithLabelValues(rt.Model, c.version, how).Inc()
	if c.target.Version != req.version {
		c.extra = appendString(nil, reqModelVersion, c.target.Version)
	}
	binary.BigEndian.PutUint32(c.prefix[1:], uint32(len(c.msg)+len(c.extra)))

	cfg := c.st.cfg.Defaults
	c.deadline = c.start.Add(rt.Timeout)
	c.routeBound = true
	if t := c.fs.Timeout; t > 0 {
		if d := c.fs.Received.Add(t - cfg.DeadlineMargin.Duration); d.Before(c.deadline) {
			c.deadline, c.routeBound = d, false
		}
	}
	if !time.Now().Before(c.deadline) {
		c.reply(codes.DeadlineExceeded, "the request's deadline leaves no time to call a backend", b)
		return
	}
	c.fields = make([]hpack.HeaderField, 0, len(c.fs.Header)+4)
	for _, f := range c.fs.Header {
		if !hopHeaders[f.Name] && (s.otel == nil || !traceHeaders[f.Name]) {
			if f.Name == "x-request-id" {
				f.Sensitive = true // unique per request: kept out of HPACK tables
			}
			c.fields = append(c.fields, f)
		}
	}
	c.fields = append(c.fields, h2.Field("content-type", "application/grpc"), h2.Field("te", "trailers"))
	c.shadow = rt.Shadow != nil && rand.Float64() < rt.Shadow.Fraction

	c.mu.Lock()
	c.timer = time.AfterFunc(time.Until(c.deadline), c.expire)
	c.mu.Unlock()
	c.fs.OnCancel(c.cancel)
	// The wait ends before the deadline, so that the client hears
	// UNAVAILABLE (retry elsewhere), not DEADLINE_EXCEEDED.
	c.waitEnd = time.Now().Add(cfg.NoBackendWait.Duration)
	if d := c.deadline.Add(-noBackendPoll); d.Before(c.waitEnd) {
		c.waitEnd = d
	}
	c.st.budget.Request()
	c.attempt(b)
}

// pollBackend tries again after noBackendPoll, unless the call ended.
func (c *fastCall) pollBackend() {
	time.AfterFunc(noBackendPoll, func() {
		c.mu.Lock()
		finished := c.finished
		c.mu.Unlock()
		if !finished {
			c.attempt(nil)
		}
	})
}

// noBackendPoll is how often a call that found no backend looks again.
const noBackendPoll = 20 * time.Millisecond

// attempt sends the request to the next backend.
func (c *fastCall) attempt(b *h2.Batch) {
	s := c.s
	ep, report, err := s.begin(c.target, c.anyBackend, c.tried, c.seq.prefer())
	if err != nil {
		c.mu.Lock()
		lastErr := c.lastErr
		c.mu.Unlock()
		if lastErr != nil {
			c.failWith(lastErr, b)
			return
		}
		if errors.Is(err, pool.ErrNoBackend) && time.Now().Add(noBackendPoll).Before(c.waitEnd) {
			// No backend can take it now (restarting, reconnecting):
			// look again shortly, until the wait or the deadline ends.
			c.pollBackend()
			return
		}
		c.failWith(status.Error(codes.Unavailable, err.Error()), b)
		return
	}
	c.tried = append(c.tried, ep)
	c.attempts++
	a := &fastAttempt{c: c, ep: ep, report: report}
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		a.done(status.Error(codes.Canceled, "call ended"))
		return
	}
	c.cur = a
	c.mu.Unlock()
	up := ep.Data()
	if up == nil && time.Now().Add(noBackendPoll).Before(c.waitEnd) {
		// Its connection went down since the pick: nothing was sent,
		// so this is no attempt; look again shortly.
		a.done(status.Error(codes.Canceled, "no connection yet"))
		c.attempts--
		c.tried = c.tried[:len(c.tried)-1]
		c.pollBackend()
		return
	}
	if up == nil {
		a.Reset(&h2.ResetError{Code: codes.Unavailable, Msg: fmt.Sprintf("backend %s: no connection yet", ep.Addr), Unprocessed: true}, b)
		return
	}
	scheme := "http"
	if c.target.Pool.Config().TLS != nil {
		scheme = "https"
	}
	fields := make([]hpack.HeaderField, 0, len(c.fields)+5)
	fields = append(fields, h2.Field(":method", "POST"), h2.Field(":scheme", scheme), h2.Field(":path", modelInferMethod),
		// The backend's deadline is a safety net a little after the
		// gateway's own, which cancels the call and answers the client.
		h2.Field(":authority", ep.Addr), hpack.HeaderField{Name: "grpc-timeout", Value: h2.FormatTimeout(time.Until(c.deadline) + backendSlack), Sensitive: true})
	fields = append(fields, c.fields...)
	cs, err := up.Open(fields, a, b)
	if err != nil {
		a.Reset(&h2.ResetError{Code: codes.Unavailable, Msg: fmt.Sprintf("backend %s: %v", ep.Addr, err), Unprocessed: true}, b)
		return
	}
	c.mu.Lock()
	if c.finished || c.cur != a {
		// The deadline or the client's cancel came meanwhile: the body
		// is not sent for nothing.
		c.mu.Unlock()
		cs.Cancel(b)
		return
	}
	a.cs = cs
	c.mu.Unlock()
	if len(c.extra) > 0 {
		cs.SendParts([][]byte{c.prefix[:], c.msg, c.extra}, true, b)
	} else {
		cs.SendParts([][]byte{c.prefix[:], c.msg}, true, b)
	}
}

// current reports whether a is the live attempt of a live call.
func (a *fastAttempt) current() bool {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.finished && c.cur == a
}

// done reports the attempt's outcome to the breaker and the outlier
// detector, once.
func (a *fastAttempt) done(err error) {
	a.c.mu.Lock()
	reported := a.reported
	a.reported = true
	a.c.mu.Unlock()
	if !reported {
		a.report(err)
	}
}

func (a *fastAttempt) Headers(fields []hpack.HeaderField, b *h2.Batch) {
	if !a.current() {
		return
	}
	for _, f := range fields {
		if !f.IsPseudo() && f.Name != "content-type" {
			a.header = append(a.header, f)
		}
	}
}

func (a *fastAttempt) Data(p []byte, b *h2.Batch) {
	c := a.c
	if !a.current() {
		return
	}
	if !a.committed {
		a.committed = true
		h := make([]hpack.HeaderField, 0, 2+len(a.header))
		h = append(h, h2.Field(":status", "200"), h2.Field("content-type", "application/grpc"))
		c.fs.WriteHeaders(append(h, a.header...), b)
	}
	c.fs.WriteData(p, b)
	if c.shadow {
		a.data = append(a.data, p...)
	}
}

func (a *fastAttempt) Trailers(fields []hpack.HeaderField, b *h2.Batch) {
	c := a.c
	if !a.current() {
		return
	}
	code, msg := h2.Status(fields)
	var err error
	if code != codes.OK {
		err = status.Error(code, msg)
	}
	a.done(c.classify(err))
	if err != nil && !a.committed && retriable(err) && c.retry(err, b) {
		return
	}
	if !c.end() {
		return
	}
	switch {
	case fields == nil:
		c.fs.Fail(code, msg, b)
	case a.committed:
		c.fs.Finish(trailersOnly(fields), b)
	default:
		// Trailers-only answer (an error, or OK without a message): as is.
		c.fs.Finish(fields, b)
	}
	c.account(code, msg, a)
}

// backendSlack is how much later than the gateway's deadline the backend's
// runs out.
const backendSlack = 20 * time.Millisecond

// classify marks a deadline the backend let pass although it had the
// route's whole timeout as the backend's failure (see pool.Excluded).
func (c *fastCall) classify(err error) error {
	if c.routeBound && status.Code(err) == codes.DeadlineExceeded {
		return pool.BackendTimeout(err)
	}
	return err
}

// trailersOnly drops pseudo-headers from trailers.
func trailersOnly(fields []hpack.HeaderField) []hpack.HeaderField {
	for _, f := range fields {
		if f.IsPseudo() || f.Name == "content-type" {
			out := make([]hpack.HeaderField, 0, len(fields))
			for _, f := range fields {
				if !f.IsPseudo() && f.Name != "content-type" {
					out = append(out, f)
				}
			}
			return out
		}
	}
	return fields
}

func (a *fastAttempt) Reset(rerr *h2.ResetError, b *h2.Batch) {
	c := a.c
	if !a.current() {
		return
	}
	if rerr.Code == codes.Canceled && time.Until(c.deadline) < backendSlack {
		// The backend gave up at its deadline (grpc servers reset the
		// stream with CANCEL): to the client that is DEADLINE_EXCEEDED.
		rerr = &h2.ResetError{Code: codes.DeadlineExceeded, Msg: fmt.Sprintf("backend %s did not answer within the deadline", a.ep.Addr)}
	}
	err := status.Error(rerr.Code, rerr.Msg)
	a.done(c.classify(err))
	if !a.committed && (rerr.Unprocessed || retriable(err)) && c.retry(err, b) {
		return
	}
	if !c.end() {
		return
	}
	c.fs.Fail(rerr.Code, rerr.Msg, b)
	c.account(rerr.Code, rerr.Msg, a)
}

// retry starts another attempt when it is allowed: attempts left, the
// budget agrees and the deadline leaves room for the backoff. It reports
// whether it did.
func (c *fastCall) retry(err error, b *h2.Batch) bool {
	s := c.s
	cfg := c.st.cfg.Defaults.Retry
	c.mu.Lock()
	finished := c.finished
	c.lastErr = err
	c.mu.Unlock()
	if finished {
		return true // the deadline or a cancel answered already
	}
	if c.attempts >= cfg.MaxAttempts || !c.seq.retriable() {
		return false
	}
	if !c.st.budget.Retry() {
		s.m.budgetOut.WithLabelValues(c.rt.Model).Inc()
		return false
	}
	wait := pool.Backoff(c.attempts, cfg.BackoffBase.Duration, cfg.BackoffMax.Duration)
	if time.Until(c.deadline) <= wait {
		return false
	}
	s.m.retries.WithLabelValues(c.rt.Model, c.target.Pool.Name(), status.Code(err).String()).Inc()
	if wait <= 0 {
		c.attempt(b)
		return true
	}
	time.AfterFunc(wait, func() {
		c.mu.Lock()
		finished := c.finished
		c.mu.Unlock()
		if !finished {
			c.attempt(nil)
		}
	})
	return true
}

// end marks the call finished; false if it already was (deadline, cancel).
func (c *fastCall) end() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return false
	}
	c.finished = true
	if c.timer != nil {
		c.timer.Stop()
	}
	return true
}

// expire answers DEADLINE_EXCEEDED when the deadline passes first.
func (c *fastCall) expire() {
	if !c.end() {
		return
	}
	c.mu.Lock()
	a, lastErr := c.cur, c.lastErr
	var cs *h2.ClientStream
	answering := false
	if a != nil {
		cs, answering = a.cs, !a.reported
	}
	c.mu.Unlock()
	msg := "no backend answered within the deadline"
	switch {
	case answering:
		msg = fmt.Sprintf("backend %s did not answer within the deadline", a.ep.Addr)
		if cs != nil {
			cs.Cancel(nil)
		}
		err := status.Error(codes.DeadlineExceeded, msg)
		if c.routeBound {
			// The backend had the route's whole timeout: its fault.
			err = pool.BackendTimeout(err)
		}
		a.done(err)
	case lastErr != nil:
		msg = "deadline exceeded waiting to retry after: " + status.Convert(lastErr).Message()
	}
	c.fs.Fail(codes.DeadlineExceeded, msg, nil)
	c.account(codes.DeadlineExceeded, msg, nil)
}

// cancel: the client reset the stream or went away.
func (c *fastCall) cancel(b *h2.Batch) {
	if !c.end() {
		return
	}
	c.mu.Lock()
	a := c.cur
	var cs *h2.ClientStream
	if a != nil {
		cs = a.cs
	}
	c.mu.Unlock()
	if a != nil {
		if cs != nil {
			cs.Cancel(b)
		}
		a.done(status.Error(codes.Canceled, "client cancelled"))
	}
	c.account(codes.Canceled, "client cancelled", nil)
}

// failWith ends the call with err (no backend could be tried).
func (c *fastCall) failWith(err error, b *h2.Batch) {
	if !c.end() {
		return
	}
	st := status.Convert(err)
	c.fs.Fail(st.Code(), st.Message(), b)
	c.account(st.Code(), st.Message(), nil)
}

// reply ends a call refused before any backend was tried.
func (c *fastCall) reply(code codes.Code, msg string, b *h2.Batch) {
	c.end()
	c.fs.Fail(code, msg, b)
	c.account(code, msg, nil)
}

// account records the call's outcome (metrics, logs, shadow) and releases
// its state.
func (c *fastCall) account(code codes.Code, msg string, a *fastAttempt) {
	s := c.s
	defer s.m.inFlight.Dec()
	defer c.st.release()
	if c.rt == nil {
		return
	}
	if c.seq != nil {
		var ep *pool.Endpoint
		if a != nil {
			ep = a.ep
		}
		s.seqServed(c.seq, c.target, ep, code == codes.OK && ep != nil)
	}
	pool := c.target.Pool.Name()
	s.m.requests.WithLabelValues(c.rt.Model, c.version, pool, code.String()).Inc()
	s.m.duration.WithLabelValues(c.rt.Model, pool).Observe(time.Since(c.start).Seconds())
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		id := c.requestID
		if id == "" {
			id = newRequestID()
		}
		s.log.Debug("inference", "request_id", id, "model", c.rt.Model, "version", c.target.Version,
			"pool", pool, "code", code.String(), "error", msg, "attempts", c.attempts, "duration", time.Since(c.start))
	}
	if code == codes.OK && c.shadow && a != nil && len(a.data) >= 5 {
		md := metadata.MD{}
		for _, f := range c.fs.Header {
			md.Append(f.Name, f.Value)
		}
		ctx := metadata.NewIncomingContext(context.Background(), md)
		s.shadow(ctx, c.st, c.rt, &rawMsg{b: c.msg}, &rawMsg{b: a.data[5:]}, c.requestID)
	}
}
