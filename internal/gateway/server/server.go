// Package server is the gateway's gRPC front door: Triton's
// GRPCInferenceService in front of pools of Triton backends. Inference
// requests are proxied as bytes (read, validated and routed from the wire,
// never re-encoded), with version splits, pins, sticky splits, shadow
// traffic, load-aware picking, circuit breaking, outlier ejection and
// budgeted retries; metadata RPCs go to a backend of the model's pool.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tritongate/tritongate/internal/gateway/config"
	"github.com/tritongate/tritongate/internal/gateway/h2"
	"github.com/tritongate/tritongate/internal/gateway/pool"
	"github.com/tritongate/tritongate/internal/gateway/route"
	"github.com/tritongate/tritongate/proto/inference"
)

// Options are the server's dependencies.
type Options struct {
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// TracerProvider turns tracing on: a server span per request and a
	// client span per backend call, with W3C trace context propagated to
	// the backend. Nil: no spans, and the client's traceparent, tracestate
	// and baggage headers pass through to the backend unchanged (the trace
	// continues there at no cost here).
	TracerProvider trace.TracerProvider
	// LookupHost resolves DNS pools (tests inject one).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Version is reported by ServerMetadata.
	Version string
}

// streamWorkers is how many goroutines serve requests with warm stacks;
// beyond it grpc-go starts a goroutine per request.
const streamWorkers = 256

// state is one configuration in effect: immutable, swapped whole.
type state struct {
	cfg    *config.Config
	table  *route.Table
	pools  map[string]*pool.Pool
	budget *pool.Budget
	// users counts the requests (and shadow calls) using this state: the
	// pools a reload replaces are closed only once it drops to zero.
	users atomic.Int64
}

// acquire returns the state in effect, counted as used until release.
func (s *Server) acquire() *state {
	for {
		st := s.state.Load()
		st.users.Add(1)
		if s.state.Load() == st {
			return st
		}
		// A reload swapped it meanwhile and may already have seen no users.
		st.users.Add(-1)
	}
}

func (st *state) release() { st.users.Add(-1) }

// Server is the gateway.
type Server struct {
	opts   Options
	log    *slog.Logger
	m      *metrics
	codec  codec
	grpc   *grpc.Server
	health *health.Server
	state  atomic.Pointer[state]
	reload sync.Mutex // one reload at a time
	// retired are the states replaced by reloads, while requests may use them.
	retiredMu sync.Mutex
	retired   []*state
	wg        sync.WaitGroup
	closing   atomic.Bool

	inflight      sync.WaitGroup // requests being handled, for drain
	shadowMu      sync.Mutex     // orders shadows.Add against Close's Wait
	shadowsClosed bool
	shadows       sync.WaitGroup    // shadow calls
	otel          []otelgrpc.Option // nil: tracing off
	// base ends when the server closes: shadow calls, which outlive their
	// requests, stop with it.
	base     context.Context
	stopBase context.CancelFunc

	// front is the data plane clients connect to; calls it does not serve
	// itself are relayed to grpc (the whole service) over inner.
	front     *h2.Server
	inner     *bufconn.Listener
	innerMu   sync.Mutex
	innerConn *h2.ClientConn
	maxMsg    int

	seqs sequences // sequences pinned to a backend (sequence.go)
}

// New builds the gateway for a validated configuration and starts its pools.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	s := &Server{opts: opts, log: opts.Logger, m: newMetrics(opts.Registerer), codec: newCodec(), health: health.NewServer()}
	s.base, s.stopBase = context.WithCancel(context.Background())
	if opts.TracerProvider != nil {
		s.otel = []otelgrpc.Option{otelgrpc.WithTracerProvider(opts.TracerProvider),
			otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))}
	}
	st, err := s.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	s.m.reloads.WithLabelValues("ok").Inc()
	s.m.lastReload.SetToCurrentTime()
	serverOpts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.ForceServerCodecV2(s.codec),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Handlers run on long-lived workers whose stacks have already
		// grown to the depth of a proxied call (a fresh goroutine per
		// request would grow and copy its stack every time).
		grpc.NumStreamWorkers(streamWorkers),
		grpc.InitialWindowSize(1 << 20), grpc.InitialConnWindowSize(4 << 20),
	}
	if s.otel != nil {
		serverOpts = append(serverOpts, grpc.StatsHandler(otelgrpc.NewServerHandler(s.otel...)))
	}
	s.grpc = grpc.NewServer(serverOpts...)
	s.grpc.RegisterService(s.serviceDesc(), s)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.maxMsg = cfg.MaxMessageBytes
	s.inner = bufconn.Listen(1 << 20)
	go s.grpc.Serve(s.inner)
	s.front = h2.NewServer(s, h2.ServerOptions{})
	return s, nil
}

