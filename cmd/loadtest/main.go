// Command loadtest drives load against a Triton-protocol endpoint (Triton,
// tritonlite, the tritongate gateway): closed loop, concurrency sweeps and
// open-loop rate profiles, with latency measured from each request's intended
// send time, HdrHistogram percentiles, JSON/CSV/HTML reports, run comparison
// and SLO assertions that set the exit code.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tritongate/tritongate/loadtest"
	"github.com/tritongate/tritongate/proto/inference"
)

// Exit codes.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitSLOFailed = 3
)

type usageError struct{ error }

type codeError struct{ code int }

func (e codeError) Error() string { return "exit " + strconv.Itoa(e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:   "loadtest",
		Short: "Load-test a Triton-protocol endpoint with honest latency",
		Long: `loadtest drives load against any GRPCInferenceService endpoint (Triton,
tritonlite, the tritongate gateway) and reports latency that does not lie
under overload: in open loop every request's latency runs from its intended
send time, so a stalled server shows up in p99 instead of silently slowing
the generator down.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(), newCompareCmd(), newReportCmd())
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ce codeError
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return exitError
	}
}

type runFlags struct {
	target, version                    string
	models, headers, shapes, inputs    []string
	requests                           []string
	concurrency                        int
	sweep, rate, ramp, steps, burst    string
	arrival                            string
	duration, warmup, stepDur, window  time.Duration
	timeout                            time.Duration
	maxInFlight, connections, variants int
	batch                              int64
	seed                               uint64
	useTLS, tlsSkipVerify              bool
	tlsCA, tlsServerName               string
	out, jsonOut, csvOut, htmlOut, slo string
	verify, quiet                      bool
	cpuProfile, transport              string
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run --target HOST:PORT --model NAME[:WEIGHT]... [schedule] [flags]",
		Short: "Run a load test",
		Long: `Run a load test against --target with requests for one or more models.

Schedules (pick one; default closed loop at --concurrency 1):
  --concurrency N          closed loop: N clients, each sends when its last reply came back
  --sweep 1,2,4,8 | 1:64   closed loop at each concurrency for --step-duration (like perf_analyzer)
  --rate R                 open loop at R requests/s for --duration
  --ramp A:B               open loop from A to B requests/s over --duration
  --steps R1:D1,R2:D2,...  open loop at R1 for D1, then R2 for D2, ...
  --burst BASE:FACTOR:AT:FOR  "market open": BASE req/s for --duration, FACTOR times that from AT for FOR
Open-loop arrivals are --arrival uniform (evenly spaced) or poisson. Latency is
measured from each request's intended send time; sends later than 1ms after
it are counted as missed slots. --warmup runs first and is not recorded.

Inputs are generated from each model's metadata (random values of its
datatypes; variable dims: --batch for the batch dim, --shape for others, 1
otherwise), or read from files: --input [MODEL/]NAME=FILE (.pb ONNX
TensorProto, .json KServe v2 tensor or flat array, anything else raw
little-endian bytes) or --request MODEL=FILE.json (a whole KServe v2 request).

Exit status: 0 ok, 1 error, 2 bad usage, 3 an --slo was violated.`,
		Example: `  loadtest run --target localhost:8001 --model densenet --concurrency 16 --duration 30s
  loadtest run --target gateway:8001 --model ranker:3 --model embedder:1 --rate 2000 --arrival poisson --duration 1m --out report/
  loadtest run --target localhost:8001 --model simple --burst 200:10:20s:5s --duration 60s --slo 'p99<=50ms,errors<=0.1%'
  loadtest run --target localhost:8001 --model simple --sweep 1:64 --step-duration 10s --html sweep.html`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q (flags only)", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return runLoad(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "gRPC address of the endpoint (host:port)")
	fl.StringArrayVar(&f.models, "model", nil, "model to load, with an optional weight: NAME or NAME:WEIGHT (repeatable)")
	fl.StringVar(&f.version, "model-version", "", "model version to ask for (default: latest)")
	fl.StringArrayVar(&f.headers, "header", nil, "request metadata 'key: value' or key=value (repeatable), e.g. x-tenant: team-a")
	fl.IntVar(&f.concurrency, "concurrency", 0, "closed loop with N clients")
	fl.StringVar(&f.sweep, "sweep", "", "closed-loop concurrency sweep: 1,2,4,8 or LOW:HIGH (powers of two)")
	fl.StringVar(&f.rate, "rate", "", "open loop at a constant rate (requests/s, e.g. 500 or 2k)")
	fl.StringVar(&f.ramp, "ramp", "", "open loop ramp FROM:TO requests/s over --duration")
	fl.StringVar(&f.steps, "steps", "", "open loop steps RATE:DURATION,... (--duration is their sum)")
	fl.StringVar(&f.burst, "burst", "", "open loop BASE:FACTOR:AT:FOR: base rate with a FACTOR× spike from AT lasting FOR")
	fl.StringVar(&f.arrival, "arrival", "uniform", "open-loop arrivals: uniform or poisson")
	fl.DurationVar(&f.duration, "duration", 30*time.Second, "measured duration (closed loop, --rate, --ramp, --burst)")
	fl.DurationVar(&f.warmup, "warmup", 0, "warm-up before measuring, not recorded")
	fl.DurationVar(&f.stepDur, "step-duration", 10*time.Second, "duration of each sweep level")
	fl.DurationVar(&f.window, "window", time.Second, "reporting window for the over-time series")
	fl.DurationVar(&f.timeout, "timeout", 0, "deadline of each request (0: none)")
	fl.IntVar(&f.maxInFlight, "max-inflight", 4096, "open loop: most requests outstanding at once")
	fl.IntVar(&f.connections, "connections", 1, "HTTP/2 connections to spread requests over")
	fl.Int64Var(&f.batch, "batch", 1, "batch size of generated inputs of batching models")
	fl.StringArrayVar(&f.shapes, "shape", nil, "[MODEL/]INPUT=D1,D2,...: full shape of a generated or raw input (repeatable)")
	fl.StringArrayVar(&f.inputs, "input", nil, "[MODEL/]INPUT=FILE: input data from a file (repeatable)")
	fl.StringArrayVar(&f.requests, "request", nil, "MODEL=FILE.json: a whole request in KServe v2 JSON (repeatable)")
	fl.IntVar(&f.variants, "variants", 16, "distinct generated requests per model to cycle through")
	fl.Uint64Var(&f.seed, "seed", 1, "seed for generated values and Poisson arrivals")
	fl.BoolVar(&f.useTLS, "tls", false, "connect with TLS")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "CA certificate (PEM) to verify the server with (implies --tls)")
	fl.StringVar(&f.tlsServerName, "tls-server-name", "", "server name to verify (implies --tls)")
	fl.BoolVar(&f.tlsSkipVerify, "tls-skip-verify", false, "do not verify the server certificate (implies --tls)")
	fl.StringVar(&f.out, "out", "", "write report.html, report.json, report.csv and PNG plots into this directory")
	fl.StringVar(&f.jsonOut, "json", "", "write the JSON result to this file")
	fl.StringVar(&f.csvOut, "csv", "", "write per-window CSV to this file")
	fl.StringVar(&f.htmlOut, "html", "", "write the HTML report to this file")
	fl.StringVar(&f.slo, "slo", "", "assertions such as 'p99<=20ms,errors<=0.1%,rps>=1000'; a violation exits 3")
	fl.BoolVar(&f.verify, "verify", false, "decode and check every response (costs generator CPU)")
	fl.BoolVar(&f.quiet, "quiet", false, "no live progress line")
	fl.StringVar(&f.transport, "transport", "h2", "h2 (tritongate's lean HTTP/2 gRPC client) or grpc (grpc-go)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the generator to this file")
	_ = fl.MarkHidden("cpuprofile")
	return cmd
}

// buildConfig turns flags into a run configuration (without requests).
func buildConfig(cmd *cobra.Command, f *runFlags) (loadtest.Config, []loadtest.SLO, error) {
	cfg := loadtest.Config{Warmup: f.warmup, Window: f.window, Timeout: f.timeout, Seed: f.seed, Verify: f.verify, MaxInFlight: f.maxInFlight, Transport: f.transport}
	usage := func(format string, args ...any) (loadtest.Config, []loadtest.SLO, error) {
		return cfg, nil, usageError{fmt.Errorf(format, args...)}
	}
	if f.target == "" {
		return usage("--target is required")
	}
	if f.transport != loadtest.TransportH2 && f.transport != loadtest.TransportGRPC {
		return usage("--transport must be h2 or grpc, got %q", f.transport)
	}
	if len(f.models) == 0 {
		return usage("at least one --model is required")
	}
	if f.connections < 1 || f.maxInFlight < 1 || f.variants < 1 || f.batch < 1 {
		return usage("--connections, --max-inflight, --variants and --batch must be >= 1")
	}
	if f.window <= 0 || f.duration <= 0 || f.stepDur <= 0 || f.warmup < 0 || f.timeout < 0 {
		return usage("durations must be positive")
	}
	cfg.Target = loadtest.Target{Address: f.target, Connections: f.connections, Headers: map[string]string{}}
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			k, v, ok = strings.Cut(h, "=")
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return usage("--header %q: want 'key: value'", h)
		}
		cfg.Target.Headers[k] = strings.TrimSpace(v)
	}
	if f.useTLS || f.tlsCA != "" || f.tlsServerName != "" || f.tlsSkipVerify {
		tc := &tls.Config{ServerName: f.tlsServerName, InsecureSkipVerify: f.tlsSkipVerify}
		if f.tlsCA != "" {
			pem, err := os.ReadFile(f.tlsCA)
			if err != nil {
				return cfg, nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return cfg, nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", f.tlsCA)
			}
			tc.RootCAs = pool
		}
		cfg.Target.TLS = tc
	}
	set := 0
	for _, s := range []bool{cmd.Flags().Changed("concurrency"), f.sweep != "", f.rate != "", f.ramp != "", f.steps != "", f.burst != ""} {
		if s {
			set++
		}
	}
	if set > 1 {
		return usage("choose one schedule: --concurrency, --sweep, --rate, --ramp, --steps or --burst")
	}
	cfg.Arrival = loadtest.Arrival(f.arrival)
	if cfg.Arrival != loadtest.Uniform && cfg.Arrival != loadtest.Poisson {
		return usage("--arrival must be uniform or poisson, got %q", f.arrival)
	}
	var err error
	switch {
	case f.sweep != "":
		cfg.Mode, cfg.StepDuration = loadtest.Sweep, f.stepDur
		if cfg.Levels, err = loadtest.ParseLevels(f.sweep); err != nil {
			return usage("--sweep: %v", err)
		}
	case f.rate != "":
		r, err := loadtest.ParseRate(f.rate)
		if err != nil {
			return usage("--rate: %v", err)
		}
		cfg.Mode, cfg.Profile = loadtest.OpenLoop, loadtest.Constant(r, f.duration)
	case f.ramp != "":
		a, b, ok := strings.Cut(f.ramp, ":")
		ra, err1 := loadtest.ParseRate(a)
		rb, err2 := loadtest.ParseRate(b)
		if !ok || err1 != nil || err2 != nil {
			return usage("--ramp %q: want FROM:TO requests/s, e.g. 100:2000", f.ramp)
		}
		cfg.Mode, cfg.Profile = loadtest.OpenLoop, loadtest.Ramp(ra, rb, f.duration)
	case f.steps != "":
		if cfg.Profile, err = loadtest.ParseSteps(f.steps); err != nil {
			return usage("--steps: %v", err)
		}
		cfg.Mode = loadtest.OpenLoop
	case f.burst != "":
		parts := strings.Split(f.burst, ":")
		if len(parts) != 4 {
			return usage("--burst %q: want BASE:FACTOR:AT:FOR, e.g. 200:10:20s:5s", f.burst)
		}
		base, err1 := loadtest.ParseRate(parts[0])
		factor, err2 := strconv.ParseFloat(parts[1], 64)
		at, err3 := time.ParseDuration(parts[2])
		length, err4 := time.ParseDuration(parts[3])
		if err := errors.Join(err1, err2, err3, err4); err != nil || factor < 0 || at < 0 || length <= 0 || at+length > f.duration {
			return usage("--burst %q: want BASE:FACTOR:AT:FOR with AT+FOR within --duration %s", f.burst, f.duration)
		}
		cfg.Mode, cfg.Profile = loadtest.OpenLoop, loadtest.Burst(base, factor, at, length, f.duration)
	default:
		cfg.Mode, cfg.Concurrency, cfg.Duration = loadtest.ClosedLoop, max(f.concurrency, 1), f.duration
		if cmd.Flags().Changed("concurrency") && f.concurrency < 1 {
			return usage("--concurrency must be >= 1")
		}
	}
	var slos []loadtest.SLO
	if f.slo != "" {
		if slos, err = loadtest.ParseSLOs(f.slo); err != nil {
			return usage("--slo: %v", err)
		}
	}
	return cfg, slos, nil
}

// modelArg splits NAME[:WEIGHT].
func modelArg(s string) (string, int, error) {
	name, w, ok := strings.Cut(s, ":")
	if name == "" {
		return "", 0, fmt.Errorf("--model %q: empty name", s)
	}
	if !ok {
		return name, 1, nil
	}
	weight, err := strconv.Atoi(w)
	if err != nil || weight < 1 {
		return "", 0, fmt.Errorf("--model %q: weight must be an integer >= 1", s)
	}
	return name, weight, nil
}

// perModel splits [MODEL/]KEY=VALUE arguments by model.
func perModel(flag string, vals []string, models []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, v := range vals {
		key, value, ok := strings.Cut(v, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("%s %q: want [MODEL/]NAME=VALUE", flag, v)
		}
		model := ""
		if m, k, ok := strings.Cut(key, "/"); ok {
			model, key = m, k
		} else if len(models) == 1 {
			model = models[0]
		} else {
			return nil, fmt.Errorf("%s %q: with several models, prefix the input with its model: MODEL/%s", flag, v, v)
		}
		if out[model] == nil {
			out[model] = map[string]string{}
		}
		out[model][key] = value
	}
	return out, nil
}

func parseShape(s string) ([]int64, error) {
	var out []int64
	for _, p := range strings.Split(s, ",") {
		d, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("dimension %q is not a non-negative integer", p)
		}
		out = append(out, d)
	}
	return out, nil
}

func runLoad(cmd *cobra.Command, f *runFlags) error {
	cfg, slos, err := buildConfig(cmd, f)
	if err != nil {
		return err
	}
	var names []string
	weights := map[string]int{}
	for _, m := range f.models {
		name, w, err := modelArg(m)
		if err != nil {
			return usageError{err}
		}
		if _, dup := weights[name]; dup {
			return usageError{fmt.Errorf("--model %s given twice", name)}
		}
		names = append(names, name)
		weights[name] = w
	}
	shapes, err := perModel("--shape", f.shapes, names)
	if err != nil {
		return usageError{err}
	}
	files, err := perModel("--input", f.inputs, names)
	if err != nil {
		return usageError{err}
	}
	requests := map[string]string{}
	for _, r := range f.requests {
		m, file, ok := strings.Cut(r, "=")
		if !ok || m == "" || file == "" {
			return usageError{fmt.Errorf("--request %q: want MODEL=FILE.json", r)}
		}
		requests[m] = file
	}
	for _, set := range []map[string]map[string]string{shapes, files} {
		for m := range set {
			if _, ok := weights[m]; !ok {
				return usageError{fmt.Errorf("input given for model %q, which is not a --model", m)}
			}
		}
	}
	conn, err := loadtest.Dial(cfg.Target)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := inference.NewGRPCInferenceServiceClient(conn)
	ctx := cmd.Context()
	for _, name := range names {
		spec := loadtest.InputSpec{Version: f.version, Batch: f.batch, Files: files[name], Request: requests[name], Variants: f.variants, Seed: f.seed, Shapes: map[string][]int64{}}
		for in, s := range shapes[name] {
			dims, err := parseShape(s)
			if err != nil {
				return usageError{fmt.Errorf("--shape %s/%s=%s: %v", name, in, s, err)}
			}
			spec.Shapes[in] = dims
		}
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		reqs, err := loadtest.BuildRequests(bctx, client, name, spec)
		cancel()
		if err != nil {
			return err
		}
		cfg.Workloads = append(cfg.Workloads, loadtest.Workload{Model: name, Weight: weights[name], Requests: reqs})
	}
	stderr := cmd.ErrOrStderr()
	var progress func(loadtest.Progress)
	if !f.quiet {
		tty := false
		if fd, ok := stderr.(interface{ Fd() uintptr }); ok {
			tty = term.IsTerminal(int(fd.Fd()))
		}
		progress = func(p loadtest.Progress) {
			line := fmt.Sprintf("[%s %3.0fs/%.0fs] sent %d  ok %d  errors %d  %.0f req/s  in flight %d",
				p.Phase, p.Elapsed.Seconds(), p.Total.Seconds(), p.Sent, p.OK, p.Errors, p.Rate, p.InFlight)
			if tty {
				fmt.Fprintf(stderr, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(stderr, line)
			}
		}
		defer func() {
			if tty {
				fmt.Fprintln(stderr)
			}
		}()
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := loadtest.Run(ctx, cfg, progress)
	if err != nil {
		return err
	}
	loadtest.WriteSummary(cmd.OutOrStdout(), res)
	if err := writeOutputs(res, f.out, f.jsonOut, f.csvOut, f.htmlOut); err != nil {
		return err
	}
	if f.out != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "report: %s/report.html\n", strings.TrimSuffix(f.out, "/"))
	}
	if vs := loadtest.Check(res.Summary, slos); len(vs) > 0 {
		for _, v := range vs {
			fmt.Fprintln(cmd.OutOrStdout(), v)
		}
		return codeError{exitSLOFailed}
	} else if len(slos) > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "all %d SLOs met\n", len(slos))
	}
	return nil
}

func writeOutputs(res *loadtest.Result, dir, jsonOut, csvOut, htmlOut string) error {
	if dir != "" {
		if _, err := loadtest.WriteReport(dir, res); err != nil {
			return err
		}
	}
	write := func(path string, fn func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := write(jsonOut, func(w io.Writer) error { return loadtest.WriteJSON(w, res) }); err != nil {
		return err
	}
	if err := write(csvOut, func(w io.Writer) error { return loadtest.WriteCSV(w, res) }); err != nil {
		return err
	}
	return write(htmlOut, func(w io.Writer) error {
		imgs, err := loadtest.Plots(res)
		if err != nil {
			return err
		}
		return loadtest.WriteHTML(w, res, imgs)
	})
}

func newCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Compare two runs side by side",
		Long:  "Print the summary metrics of two JSON results side by side, with the change from A to B (marked better or worse beyond 5%).",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError{fmt.Errorf("compare needs two JSON results, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := loadtest.ReadJSON(args[0])
			if err != nil {
				return err
			}
			b, err := loadtest.ReadJSON(args[1])
			if err != nil {
				return err
			}
			loadtest.WriteComparison(cmd.OutOrStdout(), a, b)
			return nil
		},
	}
}

func newReportCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "report RESULT.json --out DIR",
		Short: "Render the HTML report and plots of a JSON result again",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("report needs one JSON result, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("--out is required")}
			}
			res, err := loadtest.ReadJSON(args[0])
			if err != nil {
				return err
			}
			if _, err := loadtest.WriteReport(out, res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "report: %s/report.html\n", strings.TrimSuffix(out, "/"))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the report into")
	return cmd
}
