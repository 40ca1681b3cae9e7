// Package tritonlite is a Triton-protocol server over a model repository on
// disk: Triton's GRPCInferenceService (KServe v2 plus Triton's extensions),
// its model lifecycle (control modes, version policies, reloads that keep
// serving, readiness while loading), its scheduling (instance counts, the
// dynamic batcher and its queue policy, the sequence batcher), system shared
// memory, its statistics and Prometheus metrics, and its error messages.
// Models run in Executors created by Backends: builtin pure-Go models here
// (identity, add_sub, sequence, with fault injection), ONNX Runtime in
// package ort.
package tritonlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/tensor"
	// Triton takes gzip and deflate (grpc core's zlib format) request
	// compression; grpc-go answers in the request's encoding.
	_ "github.com/tritongate/tritongate/internal/triton/deflate"
	"github.com/tritongate/tritongate/proto/inference"
)

// ControlMode is Triton's --model-control-mode.
type ControlMode string

// The model control modes.
const (
	ModeNone     ControlMode = "none"
	ModePoll     ControlMode = "poll"
	ModeExplicit ControlMode = "explicit"
)

// Options configure a Server.
type Options struct {
	// Repository is the model repository directory.
	Repository string
	// ControlMode: none (load everything at start), poll (also follow
	// changes), explicit (load what StartupModels names, then on request).
	ControlMode ControlMode
	// StartupModels are loaded at start in explicit mode ("*": all).
	StartupModels []string
	// PollInterval is how often poll mode rescans the repository.
	PollInterval time.Duration
	// StrictReadiness: the server is ready only while every model version it
	// tried to load is ready (Triton's default).
	StrictReadiness bool
	// ExitOnError makes Start fail when a model fails to load at start.
	ExitOnError bool
	// Config is how configs are completed (GPUs, auto-complete, default
	// max batch size).
	Config pbtxt.Server
	// Backends by name; Builtins() provides identity and add_sub.
	Backends map[string]Backend
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Crash is called by the crash fault (nil: the process exits with 70).
	Crash func()
	// Version is reported by ServerMetadata.
	Version string
	// LoadDelay is added to every model version load (a model slow to
	// initialize); a model's config parameter "tritonlite_load_delay"
	// overrides it. The version is LOADING meanwhile.
	LoadDelay time.Duration
}

// Server implements inference.GRPCInferenceServiceServer.
type Server struct {
	inference.UnimplementedGRPCInferenceServiceServer
	opts    Options
	log     *slog.Logger
	repo    *repository
	shm     *shmManager
	metrics *metrics
	health  *health.Server
	started atomic.Bool
	closing atomic.Bool
	// stop is closed by Close: it ends load delays in progress.
	stop     chan struct{}
	stopOnce sync.Once
	healthMu sync.Mutex
}

// New creates a server; Start loads the models.
func New(opts Options) (*Server, error) {
	if opts.Repository == "" {
		return nil, errors.New("tritonlite: no model repository")
	}
	if st, err := os.Stat(opts.Repository); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("repository path is not a valid directory: %s", opts.Repository)
	}
	switch opts.ControlMode {
	case "":
		opts.ControlMode = ModeNone
	case ModeNone, ModePoll, ModeExplicit:
	default:
		return nil, fmt.Errorf("unknown model control mode %q (none, poll or explicit)", opts.ControlMode)
	}
	if opts.ControlMode != ModeExplicit && len(opts.StartupModels) > 0 {
		return nil, errors.New("--load-model is only allowed with --model-control-mode=explicit")
	}
	if slices.Contains(opts.StartupModels, "*") && len(opts.StartupModels) > 1 {
		return nil, errors.New("Wildcard model name '*' must be the ONLY startup model if specified at all.")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Crash == nil {
		opts.Crash = func() { os.Exit(70) }
	}
	if opts.Version == "" {
		opts.Version = "0.1.0"
	}
	if opts.LoadDelay < 0 {
		return nil, fmt.Errorf("load delay %s is negative", opts.LoadDelay)
	}
	s := &Server{opts: opts, log: opts.Logger, health: health.NewServer(), stop: make(chan struct{}), shm: newShmManager()}
	s.repo = newRepository(s)
	s.metrics = newMetrics(opts.Registerer, s.repo.countReady)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// Register adds the inference and health services to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	inference.RegisterGRPCInferenceServiceServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
}