// Serve serves gRPC on lis until Drain or Close.
func (s *Server) Serve(lis net.Listener) error {
	err := s.front.Serve(lis)
	if errors.Is(err, h2.ErrServerClosed) {
		return nil
	}
	return err
}

// internalConn is the connection to the in-process grpc-go server, dialled
// on first use and again if it breaks.
func (s *Server) internalConn() (*h2.ClientConn, error) {
	s.innerMu.Lock()
	defer s.innerMu.Unlock()
	if c := s.innerConn; c != nil && c.Err() == nil {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	c, err := h2.Dial(ctx, "gateway", h2.ClientOptions{Dial: func(ctx context.Context, _ string) (net.Conn, error) { return s.inner.DialContext(ctx) }})
	if err != nil {
		return nil, err
	}
	s.innerConn = c
	return c, nil
}

// build makes the state for cfg, reusing the pools of prev whose
// configuration did not change.
func (s *Server) build(cfg *config.Config, prev *state) (*state, error) {
	st := &state{cfg: cfg, pools: map[string]*pool.Pool{}, budget: pool.NewBudget(cfg.Defaults.Retry.BudgetRatio, cfg.Defaults.Retry.MinPerSecond)}
	if prev != nil && reflect.DeepEqual(prev.cfg.Defaults.Retry, cfg.Defaults.Retry) {
		st.budget = prev.budget
	}
	for _, pc := range cfg.Pools {
		if prev != nil {
			if old, ok := prev.pools[pc.Name]; ok && reflect.DeepEqual(old.Config(), pc) {
				st.pools[pc.Name] = old
				continue
			}
		}
		dial, dialData, err := s.dialer(pc, cfg.MaxMessageBytes)
		if err != nil {
			s.closeNew(st, prev)
			return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
		}
		p, err := pool.New(pool.Options{Config: pc, Dial: dial, DialData: dialData, LookupHost: s.opts.LookupHost, Metrics: s.m.pool, Logger: s.log})
		if err != nil {
			s.closeNew(st, prev)
			return nil, err
		}
		st.pools[pc.Name] = p
	}
	s.waitChecked(st, prev)
	st.table = route.Build(cfg, st.pools)
	return st, nil
}

// waitChecked lets the new pools of st finish their first health checks
// (bounded by their health timeout) so that they take traffic as soon as they
// are in the table: a reload must not route to a pool that has not yet found
// its ready backends.
func (s *Server) waitChecked(st, prev *state) {
	var wg sync.WaitGroup
	for name, p := range st.pools {
		if prev != nil && prev.pools[name] == p {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), p.Config().Health.Timeout.Duration+500*time.Millisecond)
			defer cancel()
			if err := p.WaitChecked(ctx); err != nil {
				s.log.Warn("pool not checked yet: it takes traffic once its backends pass a health check", "pool", name)
			}
		}()
	}
	wg.Wait()
}

// closeNew closes the pools of st that prev does not own (a failed build).
func (s *Server) closeNew(st, prev *state) {
	for name, p := range st.pools {
		if prev == nil || prev.pools[name] != p {
			p.Close()
		}
	}
}

// tlsConfig is the TLS configuration for a pool's backends (nil: cleartext).
func tlsConfig(pc config.Pool) (*tls.Config, error) {
	t := pc.TLS
	if t == nil {
		return nil, nil
	}
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, err
		}
		certs := x509.NewCertPool()
		if !certs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca %s: no PEM certificate", t.CA)
		}
		tc.RootCAs = certs
	}
	if t.Cert != "" {
		kp, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc, nil
}

// dialer returns how to connect to one backend of a pool: a grpc-go
// connection for health checks and metadata calls, and the data-plane
// connection for inference.
func (s *Server) dialer(pc config.Pool, maxMsg int) (func(string) (*grpc.ClientConn, error), func(context.Context, string) (*h2.ClientConn, error), error) {
	tc, err := tlsConfig(pc)
	if err != nil {
		return nil, nil, err
	}
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(4 << 20),
	}
	if s.otel != nil {
		dialOpts = append(dialOpts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(s.otel...)))
	}
	grpcDial := func(addr string) (*grpc.ClientConn, error) { return grpc.NewClient(addr, dialOpts...) }
	dataDial := func(ctx context.Context, addr string) (*h2.ClientConn, error) {
		return h2.Dial(ctx, addr, h2.ClientOptions{TLS: tc})
	}
	return grpcDial, dataDial, nil
}

