package server

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/gateway/pool"
	"github.com/tritongate/tritongate/internal/gateway/route"
	"github.com/tritongate/tritongate/proto/inference"
)

const modelInferMethod = "/inference.GRPCInferenceService/ModelInfer"

// hopHeaders are not forwarded to backends: transport-level, or set by the
// gateway (the deadline). Trace headers are too when the gateway traces (it
// sends its own span's).
var hopHeaders = map[string]bool{
	"content-type": true, "user-agent": true, "te": true, "grpc-timeout": true, "grpc-encoding": true,
	"grpc-accept-encoding": true, ":authority": true, "connection": true, "keep-alive": true,
	"proxy-connection": true, "transfer-encoding": true, "upgrade": true,
}

var traceHeaders = map[string]bool{"traceparent": true, "tracestate": true, "baggage": true}

// outgoing carries the client's metadata to the backend (with the request id).
func (s *Server) outgoing(ctx context.Context, requestID string) context.Context {
	in, _ := metadata.FromIncomingContext(ctx)
	out := make(metadata.MD, len(in)+1)
	for k, v := range in {
		if !hopHeaders[k] && !strings.HasPrefix(k, ":") && (s.otel == nil || !traceHeaders[k]) {
			out[k] = v
		}
	}
	if requestID != "" {
		out["x-request-id"] = []string{requestID}
	}
	return metadata.NewOutgoingContext(ctx, out)
}

func header(md metadata.MD) func(string) string {
	return func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

// newRequestID makes a process-unique id: a random prefix chosen at start
// and a counter (no syscall or lock per request).
func newRequestID() string {
	return requestIDPrefix + strconv.FormatUint(requestIDCounter.Add(1), 36)
}

var (
	requestIDPrefix  = randomPrefix()
	requestIDCounter atomic.Uint64
)

func randomPrefix() string {
	var b [6]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}

// retriable reports whether a failed attempt may be retried elsewhere: the
// backend refused it before working on it (UNAVAILABLE, RESOURCE_EXHAUSTED).
func retriable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted:
		return !pool.TooLarge(err)
	}
	return false
}

// modelInfer is the unary inference handler.
func (s *Server) modelInfer(ctx context.Context, in *rawMsg) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	req, err := scanRequest(in.b)
	return s.infer(ctx, in, req, err, md)
}

// infer routes one request (req and scanErr: what scanRequest read of in)
// and returns the backend's response bytes.
func (s *Server) infer(ctx context.Context, in *rawMsg, req *inferRequest, scanErr error, md metadata.MD) (*rawMsg, error) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	s.m.inFlight.Inc()
	defer s.m.inFlight.Dec()
	start := time.Now()
	st := s.acquire()
	defer st.release()

	if scanErr != nil {
		s.m.invalid.WithLabelValues("malformed").Inc()
		return nil, status.Error(codes.InvalidArgument, scanErr.Error())
	}
	rt, ok := st.table.Lookup(req.model)
	if !ok {
		s.m.invalid.WithLabelValues("unknown_model").Inc()
		return nil, unknownModel(req.model)
	}
	requestID := header(md)("x-request-id")
	if requestID == "" {
		requestID = newRequestID()
	}
	target, how := rt.Choose(req.version, header(md))
	seq := s.sequenceOf(req, &target)
	versionLabel := target.Version
	if versionLabel == "" {
		versionLabel = "latest"
	}
	s.m.choices.WithLabelValues(rt.Model, versionLabel, how).Inc()
	fwd := &rawMsg{b: in.b}
	if target.Version != req.version {
		fwd.extra = appendString(nil, reqModelVersion, target.Version)
	}

	resp, err := s.call(ctx, st, rt, target, answersAny(how), fwd, requestID, seq)
	code := status.Code(err)
	s.m.requests.WithLabelValues(rt.Model, versionLabel, target.Pool.Name(), code.String()).Inc()
	s.m.duration.WithLabelValues(rt.Model, target.Pool.Name()).Observe(time.Since(start).Seconds())
	if err != nil {
		s.log.Debug("inference failed", "request_id", requestID, "model", rt.Model, "version", target.Version, "pool", target.Pool.Name(), "code", code.String(), "error", status.Convert(err).Message())
		return nil, err
	}
	s.log.Debug("inference", "request_id", requestID, "model", rt.Model, "version", target.Version, "pool", target.Pool.Name(), "how", how, "duration", time.Since(start))
	if sh := rt.Shadow; sh != nil && rand.Float64() < sh.Fraction {
		s.shadow(ctx, st, rt, in, resp, requestID)
	}
	return resp, nil
}

