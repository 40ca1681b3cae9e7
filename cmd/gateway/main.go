// Command gateway is tritongate's gRPC front door: Triton's
// GRPCInferenceService in front of pools of Triton backends, with version
// splits, pins, sticky splits, shadow traffic, load-aware picking, circuit
// breakers, outlier ejection and budgeted retries. Configuration:
// docs/gateway.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"golang.org/x/sync/errgroup"

	"github.com/tritongate/tritongate/internal/gateway/config"
	"github.com/tritongate/tritongate/internal/gateway/server"
)

var version = "dev"

func main() {
	if os.Getenv("GOGC") == "" {
		// A proxy's heap is small and short-lived: collect less often
		// (GC CPU and stack shrinking cost more than the memory).
		debug.SetGCPercent(400)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfgPath, logLevel, listen, metricsListen string
	var check, pprofOn bool
	cmd := &cobra.Command{
		Use:   "gateway --config FILE",
		Short: "Triton-protocol gRPC gateway in front of CPU and GPU Triton pools",
		Long: `gateway serves Triton's GRPCInferenceService and routes each model's requests
to the pool of Triton backends that serves it: version splits (canaries), a
header that pins a version, sticky splits, shadow traffic with output
comparison, power-of-two-choices picking on load, a circuit breaker and
outlier ejection per backend, and retries within a budget.

Routes may come from the catalog the syncers read (catalog: in the file):
each catalog model without a route of its own goes to its first pool.
The configuration file (YAML) and the catalog are reloaded when they change
or on SIGHUP;
SIGTERM drains: readiness turns false, in-flight requests finish, then the
process exits. Metrics on metrics_listen (/metrics).`,
		Example: `  gateway --config /etc/tritongate/gateway.yaml
  gateway --config gateway.yaml --check`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return errors.New("--config is required")
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			ov := overrides{listen: listen, metrics: metricsListen}
			ov.apply(cfg)
			if check {
				fromCatalog := 0
				for _, r := range cfg.Routes {
					if r.FromCatalog {
						fromCatalog++
					}
				}
				if cfg.Catalog != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %d pools, %d routes (%d from the catalog %s): ok\n", cfgPath, len(cfg.Pools), len(cfg.Routes), fromCatalog, cfg.Catalog)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %d pools, %d routes: ok\n", cfgPath, len(cfg.Pools), len(cfg.Routes))
				}
				return nil
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
			ov.pprof = pprofOn
			return serve(cmd.Context(), cfgPath, ov, cfg, log)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&listen, "listen", "", "override the configuration's listen address (host:port)")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "override the configuration's metrics_listen (host:port, or none)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug logs every request with its request id")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration and exit")
	cmd.Flags().BoolVar(&pprofOn, "pprof", false, "serve Go's /debug/pprof/ profiles on metrics_listen")
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 1
	}
	return 0
}

// overrides are the command-line settings that win over the file's, on
// start and on every reload.
type overrides struct {
	listen, metrics string
	pprof           bool
}

func (o overrides) apply(cfg *config.Config) {
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	switch o.metrics {
	case "":
	case "none":
		cfg.MetricsListen = ""
	default:
		cfg.MetricsListen = o.metrics
	}
}

func setupTracing(ctx context.Context, cfg config.Tracing) (*sdktrace.TracerProvider, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.Exporter {
	case "otlp":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case "stdout":
		exp, err = stdouttrace.New()
	default:
		return nil, nil // propagation only
	}
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("tritongate-gateway"))),
	)
	otel.SetTracerProvider(tp)
	return tp, nil
}

func serve(ctx context.Context, cfgPath string, ov overrides, cfg *config.Config, log *slog.Logger) error {
	tp, err := setupTracing(ctx, cfg.Tracing)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := server.Options{Registerer: reg, Logger: log, Version: version}
	if tp != nil {
		opts.TracerProvider = tp
		defer tp.Shutdown(context.Background())
	}
	srv, err := server.New(cfg, opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	group, gctx := errgroup.WithContext(ctx)
	group.Go(func() error {
		log.Info("serving", "listen", lis.Addr().String(), "pools", len(cfg.Pools), "routes", len(cfg.Routes))
		return srv.Serve(lis)
	})
	var httpSrv *http.Server
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !srv.Ready() {
				http.Error(w, "draining", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok\n")
		})
		mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		if ov.pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		httpSrv = &http.Server{Addr: cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		mlis, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			lis.Close()
			return err
		}
		group.Go(func() error {
			if err := httpSrv.Serve(mlis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	group.Go(func() error { return watchConfig(gctx, cfgPath, cfg.Catalog, ov, srv, log) })
	group.Go(func() error {
		<-gctx.Done()
		log.Info("draining")
		srv.Drain()
		if httpSrv != nil {
			httpSrv.Close()
		}
		log.Info("drained")
		return nil
	})
	err = group.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// watchConfig reloads the configuration on SIGHUP and when its file, or the
// catalog it names, changes (watching their directories, so Kubernetes
// ConfigMap updates, which swap a symlink, are seen). Bursts of events
// coalesce into one reload.
func watchConfig(ctx context.Context, path, catalogPath string, ov overrides, srv *server.Server, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	trigger := make(chan struct{}, 1)
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	targets := map[string]string{} // watched file → what its symlinks resolve to
	watch := func(p string) {
		p = filepath.Clean(p)
		if _, ok := targets[p]; ok || p == "." {
			return
		}
		if err := w.Add(filepath.Dir(p)); err != nil {
			log.Warn("not watching a file (SIGHUP still reloads)", "file", p, "error", err)
		}
		targets[p], _ = filepath.EvalSymlinks(p)
	}
	watch(path)
	if catalogPath != "" {
		watch(catalogPath)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			poke()
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			for p, target := range targets {
				if filepath.Clean(ev.Name) == p || (filepath.Base(ev.Name) == "..data" && filepath.Dir(ev.Name) == filepath.Dir(p)) {
					poke()
				} else if now, _ := filepath.EvalSymlinks(p); now != target {
					targets[p] = now
					poke()
				}
			}
		case err := <-w.Errors:
			log.Warn("configuration watch", "error", err)
		case <-trigger:
			time.Sleep(100 * time.Millisecond) // let writers finish
			cfg, err := config.Load(path)
			if err != nil {
				srv.ReloadFailed(err)
				continue
			}
			ov.apply(cfg)
			if cfg.Catalog != "" {
				watch(cfg.Catalog)
			}
			srv.Reload(cfg) // failures are logged and counted
		}
	}
}
