// Command tritonlite serves a Triton model repository over Triton's gRPC
// protocol, running ONNX models on CPU with ONNX Runtime (and tritongate's
// builtin test models). It takes Triton's own flag names where they exist,
// so scripts and manifests written for tritonserver work with it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/ort"
)

type flags struct {
	repos           []string
	controlMode     string
	loadModels      []string
	grpcAddress     string
	grpcPort        int
	metricsAddress  string
	metricsPort     int
	allowMetrics    bool
	pollSecs        int
	strictReadiness bool
	exitTimeoutSecs int
	exitOnError     bool
	noAutofill      bool
	strictConfig    bool
	backendConfig   []string
	onnxruntimeLib  string
	logFormat       string
	logVerbose      int
	maxMessageBytes int
	loadDelay       time.Duration
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	var f flags
	cmd := &cobra.Command{
		Use:   "tritonlite --model-repository DIR [flags]",
		Short: "Serve a Triton model repository over Triton's gRPC protocol, on CPU",
		Long: `tritonlite serves a Triton model repository over Triton's GRPCInferenceService
(KServe v2 + Triton extensions): ONNX models run on CPU with ONNX Runtime, and
the builtin backends "identity", "add_sub" and "sequence" (with fault injection
through config parameters) need no model file. It reads config.pbtxt, completes and
validates it exactly as Triton does, honours instance groups, version
policies, the dynamic and sequence batchers and system shared memory, and
reports Triton's errors, statistics and Prometheus metrics.

Flags follow tritonserver's names. The ONNX Runtime library is loaded from
--onnxruntime-lib, $ONNXRUNTIME_LIB, or .cache/onnxruntime/ (make ort).`,
		Example: `  tritonlite --model-repository /mnt/models
  tritonlite --model-repository /mnt/models --model-control-mode=explicit --load-model=densenet
  tritonlite --model-repository models --grpc-port 9001 --metrics-port 9002 --model-control-mode=poll --repository-poll-secs 5`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.repos, "model-repository", nil, "model repository directory (alias --model-store)")
	fl.StringArrayVar(&f.repos, "model-store", nil, "alias of --model-repository")
	fl.StringVar(&f.controlMode, "model-control-mode", "none", "none: load all models at start; poll: also follow repository changes; explicit: load --load-model models, then on request")
	fl.StringArrayVar(&f.loadModels, "load-model", nil, "model to load at start in explicit mode (repeatable; * for all)")
	fl.StringVar(&f.grpcAddress, "grpc-address", "0.0.0.0", "address the gRPC server binds")
	fl.IntVar(&f.grpcPort, "grpc-port", 8001, "gRPC port")
	fl.StringVar(&f.metricsAddress, "metrics-address", "0.0.0.0", "address the metrics server binds")
	fl.IntVar(&f.metricsPort, "metrics-port", 8002, "Prometheus metrics port (/metrics)")
	fl.BoolVar(&f.allowMetrics, "allow-metrics", true, "serve Prometheus metrics")
	fl.IntVar(&f.pollSecs, "repository-poll-secs", 15, "seconds between repository scans in poll mode")
	fl.BoolVar(&f.strictReadiness, "strict-readiness", true, "report ready only while every model version that was loaded is ready")
	fl.IntVar(&f.exitTimeoutSecs, "exit-timeout-secs", 30, "on SIGTERM/SIGINT, how long to let in-flight requests finish")
	fl.BoolVar(&f.exitOnError, "exit-on-error", true, "exit if a model fails to load at start")
	fl.BoolVar(&f.noAutofill, "disable-auto-complete-config", false, "do not complete configs from the model files: inputs and outputs must be written out")
	fl.BoolVar(&f.strictConfig, "strict-model-config", false, "deprecated alias of --disable-auto-complete-config")
	fl.StringArrayVar(&f.backendConfig, "backend-config", nil, "backend setting <backend>,<key>=<value>; supported: onnxruntime,default-max-batch-size=N")
	fl.StringVar(&f.onnxruntimeLib, "onnxruntime-lib", "", "path to libonnxruntime.so (default $ONNXRUNTIME_LIB or .cache/onnxruntime)")
	fl.StringVar(&f.logFormat, "log-format", "default", "log format: default (text) or json")
	fl.IntVar(&f.logVerbose, "log-verbose", 0, "verbose logging level (> 0 logs debug)")
	fl.IntVar(&f.maxMessageBytes, "grpc-max-message-bytes", math.MaxInt32, "largest gRPC message accepted (Triton's limit is 2 GiB)")
	fl.DurationVar(&f.loadDelay, "load-delay", 0, "tritonlite only: extra time every model version takes to load (a model slow to initialize; the version is LOADING meanwhile); a model's config parameter tritonlite_load_delay overrides it")
	cmd.SetArgs(args)
	cmd.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "tritonlite: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cmd *cobra.Command, f *flags) error {
	if len(f.repos) != 1 {
		return fmt.Errorf("exactly one --model-repository is needed, got %d", len(f.repos))
	}
	if f.loadDelay < 0 {
		return fmt.Errorf("--load-delay must not be negative, got %s", f.loadDelay)
	}
	level := slog.LevelInfo
	if f.logVerbose > 0 {
		level = slog.LevelDebug
	}
	var handler slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})
	if f.logFormat == "json" {
		handler = slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})
	} else if f.logFormat != "default" {
		return fmt.Errorf("--log-format must be default or json, got %q", f.logFormat)
	}
	log := slog.New(handler)

	cfg := pbtxt.DefaultServer()
	cfg.NoAutofill = f.noAutofill || f.strictConfig
	for _, bc := range f.backendConfig {
		backend, setting, ok := strings.Cut(bc, ",")
		key, value, ok2 := strings.Cut(setting, "=")
		if !ok || !ok2 {
			backend, key, value = "", backend, ""
			if k, v, ok := strings.Cut(bc, "="); ok {
				key, value = k, v // a global setting: default-max-batch-size=N
			}
		}
		if (backend != "" && backend != pbtxt.BackendONNX) || key != "default-max-batch-size" {
			return fmt.Errorf("--backend-config %q: only onnxruntime,default-max-batch-size=N is supported", bc)
		}
		n, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("--backend-config %q: failed to convert '%s' to integral number", bc, value)
		}
		cfg.DefaultMaxBatchSize = n
	}

	backends := tritonlite.Builtins()
	libPath := f.onnxruntimeLib
	if libPath == "" {
		wd, _ := os.Getwd()
		libPath = ort.LibraryPath(wd)
	}
	if err := ort.Init(libPath); err != nil {
		log.Warn("ONNX Runtime unavailable: onnxruntime models will fail to load", "error", err)
	} else {
		backends[pbtxt.BackendONNX] = ort.Backend{}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := tritonlite.New(tritonlite.Options{
		Repository:      f.repos[0],
		ControlMode:     tritonlite.ControlMode(f.controlMode),
		StartupModels:   f.loadModels,
		PollInterval:    time.Duration(f.pollSecs) * time.Second,
		StrictReadiness: f.strictReadiness,
		ExitOnError:     f.exitOnError,
		Config:          cfg,
		Backends:        backends,
		Registerer:      reg,
		Logger:          log,
		LoadDelay:       f.loadDelay,
		Crash: func() {
			log.Error("injected crash (fault_crash_after)")
			os.Exit(70)
		},
	})
	if err != nil {
		return err
	}
	grpcLis, err := net.Listen("tcp", net.JoinHostPort(f.grpcAddress, strconv.Itoa(f.grpcPort)))
	if err != nil {
		return err
	}
	var metricsLis net.Listener
	if f.allowMetrics {
		if metricsLis, err = net.Listen("tcp", net.JoinHostPort(f.metricsAddress, strconv.Itoa(f.metricsPort))); err != nil {
			grpcLis.Close()
			return err
		}
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return err
	}

	g := grpc.NewServer(grpc.MaxRecvMsgSize(f.maxMessageBytes), grpc.MaxSendMsgSize(f.maxMessageBytes))
	srv.Register(g)
	reflection.Register(g)

	group, gctx := errgroup.WithContext(ctx)
	group.Go(func() error {
		log.Info("started GRPCInferenceService", "address", grpcLis.Addr().String())
		return g.Serve(grpcLis)
	})
	var httpSrv *http.Server
	if metricsLis != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		group.Go(func() error {
			log.Info("started metrics service", "address", metricsLis.Addr().String())
			if err := httpSrv.Serve(metricsLis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	runDone := make(chan struct{})
	group.Go(func() error {
		defer close(runDone)
		return srv.Run(gctx)
	})
	group.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down: waiting for in-flight requests", "timeout_secs", f.exitTimeoutSecs)
		srv.StopLoading() // a load (its --load-delay) must not hold the exit
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Duration(f.exitTimeoutSecs) * time.Second):
			log.Warn("exit timeout reached, cancelling remaining requests")
			g.Stop()
		}
		if httpSrv != nil {
			httpSrv.Close()
		}
		<-runDone // no repository poll may still be loading models
		srv.Close()
		return nil
	})
	err = group.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, grpc.ErrServerStopped)) {
		return nil
	}
	return err
}