// Start loads the initial models: all of them in none and poll mode, the
// startup models in explicit mode. With ExitOnError, a model that fails to
// load fails Start.
func (s *Server) Start(ctx context.Context) error {
	var names []string
	switch {
	case s.opts.ControlMode != ModeExplicit || slices.Contains(s.opts.StartupModels, "*"):
		var err error
		if names, err = s.repo.repositoryModels(); err != nil {
			return err
		}
	default:
		names = s.opts.StartupModels
	}
	var failed []string
	for _, n := range names {
		if err := s.repo.load(ctx, n, nil); err != nil {
			s.log.Error("failed to load model", "model", n, "error", status.Convert(err).Message())
			failed = append(failed, n)
		}
	}
	s.started.Store(true)
	s.updateHealth()
	if len(failed) > 0 && s.opts.ExitOnError {
		return fmt.Errorf("failed to load all models: %s", strings.Join(failed, ", "))
	}
	return nil
}

// Run follows repository changes in poll mode until ctx ends; in the other
// modes it just waits for ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.opts.ControlMode != ModePoll {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.repo.poll(ctx)
			s.updateHealth()
		}
	}
}

// Close marks the server not ready and unloads every model, waiting for the
// requests in flight.
func (s *Server) Close() {
	s.closing.Store(true)
	s.StopLoading()
	s.health.Shutdown()
	// Loads that start from now on are refused; unload waits for the ones in
	// progress (it takes each model's load lock).
	for _, n := range s.repo.names() {
		s.repo.unload(n)
	}
	s.repo.retiring.Wait()
	s.shm.closeAll()
}

// StopLoading cuts short every load in progress (its load delay: the load
// fails) and refuses new loads, so that a server shutting down waits for no
// load; inference goes on. Close calls it.
func (s *Server) StopLoading() {
	s.stopOnce.Do(func() { close(s.stop) })
}

func (s *Server) loadsStopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func (s *Server) ready() bool {
	if !s.started.Load() || s.closing.Load() {
		return false
	}
	return !s.opts.StrictReadiness || s.repo.allReady()
}

func (s *Server) updateHealth() {
	// Serialized, so that the last state set is the current one.
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.ready() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
}

// ServerLive is true while the process serves.
func (s *Server) ServerLive(context.Context, *inference.ServerLiveRequest) (*inference.ServerLiveResponse, error) {
	return &inference.ServerLiveResponse{Live: !s.closing.Load()}, nil
}

// ServerReady follows Triton's (strict) readiness.
func (s *Server) ServerReady(context.Context, *inference.ServerReadyRequest) (*inference.ServerReadyResponse, error) {
	return &inference.ServerReadyResponse{Ready: s.ready()}, nil
}

// serverName is the name ServerMetadata answers: Triton's own, "triton", as
// clients check it (NVIDIA's simple_grpc_health_metadata example refuses any
// other). The version is tritonlite's (Options.Version).
const serverName = "triton"

// ServerMetadata names the server and the protocol extensions it supports.
func (s *Server) ServerMetadata(context.Context, *inference.ServerMetadataRequest) (*inference.ServerMetadataResponse, error) {
	return &inference.ServerMetadataResponse{
		Name:    serverName,
		Version: s.opts.Version,
		Extensions: []string{
			"sequence", "model_repository", "model_repository(unload_dependents)", "schedule_policy",
			"model_configuration", "system_shared_memory", "parameters", "statistics",
		},
	}, nil
}

// ModelReady reports whether the model (version) can take requests; an
// unknown model is simply not ready.
func (s *Server) ModelReady(_ context.Context, req *inference.ModelReadyRequest) (*inference.ModelReadyResponse, error) {
	_, release, err := s.repo.acquire(req.GetName(), req.GetVersion())
	if err != nil {
		return &inference.ModelReadyResponse{Ready: false}, nil
	}
	release()
	return &inference.ModelReadyResponse{Ready: true}, nil
}

