package server

import (
	"context"
	"fmt"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/gateway/route"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// shadow sends a copy of a request to the route's shadow target in the
// background and compares the answer with the primary's. It never blocks or
// fails the primary: without a free slot, or for a request over the size cap,
// the copy is dropped (and counted).
func (s *Server) shadow(ctx context.Context, st *state, rt *route.Route, in, primary *rawMsg, requestID string) {
	sh := rt.Shadow
	if in.size() > sh.MaxBytes {
		s.m.shadow.WithLabelValues(rt.Model, "skipped_size").Inc()
		return
	}
	s.shadowMu.Lock()
	if s.shadowsClosed || !sh.TryAcquire() {
		s.shadowMu.Unlock()
		s.m.shadow.WithLabelValues(rt.Model, "dropped").Inc()
		return
	}
	s.shadows.Add(1)
	s.shadowMu.Unlock()
	extra := appendString(nil, reqModelName, sh.Target.Model)
	extra = appendString(extra, reqModelVersion, sh.Target.Version)
	copyReq := &rawMsg{b: in.b, extra: extra}
	// Detached from the client's request (which has finished), but in its trace.
	// It ends with the server.
	sctx, cancel := context.WithTimeout(s.outgoing(context.WithoutCancel(ctx), requestID), rt.Timeout)
	stop := context.AfterFunc(s.base, cancel)
	st.users.Add(1) // the caller holds st: it cannot be retired meanwhile
	go func() {
		defer s.shadows.Done()
		defer st.release()
		defer sh.Release()
		defer stop()
		defer cancel()
		result := s.runShadow(sctx, rt, copyReq, primary)
		s.m.shadow.WithLabelValues(rt.Model, result).Inc()
	}()
}

func (s *Server) runShadow(ctx context.Context, rt *route.Route, req, primary *rawMsg) string {
	sh := rt.Shadow
	ep, err := sh.Target.Pool.Pick(sh.Target.Model, sh.Target.Version, nil)
	if err != nil {
		return "error"
	}
	done, err := ep.Begin()
	if err != nil {
		return "error"
	}
	resp := &rawMsg{}
	err = ep.Conn.Invoke(ctx, modelInferMethod, req, resp, grpc.ForceCodecV2(s.codec))
	done(err)
	if err != nil {
		s.log.Debug("shadow request failed", "model", rt.Model, "endpoint", ep.Addr, "error", err)
		return "error"
	}
	abs, rel, same, err := compareResponses(primary.b, resp.b, sh.Abs, sh.Rel)
	if err != nil {
		s.log.Debug("shadow comparison failed", "model", rt.Model, "error", err)
		return "error"
	}
	s.m.shadowAbs.WithLabelValues(rt.Model).Observe(abs)
	s.m.shadowRel.WithLabelValues(rt.Model).Observe(rel)
	if !same {
		return "mismatch"
	}
	return "match"
}

// compareResponses compares two ModelInferResponses output by output: the
// largest absolute and relative differences over every numeric output, and
// whether they match (same outputs, datatypes and shapes; strings equal;
// every number within abs + rel*|primary|).
func compareResponses(a, b []byte, absTol, relTol float64) (maxAbs, maxRel float64, same bool, err error) {
	decode := func(buf []byte) (map[string]tensor.Tensor, error) {
		var r inference.ModelInferResponse
		if err := proto.Unmarshal(buf, &r); err != nil {
			return nil, err
		}
		outs, err := tensor.ResponseOutputs(&r)
		if err != nil {
			return nil, err
		}
		m := make(map[string]tensor.Tensor, len(outs))
		for _, o := range outs {
			m[o.Name] = o
		}
		return m, nil
	}
	pa, err := decode(a)
	if err != nil {
		return 0, 0, false, fmt.Errorf("primary response: %w", err)
	}
	pb, err := decode(b)
	if err != nil {
		return 0, 0, false, fmt.Errorf("shadow response: %w", err)
	}
	same = len(pa) == len(pb)
	for name, x := range pa {
		y, ok := pb[name]
		if !ok || x.DataType != y.DataType || tensor.FormatShape(x.Shape) != tensor.FormatShape(y.Shape) {
			same = false
			continue
		}
		if !x.DataType.Fixed() {
			if string(x.Data) != string(y.Data) {
				same = false
			}
			continue
		}
		xv, err1 := tensor.Float64s(x)
		yv, err2 := tensor.Float64s(y)
		if err1 != nil || err2 != nil || len(xv) != len(yv) {
			same = false
			continue
		}
		for i := range xv {
			d := math.Abs(xv[i] - yv[i])
			if math.IsNaN(xv[i]) != math.IsNaN(yv[i]) {
				d = math.Inf(1)
			} else if math.IsNaN(d) {
				d = 0
			}
			maxAbs = math.Max(maxAbs, d)
			if den := math.Abs(xv[i]); den > 0 {
				maxRel = math.Max(maxRel, d/den)
			} else if d > 0 {
				maxRel = math.Inf(1)
			}
			if d > absTol+relTol*math.Abs(xv[i]) {
				same = false
			}
		}
	}
	return maxAbs, maxRel, same, nil
}