// call sends a request to the target's pool, retrying on another backend
// when it is safe and the budget allows, within the client's deadline (less
// a margin) or the route's timeout. anyBackend: see begin.
func (s *Server) call(ctx context.Context, st *state, rt *route.Route, target route.Target, anyBackend bool, fwd *rawMsg, requestID string, seq *seqCall) (*rawMsg, error) {
	cfg := st.cfg.Defaults
	deadline := time.Now().Add(rt.Timeout)
	routeBound := true
	if d, ok := ctx.Deadline(); ok {
		d = d.Add(-cfg.DeadlineMargin.Duration)
		if d.Before(deadline) {
			deadline, routeBound = d, false
		}
	}
	if !time.Now().Before(deadline) {
		return nil, status.Error(codes.DeadlineExceeded, "the request's deadline leaves no time to call a backend")
	}
	callCtx, cancel := context.WithDeadline(s.outgoing(ctx, requestID), deadline)
	defer cancel()
	st.budget.Request()
	var tried []*pool.Endpoint
	var lastErr error
	waitEnd := time.Now().Add(cfg.NoBackendWait.Duration)
	if d := deadline.Add(-5 * time.Millisecond); d.Before(waitEnd) {
		waitEnd = d // UNAVAILABLE before the deadline, not DEADLINE_EXCEEDED
	}
	for attempt := 1; ; attempt++ {
		changed := target.Pool.Changed()
		ep, done, err := s.begin(target, anyBackend, tried, seq.prefer())
		if err != nil {
			if lastErr != nil {
				return nil, lastErr
			}
			if errors.Is(err, pool.ErrNoBackend) && time.Now().Before(waitEnd) {
				// A backend restarting or reconnecting: wait for one
				// (bounded, within the deadline) instead of failing now.
				t := time.NewTimer(time.Until(waitEnd))
				select {
				case <-changed:
				case <-t.C:
				case <-callCtx.Done():
				}
				t.Stop()
				if callCtx.Err() == nil {
					attempt--
					continue
				}
			}
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		tried = append(tried, ep)
		resp := &rawMsg{}
		err = ep.Conn.Invoke(callCtx, modelInferMethod, fwd, resp, grpc.ForceCodecV2(s.codec))
		if routeBound && ctx.Err() == nil && status.Code(err) == codes.DeadlineExceeded {
			done(pool.BackendTimeout(err)) // it had the route's whole timeout
		} else {
			done(err)
		}
		s.seqServed(seq, target, ep, err == nil)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if callCtx.Err() != nil && ctx.Err() == nil && status.Code(err) == codes.DeadlineExceeded {
			return nil, status.Errorf(codes.DeadlineExceeded, "backend %s did not answer within the deadline", ep.Addr)
		}
		if !retriable(err) || attempt >= cfg.Retry.MaxAttempts || !seq.retriable() {
			return nil, err
		}
		if !st.budget.Retry() {
			s.m.budgetOut.WithLabelValues(rt.Model).Inc()
			return nil, err
		}
		s.m.retries.WithLabelValues(rt.Model, target.Pool.Name(), status.Code(err).String()).Inc()
		wait := pool.Backoff(attempt, cfg.Retry.BackoffBase.Duration, cfg.Retry.BackoffMax.Duration)
		if dl, _ := callCtx.Deadline(); time.Until(dl) <= wait {
			return nil, err
		}
		select {
		case <-time.After(wait):
		case <-callCtx.Done():
			return nil, err
		}
	}
}

// answersAny reports whether a request whose target no backend has READY
// goes to a backend anyway (see begin): when the client chose the version,
// or none, so that it gets what Triton itself answers. A version the
// gateway chose (split, sticky) or a pin, which Triton knows nothing of,
// gets the gateway's UNAVAILABLE.
func answersAny(how string) bool { return how == route.ByRequest || how == route.ByDefault }

// begin picks a backend and gets its breaker's permission; a backend whose
// breaker refuses (half-open and busy probing) is skipped. Backends already
// tried are avoided while another one can take the request; else the same
// one is tried again (after the caller's backoff). With anyBackend, when no
// backend of the pool has the model version READY, one that passed its
// health check takes the request: the client gets Triton's own answer for
// an unknown version, a version not ready, a model with no ready version or
// a malformed version string, not the gateway's.
func (s *Server) begin(target route.Target, anyBackend bool, tried []*pool.Endpoint, prefer *pool.Endpoint) (*pool.Endpoint, func(error), error) {
	if prefer != nil && target.Pool.Holds(prefer, target.Model, target.Version) {
		if done, err := prefer.Begin(); err == nil {
			return prefer, done, nil
		}
	}
	var refused []*pool.Endpoint
	avoid := tried
	for range 8 {
		ep, err := target.Pool.Pick(target.Model, target.Version, slices.Concat(avoid, refused))
		if err != nil && len(avoid) > 0 {
			avoid = nil
			continue
		}
		if err != nil && anyBackend && len(refused) == 0 && !target.Pool.Ready(target.Model, target.Version) {
			if e := target.Pool.Healthy(); e != nil {
				ep, err = e, nil
			}
		}
		if err != nil {
			if len(refused) > 0 {
				return nil, nil, fmt.Errorf("every backend for model %s is refused by its circuit breaker", target.Model)
			}
			return nil, nil, err
		}
		done, err := ep.Begin()
		if err == nil {
			return ep, done, nil
		}
		if !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests) {
			return nil, nil, err
		}
		refused = append(refused, ep)
	}
	return nil, nil, fmt.Errorf("every backend for model %s is refused by its circuit breaker", target.Model)
}