// ModelMetadata describes a model's tensors; shapes include the batch
// dimension (-1) when the model batches.
func (s *Server) ModelMetadata(_ context.Context, req *inference.ModelMetadataRequest) (*inference.ModelMetadataResponse, error) {
	v, release, err := s.repo.acquire(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	defer release()
	cfg := v.cfg
	resp := &inference.ModelMetadataResponse{Name: req.GetName(), Platform: cfg.GetPlatform()}
	if resp.Platform == "" {
		resp.Platform = cfg.GetBackend()
	}
	if req.GetVersion() != "" {
		resp.Versions = []string{v.label}
	} else {
		for _, rv := range s.repo.readyVersions(req.GetName()) {
			resp.Versions = append(resp.Versions, rv.label)
		}
	}
	shape := func(dims []int64) []int64 {
		if cfg.GetMaxBatchSize() > 0 {
			return append([]int64{-1}, dims...)
		}
		return dims
	}
	for _, in := range cfg.GetInput() {
		resp.Inputs = append(resp.Inputs, &inference.ModelMetadataResponse_TensorMetadata{Name: in.GetName(), Datatype: tensor.FromConfig(in.GetDataType()).String(), Shape: shape(in.GetDims())})
	}
	for _, out := range cfg.GetOutput() {
		resp.Outputs = append(resp.Outputs, &inference.ModelMetadataResponse_TensorMetadata{Name: out.GetName(), Datatype: tensor.FromConfig(out.GetDataType()).String(), Shape: shape(out.GetDims())})
	}
	return resp, nil
}

// ModelConfig returns the completed configuration of a model version.
func (s *Server) ModelConfig(_ context.Context, req *inference.ModelConfigRequest) (*inference.ModelConfigResponse, error) {
	v, release, err := s.repo.acquire(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	defer release()
	return &inference.ModelConfigResponse{Config: v.cfg}, nil
}

// ModelStatistics reports per-version statistics: of one model (all its ready
// versions, or one) or of every model.
func (s *Server) ModelStatistics(_ context.Context, req *inference.ModelStatisticsRequest) (*inference.ModelStatisticsResponse, error) {
	resp := &inference.ModelStatisticsResponse{}
	names := []string{req.GetName()}
	if req.GetName() == "" {
		names = s.repo.loadedNames()
	}
	for _, n := range names {
		versions := s.repo.readyVersions(n)
		if len(versions) == 0 {
			if req.GetName() == "" {
				continue
			}
			return nil, invalidArg("requested model '%s' is not available", n)
		}
		found := false
		for _, v := range versions {
			if req.GetVersion() == "" || req.GetVersion() == v.label {
				resp.ModelStats = append(resp.ModelStats, v.stats.proto(n, v.label))
				found = true
			}
		}
		if !found {
			return nil, invalidArg("requested model version is not available for model '%s'", n)
		}
	}
	return resp, nil
}

// RepositoryIndex lists the repository's models and their version states.
func (s *Server) RepositoryIndex(_ context.Context, req *inference.RepositoryIndexRequest) (*inference.RepositoryIndexResponse, error) {
	if req.GetRepositoryName() != "" {
		return nil, status.Error(codes.Unimplemented, "'repository_name' specification is not supported")
	}
	return &inference.RepositoryIndexResponse{Models: s.repo.index(req.GetReady())}, nil
}

func (s *Server) checkExplicit() error {
	if s.opts.ControlMode != ModeExplicit {
		return status.Error(codes.Unavailable, "explicit model load / unload is not allowed if polling is enabled")
	}
	return nil
}

// RepositoryModelLoad loads or reloads a model (explicit mode), optionally
// with a config override ("config": JSON) and model files ("file:<path>").
func (s *Server) RepositoryModelLoad(ctx context.Context, req *inference.RepositoryModelLoadRequest) (*inference.RepositoryModelLoadResponse, error) {
	if req.GetRepositoryName() != "" {
		return nil, status.Error(codes.Unimplemented, "'repository_name' specification is not supported")
	}
	if err := s.checkExplicit(); err != nil {
		return nil, err
	}
	var ov *loadOverride
	var configJSON *string
	for key, p := range req.GetParameters() {
		switch {
		case key == "config":
			v, ok := p.GetParameterChoice().(*inference.ModelRepositoryParameter_StringParam)
			if !ok {
				return nil, invalidArg("invalid value type for load parameter 'config', expected string_param.")
			}
			configJSON = &v.StringParam
		case strings.HasPrefix(key, "file:"):
			v, ok := p.GetParameterChoice().(*inference.ModelRepositoryParameter_BytesParam)
			if !ok {
				return nil, invalidArg("invalid value type for load parameter '%s', expected bytes_param.", key)
			}
			if ov == nil {
				ov = &loadOverride{files: map[string][]byte{}}
			}
			ov.files[strings.TrimPrefix(key, "file:")] = v.BytesParam
		default:
			return nil, invalidArg("unrecognized load parameter '%s'.", key)
		}
	}
	if ov != nil && configJSON == nil {
		return nil, invalidArg("Load parameter 'config' must be specified for model file override")
	}
	if configJSON != nil {
		cfg := &inference.ModelConfig{}
		if err := protojson.Unmarshal([]byte(*configJSON), cfg); err != nil {
			// Triton logs the parse error and reports a failed poll.
			s.log.Warn("invalid config override", "model", req.GetModelName(), "error", err)
			return nil, pollFailed(req.GetModelName())
		}
		if ov == nil {
			ov = &loadOverride{}
		}
		ov.config = cfg
	}
	err := s.repo.load(ctx, req.GetModelName(), ov)
	s.updateHealth()
	if err != nil {
		return nil, err
	}
	return &inference.RepositoryModelLoadResponse{}, nil
}

// RepositoryModelUnload unloads a model (explicit mode), waiting for its
// requests in flight.
func (s *Server) RepositoryModelUnload(_ context.Context, req *inference.RepositoryModelUnloadRequest) (*inference.RepositoryModelUnloadResponse, error) {
	if req.GetRepositoryName() != "" {
		return nil, status.Error(codes.Unimplemented, "'repository_name' specification is not supported")
	}
	if err := s.checkExplicit(); err != nil {
		return nil, err
	}
	if p, ok := req.GetParameters()["unload_dependents"]; ok {
		if _, ok := p.GetParameterChoice().(*inference.ModelRepositoryParameter_BoolParam); !ok {
			return nil, invalidArg("invalid value type for 'unload_dependents' parameter, expected bool_param.")
		}
	}
	s.repo.unload(req.GetModelName())
	s.updateHealth()
	return &inference.RepositoryModelUnloadResponse{}, nil
}

// ModelInfer runs one inference.
func (s *Server) ModelInfer(ctx context.Context, req *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	return s.infer(ctx, req)
}

func (s *Server) infer(ctx context.Context, req *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	resp, _, err := s.inferIssued(ctx, req)
	return resp, err
}

// inferIssued runs one inference and reports whether the request got as far
// as the scheduler ("issued", in Triton's words). A request that fails
// before (unknown model or version, a request the model's config refuses) is
// not counted in the model's statistics or failure metrics: Triton rejects it
// in TRITONSERVER_ServerInferAsync, before the model sees it.
func (s *Server) inferIssued(ctx context.Context, req *inference.ModelInferRequest) (*inference.ModelInferResponse, bool, error) {
	p, err := s.submit(ctx, req)
	if err != nil {
		return nil, false, err
	}
	return p.finish()
}

// submitted is a request handed to its model version's scheduler.
type submitted struct {
	v       *version
	r       *request
	req     *inference.ModelInferRequest
	release func()
	shm     *shmManager
}

// submit validates a request and hands it to its version's scheduler
// without waiting for it to run: the requests of a stream are submitted in
// the order they arrive, so that a sequence's requests reach the sequence
// batcher in order. An error means the request was not issued.
func (s *Server) submit(ctx context.Context, req *inference.ModelInferRequest) (*submitted, error) {
	if !s.started.Load() || s.closing.Load() {
		return nil, status.Error(codes.Unavailable, "Server not ready")
	}
	v, release, err := s.repo.acquire(req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	r, err := v.prepare(ctx, req, s.shm)
	if err == nil {
		if err = v.enqueue(r); err != nil {
			s.shm.releaseAll(r)
		}
	}
	if err != nil {
		release()
		return nil, err
	}
	return &submitted{v: v, r: r, req: req, release: release, shm: s.shm}, nil
}

// finish waits for a submitted request and builds its response (writing
// the outputs that go to shared memory).
func (p *submitted) finish() (*inference.ModelInferResponse, bool, error) {
	defer p.release()
	defer p.shm.releaseAll(p.r)
	outs, issued, err := p.v.await(p.r)
	if err != nil {
		return nil, issued, err
	}
	resp := p.v.response(p.req, p.r, outs)
	if err := writeOutputs(resp, p.r); err != nil {
		return nil, true, err
	}
	return resp, true, nil
}

// ModelStreamInfer runs each request of the stream as it arrives and streams
// back the responses (errors as responses with error_message, as Triton
// does; the stream stays open). The responses of a sequence keep its order.
func (s *Server) ModelStreamInfer(stream inference.GRPCInferenceService_ModelStreamInferServer) error {
	ctx := stream.Context()
	var wg sync.WaitGroup
	defer wg.Wait()
	var sendMu sync.Mutex
	var sendErr atomic.Value
	// The responses of a sequence go out in the order its requests ran, as
	// Triton sends them (NVIDIA's sequence stream example relies on it):
	// each waits until the one of the sequence's previous request is sent.
	type seqKey struct {
		v  *version
		id seqID
	}
	var lastMu sync.Mutex
	lastSent := map[seqKey]chan struct{}{} // closed once that request's response is sent
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if e, _ := sendErr.Load().(error); e != nil {
			return e
		}
		// Submitted here, in the order of the stream; run and answered
		// concurrently.
		p, submitErr := s.submit(ctx, req)
		var after <-chan struct{}
		var sent chan struct{}
		var key seqKey
		if submitErr == nil && p.v.seq != nil && !p.r.seq.id.none() {
			key, sent = seqKey{p.v, p.r.seq.id}, make(chan struct{})
			lastMu.Lock()
			after, lastSent[key] = lastSent[key], sent
			lastMu.Unlock()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sent != nil {
				defer func() {
					close(sent)
					lastMu.Lock()
					if lastSent[key] == sent {
						delete(lastSent, key)
					}
					lastMu.Unlock()
				}()
			}
			out := &inference.ModelStreamInferResponse{}
			var resp *inference.ModelInferResponse
			issued, err := false, submitErr
			if err == nil {
				resp, issued, err = p.finish()
			}
			switch {
			case err != nil && !issued:
				// Triton's stream handler: the request was never issued, the
				// response carries only its id.
				out.ErrorMessage = status.Convert(err).Message()
				out.InferResponse = &inference.ModelInferResponse{Id: req.GetId()}
			case err != nil:
				// Failed in the model: the response names the request and,
				// as every response of a stream, says whether it is the last.
				out.ErrorMessage = status.Convert(err).Message()
				out.InferResponse = &inference.ModelInferResponse{ModelName: req.GetModelName(), ModelVersion: req.GetModelVersion(), Id: req.GetId()}
				setFinalResponse(out.InferResponse)
			default:
				out.InferResponse = resp
				setFinalResponse(resp)
			}
			if after != nil {
				<-after
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			if err := stream.Send(out); err != nil {
				sendErr.Store(err)
			}
		}()
	}
}

// setFinalResponse marks a stream response as its request's last, as
// Triton's stream handler marks every response it sends:
// parameters["triton_final_response"] (true: a model that is not decoupled
// sends one response per request).
func setFinalResponse(r *inference.ModelInferResponse) {
	if r.Parameters == nil {
		r.Parameters = map[string]*inference.InferParameter{}
	}
	r.Parameters["triton_final_response"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}}
}

// ReadyVersion reports whether version (0: any) of model is ready: for tests
// and tools in the same process.
func (s *Server) ReadyVersion(model string, version int64) bool {
	vs := ""
	if version > 0 {
		vs = strconv.FormatInt(version, 10)
	}
	_, release, err := s.repo.acquire(model, vs)
	if err != nil {
		return false
	}
	release()
	return true
}