// Reload swaps in a new validated configuration. Unchanged pools keep their
// connections and state; replaced ones are closed once their requests finish.
// Settings that need a restart (listen addresses, message size) are kept and
// reported.
func (s *Server) Reload(cfg *config.Config) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	prev := s.state.Load()
	if cfg.Listen != prev.cfg.Listen || cfg.MetricsListen != prev.cfg.MetricsListen || cfg.MaxMessageBytes != prev.cfg.MaxMessageBytes {
		s.log.Warn("listen addresses and max_message_bytes change only on restart")
	}
	st, err := s.build(cfg, prev)
	if err != nil {
		s.ReloadFailed(err)
		return err
	}
	s.state.Store(st)
	s.retiredMu.Lock()
	s.retired = append(s.retired, prev)
	s.retiredMu.Unlock()
	s.m.reloads.WithLabelValues("ok").Inc()
	s.m.lastReload.SetToCurrentTime()
	var replaced []*pool.Pool
	for name, p := range prev.pools {
		if st.pools[name] != p {
			replaced = append(replaced, p)
			p.Retire()
		}
	}
	if len(replaced) > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// Requests that started on an older state finish on its pools
			// (a pool may be shared by several generations of state).
			deadline := time.Now().Add(prev.cfg.DrainTimeout.Duration)
			for s.inUse(replaced) && time.Now().Before(deadline) {
				select {
				case <-s.base.Done():
					deadline = time.Now()
				case <-time.After(20 * time.Millisecond):
				}
			}
			for _, p := range replaced {
				eps := p.Endpoints()
				p.Close()
				// Series of backends no pool of that name has any more.
				cur := s.state.Load().pools[p.Name()]
				if cur == nil {
					s.m.pool.InFlight.DeleteLabelValues(p.Name())
				}
				for _, e := range eps {
					if cur == nil || !slices.ContainsFunc(cur.Endpoints(), func(x *pool.Endpoint) bool { return x.Addr == e.Addr }) {
						s.m.pool.Forget(p.Name(), e.Addr)
					}
				}
			}
		}()
	}
	s.log.Info("configuration reloaded", "pools", len(cfg.Pools), "routes", len(cfg.Routes))
	return nil
}

// inUse reports whether a request that started on a retired state may still
// use one of the pools, forgetting the retired states nobody uses any more
// (a state, once retired, gets no new users: see acquire).
func (s *Server) inUse(pools []*pool.Pool) bool {
	s.retiredMu.Lock()
	defer s.retiredMu.Unlock()
	busy := false
	kept := s.retired[:0]
	for _, st := range s.retired {
		if st.users.Load() == 0 {
			continue
		}
		kept = append(kept, st)
		for _, p := range st.pools {
			if slices.Contains(pools, p) {
				busy = true
			}
		}
	}
	clear(s.retired[len(kept):])
	s.retired = kept
	return busy
}

// ReloadFailed records a new configuration that could not even be read or
// validated (the one in effect stays).
func (s *Server) ReloadFailed(err error) {
	s.m.reloads.WithLabelValues("error").Inc()
	s.log.Error("configuration reload failed; keeping the current one", "error", err)
}

