package loadtest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// caller sends unary ModelInfer calls. done runs exactly once per call.
// lane >= 0 pins the call to a connection (a closed-loop client keeps its
// own); fromCallback marks a call made from the completion of an earlier call
// in the same lane, whose write the transport may batch.
type caller interface {
	call(req *Request, deadline time.Time, keep bool, lane int, fromCallback bool, done func(code codes.Code, resp []byte))
	// abort fails every call in flight (the run was cancelled).
	abort()
	close()
}

// h2Caller spreads calls over lean HTTP/2 connections, redialling one that
// the server closed (GOAWAY) or that failed.
type h2Caller struct {
	ctx     context.Context
	target  Target
	timeout time.Duration
	mu      sync.Mutex
	conns   []*h2conn
	next    atomic.Uint64
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	// lanes remembers each lane's connection: a callback's call on the same
	// connection is flushed by that connection's reader.
	lanes sync.Map // int → *h2conn
}

func newH2Caller(ctx context.Context, t Target, timeout time.Duration) (*h2Caller, error) {
	c := &h2Caller{ctx: ctx, target: t, timeout: timeout, stop: make(chan struct{})}
	for range t.Connections {
		conn, err := dialH2(ctx, t, modelInferMethod, timeout)
		if err != nil {
			c.close()
			return nil, err
		}
		c.conns = append(c.conns, conn)
	}
	if timeout > 0 {
		c.wg.Add(1)
		go c.expireLoop()
	}
	return c, nil
}

// expireLoop fails calls past their deadline, every few milliseconds.
func (c *h2Caller) expireLoop() {
	defer c.wg.Done()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.mu.Lock()
			conns := append([]*h2conn(nil), c.conns...)
			c.mu.Unlock()
			for _, conn := range conns {
				conn.expire(now)
			}
		}
	}
}

// conn picks a connection (the lane's, or the next one), replacing a dead one.
func (c *h2Caller) conn(lane int) *h2conn {
	i := lane
	if i < 0 {
		i = int(c.next.Add(1) % uint64(len(c.conns)))
	} else {
		i %= len(c.conns)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	conn := c.conns[i]
	if !conn.alive() {
		if fresh, err := dialH2(c.ctx, c.target, modelInferMethod, c.timeout); err == nil {
			go conn.close()
			c.conns[i] = fresh
			conn = fresh
		}
	}
	return conn
}

func (c *h2Caller) call(req *Request, deadline time.Time, keep bool, lane int, fromCallback bool, done func(codes.Code, []byte)) {
	call := &h2call{body: req.framed, deadline: deadline, keep: keep}
	call.done = func(call *h2call) {
		resp := call.resp
		if len(resp) >= 5 {
			resp = resp[5:] // the gRPC message prefix
		}
		done(call.code, resp)
	}
	conn := c.conn(lane)
	flush := true
	if lane >= 0 {
		// A callback runs on the reader of the connection its call used;
		// if the next call goes there too, the reader flushes it.
		prev, _ := c.lanes.Swap(lane, conn)
		flush = !fromCallback || prev != conn
	}
	conn.send(call, flush)
}

func (c *h2Caller) abort() {
	c.mu.Lock()
	conns := append([]*h2conn(nil), c.conns...)
	c.mu.Unlock()
	for _, conn := range conns {
		conn.fail(context.Canceled)
	}
}

func (c *h2Caller) close() {
	c.once.Do(func() {
		close(c.stop)
		c.wg.Wait()
		c.mu.Lock()
		conns := c.conns
		c.conns = nil
		c.mu.Unlock()
		for _, conn := range conns {
			conn.close()
		}
	})
}

// grpcCaller uses grpc-go, one goroutine per call.
type grpcCaller struct {
	conns []*grpc.ClientConn
	ctx   context.Context
	next  atomic.Uint64
	wg    sync.WaitGroup
}

func newGRPCCaller(ctx context.Context, t Target) (*grpcCaller, error) {
	c := &grpcCaller{ctx: ctx}
	if len(t.Headers) > 0 {
		c.ctx = metadata.NewOutgoingContext(ctx, metadata.New(t.Headers))
	}
	for range t.Connections {
		conn, err := Dial(t)
		if err != nil {
			c.close()
			return nil, err
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

func (c *grpcCaller) call(req *Request, deadline time.Time, keep bool, lane int, _ bool, done func(codes.Code, []byte)) {
	i := uint64(lane)
	if lane < 0 {
		i = c.next.Add(1)
	}
	conn := c.conns[i%uint64(len(c.conns))]
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx := c.ctx
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		out := &sink{keep: keep}
		err := conn.Invoke(ctx, modelInferMethod, &req.body, out, grpc.ForceCodecV2(rawCodec{}))
		done(status.Code(err), out.b)
	}()
}

// abort: calls end on their own when the run's context is cancelled.
func (c *grpcCaller) abort() {}

func (c *grpcCaller) close() {
	c.wg.Wait()
	for _, conn := range c.conns {
		conn.Close()
	}
}