// modelStreamInfer routes every request of a stream on its own and streams
// back the answers as they come (errors as error_message responses, the
// stream stays open), as Triton does.
func (s *Server) modelStreamInfer(_ any, stream grpc.ServerStream) error {
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	var sendMu sync.Mutex
	var sendErr error
	var order streamOrder
	for {
		in := &rawMsg{}
		if err := stream.RecvMsg(in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		sendMu.Lock()
		failed := sendErr
		sendMu.Unlock()
		if failed != nil {
			return failed
		}
		// The requests of one sequence are sent in the order they came,
		// each once the one before it is answered, as Triton's stream
		// handler issues them; other requests run at once.
		req, scanErr := scanRequest(in.b)
		var prev, done chan struct{}
		if req != nil && req.seqID != "" {
			prev, done = order.next(seqKey(req.model, req.seqID))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if done != nil {
				defer order.finish(seqKey(req.model, req.seqID), done)
				if prev != nil {
					select {
					case <-prev:
					case <-ctx.Done():
						return
					}
				}
			}
			var out any
			resp, err := s.infer(ctx, in, req, scanErr, md)
			if err != nil {
				// As Triton answers a request of a stream that it could not
				// issue (unknown model, a request the config refuses): the
				// error and the request's id only.
				r := &inference.ModelStreamInferResponse{ErrorMessage: status.Convert(err).Message(), InferResponse: &inference.ModelInferResponse{}}
				if req != nil {
					r.InferResponse.Id = req.id
				}
				out = r
			} else {
				out = streamOK(resp)
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			if err := stream.SendMsg(out); err != nil && sendErr == nil {
				sendErr = err
			}
		}()
	}
}

// streamOrder chains the requests of each sequence on one stream: a request
// waits for the one before it (prev) and marks its own end (done). Entries
// live while a sequence has requests in flight.
type streamOrder struct {
	mu   sync.Mutex
	last map[string]chan struct{}
}

func (o *streamOrder) next(key string) (prev, done chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.last == nil {
		o.last = map[string]chan struct{}{}
	}
	prev, done = o.last[key], make(chan struct{})
	o.last[key] = done
	return prev, done
}

func (o *streamOrder) finish(key string, done chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(done)
	if o.last[key] == done {
		delete(o.last, key)
	}
}