// Drain stops taking new requests and waits for those in flight: readiness
// turns false, after the drain delay the server stops accepting (GOAWAY) and
// waits up to the drain timeout before cutting what is left.
func (s *Server) Drain() {
	cfg := s.state.Load().cfg
	s.closing.Store(true)
	s.health.Shutdown()
	if d := cfg.DrainDelay.Duration; d > 0 {
		time.Sleep(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout.Duration)
	defer cancel()
	if err := s.front.Shutdown(ctx); err != nil {
		s.log.Warn("drain timeout: stopping with requests in flight")
	}
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

// Close stops the server and its pools.
func (s *Server) Close() {
	s.closing.Store(true)
	s.front.Close()
	s.innerMu.Lock()
	if s.innerConn != nil {
		s.innerConn.Close()
	}
	s.innerMu.Unlock()
	s.grpc.Stop()
	s.stopBase()
	s.shadowMu.Lock()
	s.shadowsClosed = true
	s.shadowMu.Unlock()
	s.shadows.Wait()
	s.wg.Wait()
	for _, p := range s.state.Load().pools {
		p.Close()
	}
}

// Ready is the gateway's own readiness: false while draining.
func (s *Server) Ready() bool { return !s.closing.Load() }

// service is the handler type registered for GRPCInferenceService.
type service interface{ ready() bool }

func (s *Server) ready() bool { return s.Ready() }

func unary[Req any, PReq interface {
	*Req
}](name string, fn func(context.Context, PReq) (any, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := PReq(new(Req))
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return fn(ctx, in)
			}
			info := &grpc.UnaryServerInfo{FullMethod: "/inference.GRPCInferenceService/" + name}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) { return fn(ctx, req.(PReq)) })
		},
	}
}

func (s *Server) serviceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "inference.GRPCInferenceService",
		HandlerType: (*service)(nil),
		Methods: []grpc.MethodDesc{
			unary("ServerLive", s.serverLive),
			unary("ServerReady", s.serverReady),
			unary("ServerMetadata", s.serverMetadata),
			unary("ModelReady", s.modelReady),
			unary("ModelMetadata", s.modelMetadata),
			unary("ModelConfig", s.modelConfig),
			unary("ModelStatistics", s.modelStatistics),
			unary("RepositoryIndex", s.repositoryIndex),
			unary("RepositoryModelLoad", s.modelControl),
			unary("RepositoryModelUnload", s.modelControlUnload),
			unary("ModelInfer", s.modelInfer),
			unary("SystemSharedMemoryStatus", s.systemSharedMemoryStatus),
			unary("SystemSharedMemoryRegister", s.systemSharedMemoryRegister),
			unary("SystemSharedMemoryUnregister", s.systemSharedMemoryUnregister),
			unary("CudaSharedMemoryStatus", s.cudaSharedMemoryStatus),
			unary("CudaSharedMemoryRegister", s.cudaSharedMemoryRegister),
			unary("CudaSharedMemoryUnregister", s.cudaSharedMemoryUnregister),
		},
		Streams:  []grpc.StreamDesc{{StreamName: "ModelStreamInfer", Handler: s.modelStreamInfer, ServerStreams: true, ClientStreams: true}},
		Metadata: "grpc_service.proto",
	}
}

func (s *Server) serverLive(context.Context, *inference.ServerLiveRequest) (any, error) {
	return &inference.ServerLiveResponse{Live: true}, nil
}

func (s *Server) serverReady(context.Context, *inference.ServerReadyRequest) (any, error) {
	return &inference.ServerReadyResponse{Ready: s.Ready()}, nil
}

func (s *Server) serverMetadata(context.Context, *inference.ServerMetadataRequest) (any, error) {
	// Name is "triton", as Triton answers: its clients check it (NVIDIA's
	// health_metadata example refuses any other); Version is the gateway's.
	return &inference.ServerMetadataResponse{Name: "triton", Version: s.opts.Version,
		Extensions: []string{"model_configuration", "sequence", "statistics", "parameters"}}, nil
}

func unknownModel(name string) error {
	return status.Errorf(codes.NotFound, "Request for unknown model: '%s' is not found", name)
}

// modelReady answers from health checks: the model (version) is ready if a
// backend of a pool it routes to has it READY.
func (s *Server) modelReady(_ context.Context, req *inference.ModelReadyRequest) (any, error) {
	rt, ok := s.state.Load().table.Lookup(req.GetName())
	if !ok {
		return &inference.ModelReadyResponse{Ready: false}, nil
	}
	for _, t := range rt.Targets() {
		v := req.GetVersion()
		if v != "" && t.Version != "" && t.Version != v {
			continue
		}
		if v == "" {
			v = t.Version
		}
		if t.Pool.Ready(req.GetName(), v) {
			return &inference.ModelReadyResponse{Ready: true}, nil
		}
	}
	if v := req.GetVersion(); v != "" && rt.Pool.Ready(req.GetName(), v) {
		return &inference.ModelReadyResponse{Ready: true}, nil
	}
	return &inference.ModelReadyResponse{Ready: false}, nil
}

