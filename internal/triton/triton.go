// Package triton controls a Triton server in explicit model-control mode:
// what is loaded (RepositoryIndex), load and unload, per-version readiness,
// metadata and warm-up inferences, each call with its own timeout.
package triton

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/loadtest"
	"github.com/tritongate/tritongate/proto/inference"
)

// Timeouts per operation.
type Timeouts struct {
	// Call bounds quick calls: index, readiness, metadata (default 10s).
	Call time.Duration
	// Load bounds a RepositoryModelLoad or Unload: large models take long
	// (default 10m).
	Load time.Duration
	// Infer bounds one warm-up inference (default 60s).
	Infer time.Duration
}

// Client talks to one Triton server.
type Client struct {
	conn *grpc.ClientConn
	c    inference.GRPCInferenceServiceClient
	t    Timeouts
}

// Dial connects to Triton's gRPC endpoint (host:port). The connection is
// lazy: a Triton that is still starting is waited for by WaitLive.
func Dial(addr string, t Timeouts) (*Client, error) {
	if t.Call == 0 {
		t.Call = 10 * time.Second
	}
	if t.Load == 0 {
		t.Load = 10 * time.Minute
	}
	if t.Infer == 0 {
		t.Infer = time.Minute
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, c: inference.NewGRPCInferenceServiceClient(conn), t: t}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Service is the underlying client (tests, warm-up).
func (c *Client) Service() inference.GRPCInferenceServiceClient { return c.c }

func (c *Client) ctx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// WaitLive waits until Triton answers ServerLive (it may still be starting).
func (c *Client) WaitLive(ctx context.Context) error {
	for {
		cctx, cancel := c.ctx(ctx, c.t.Call)
		r, err := c.c.ServerLive(cctx, &inference.ServerLiveRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && r.GetLive() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Triton is not live: %w", errors.Join(ctx.Err(), err))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// VersionState is one model version as Triton reports it.
type VersionState struct {
	Model   string
	Version int64
	State   string // READY, UNAVAILABLE, LOADING, UNLOADING
	Reason  string
}

// Index lists every model version Triton knows in its repository.
func (c *Client) Index(ctx context.Context) ([]VersionState, error) {
	cctx, cancel := c.ctx(ctx, c.t.Call)
	defer cancel()
	r, err := c.c.RepositoryIndex(cctx, &inference.RepositoryIndexRequest{})
	if err != nil {
		return nil, fmt.Errorf("RepositoryIndex: %w", err)
	}
	var out []VersionState
	for _, m := range r.GetModels() {
		v, _ := strconv.ParseInt(m.GetVersion(), 10, 64)
		out = append(out, VersionState{Model: m.GetName(), Version: v, State: m.GetState(), Reason: m.GetReason()})
	}
	return out, nil
}

// Load asks Triton to (re)load a model from the repository with its current
// config.pbtxt: versions the config adds are loaded while the others keep
// serving; versions it drops are unloaded.
func (c *Client) Load(ctx context.Context, model string) error {
	cctx, cancel := c.ctx(ctx, c.t.Load)
	defer cancel()
	if _, err := c.c.RepositoryModelLoad(cctx, &inference.RepositoryModelLoadRequest{ModelName: model}); err != nil {
		return fmt.Errorf("loading model %s: %s", model, status.Convert(err).Message())
	}
	return nil
}

// Unload asks Triton to unload a model (every version).
func (c *Client) Unload(ctx context.Context, model string) error {
	cctx, cancel := c.ctx(ctx, c.t.Load)
	defer cancel()
	_, err := c.c.RepositoryModelUnload(cctx, &inference.RepositoryModelUnloadRequest{ModelName: model})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("unloading model %s: %s", model, status.Convert(err).Message())
	}
	return nil
}

// Ready reports whether a version is ready for inference.
func (c *Client) Ready(ctx context.Context, model string, version int64) (bool, error) {
	cctx, cancel := c.ctx(ctx, c.t.Call)
	defer cancel()
	r, err := c.c.ModelReady(cctx, &inference.ModelReadyRequest{Name: model, Version: strconv.FormatInt(version, 10)})
	if err != nil {
		if status.Code(err) == codes.NotFound || status.Code(err) == codes.Unavailable && cctx.Err() == nil {
			return false, nil
		}
		return false, err
	}
	return r.GetReady(), nil
}

// WaitReady polls, after a load, until the version is ready. It fails when
// Triton reports the version unavailable (a failed load, or not loaded at
// all: "unloaded"), when the version stays out of the index, or after the
// load timeout.
func (c *Client) WaitReady(ctx context.Context, model string, version int64) error {
	ctx, cancel := context.WithTimeout(ctx, c.t.Load)
	defer cancel()
	for polls := 1; ; polls++ {
		ok, err := c.Ready(ctx, model, version)
		if err == nil && ok {
			return nil
		}
		idx, ierr := c.Index(ctx)
		if ierr == nil {
			found := false
			for _, s := range idx {
				if s.Model != model || s.Version != version {
					continue
				}
				found = true
				if s.State == "UNAVAILABLE" {
					reason := s.Reason
					if reason == "" || reason == "unloaded" {
						reason = "Triton did not load it (unloaded)"
					}
					return fmt.Errorf("model %s version %d failed to load: %s", model, version, reason)
				}
			}
			if !found && polls >= 20 {
				return fmt.Errorf("model %s version %d: not in Triton's repository index after the load", model, version)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("model %s version %d not ready: %w", model, version, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WarmUp sends n inferences with generated inputs to one version.
func (c *Client) WarmUp(ctx context.Context, model string, version int64, n int) error {
	if n <= 0 {
		return nil
	}
	cctx, cancel := c.ctx(ctx, c.t.Call)
	reqs, err := loadtest.BuildRequests(cctx, c.c, model, loadtest.InputSpec{Version: strconv.FormatInt(version, 10), Variants: min(n, 4)})
	cancel()
	if err != nil {
		return fmt.Errorf("warm-up of %s version %d: %w", model, version, err)
	}
	for i := range n {
		var req inference.ModelInferRequest
		if err := proto.Unmarshal(reqs[i%len(reqs)].Bytes(), &req); err != nil {
			return err
		}
		cctx, cancel := c.ctx(ctx, c.t.Infer)
		_, err := c.c.ModelInfer(cctx, &req)
		cancel()
		if err != nil {
			return fmt.Errorf("warm-up inference %d of %s version %d: %s", i+1, model, version, status.Convert(err).Message())
		}
	}
	return nil
}