// backendFor picks a backend of the model's pool that has the version READY,
// or, when none has, one that passed its health check, which answers as
// Triton does for an unknown or unready version; release when done with it.
func (s *Server) backendFor(model, version string) (_ *pool.Endpoint, release func(), _ error) {
	st := s.acquire()
	e, err := backendIn(st, model, version)
	if err != nil {
		st.release()
		return nil, nil, err
	}
	return e, st.release, nil
}

func backendIn(st *state, model, version string) (*pool.Endpoint, error) {
	rt, ok := st.table.Lookup(model)
	if !ok {
		return nil, unknownModel(model)
	}
	for _, t := range rt.Targets() {
		v := version
		if v == "" {
			v = t.Version
		}
		if version != "" && t.Version != "" && t.Version != version {
			continue
		}
		if e := t.Pool.Any(model, v); e != nil {
			return e, nil
		}
	}
	if e := rt.Pool.Any(model, version); e != nil {
		return e, nil
	}
	p := rt.Pool
	for _, t := range rt.Targets() {
		if version != "" && t.Version == version {
			p = t.Pool
		}
	}
	if e := p.Healthy(); e != nil {
		return e, nil
	}
	return nil, status.Errorf(codes.Unavailable, "no ready backend for model '%s'", model)
}

func (s *Server) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	st := s.state.Load()
	ctx = s.outgoing(ctx, "")
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, st.cfg.Defaults.Timeout.Duration)
}

func (s *Server) modelMetadata(ctx context.Context, req *inference.ModelMetadataRequest) (any, error) {
	e, release, err := s.backendFor(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	return e.Client.ModelMetadata(ctx, req)
}

func (s *Server) modelConfig(ctx context.Context, req *inference.ModelConfigRequest) (any, error) {
	e, release, err := s.backendFor(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	return e.Client.ModelConfig(ctx, req)
}

func (s *Server) modelStatistics(ctx context.Context, req *inference.ModelStatisticsRequest) (any, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "the gateway reports statistics per model: give a model name (each backend has its own)")
	}
	if _, ok := s.state.Load().table.Lookup(req.GetName()); !ok {
		// Triton's answer for statistics of a model it does not serve.
		return nil, status.Errorf(codes.InvalidArgument, "requested model '%s' is not available", req.GetName())
	}
	e, release, err := s.backendFor(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	return e.Client.ModelStatistics(ctx, req)
}

// repositoryIndex merges the index of one healthy backend of every pool:
// each model version once, READY if any pool has it ready.
func (s *Server) repositoryIndex(ctx context.Context, req *inference.RepositoryIndexRequest) (any, error) {
	if req.GetRepositoryName() != "" {
		return nil, status.Error(codes.Unimplemented, "'repository_name' specification is not supported")
	}
	st := s.acquire()
	defer st.release()
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	type key struct{ name, version string }
	merged := map[key]*inference.RepositoryIndexResponse_ModelIndex{}
	names := make([]string, 0, len(st.pools))
	for n := range st.pools {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		e := st.pools[n].Healthy()
		if e == nil {
			continue
		}
		idx, err := e.Client.RepositoryIndex(ctx, req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range idx.GetModels() {
			k := key{m.GetName(), m.GetVersion()}
			if cur, ok := merged[k]; !ok || (cur.GetState() != "READY" && m.GetState() == "READY") {
				merged[k] = m
			}
		}
	}
	if len(merged) == 0 && len(errs) > 0 {
		return nil, status.Errorf(codes.Unavailable, "no pool answered: %v", errors.Join(errs...))
	}
	out := &inference.RepositoryIndexResponse{}
	for _, m := range merged {
		out.Models = append(out.Models, m)
	}
	slices.SortFunc(out.Models, func(a, b *inference.RepositoryIndexResponse_ModelIndex) int {
		if a.GetName() != b.GetName() {
			if a.GetName() < b.GetName() {
				return -1
			}
			return 1
		}
		return compareVersions(a.GetVersion(), b.GetVersion())
	})
	return out, nil
}

func compareVersions(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Server) modelControl(context.Context, *inference.RepositoryModelLoadRequest) (any, error) {
	return nil, status.Error(codes.Unimplemented, "the gateway does not load models: the syncer of each pool does (see the catalog)")
}

func (s *Server) modelControlUnload(context.Context, *inference.RepositoryModelUnloadRequest) (any, error) {
	return nil, status.Error(codes.Unimplemented, "the gateway does not unload models: the syncer of each pool does (see the catalog)")
}
