// Command syncer puts the models of one Triton pool in place: it reads the
// catalog, fetches the wanted versions from S3, the MLflow registry or a
// local folder into Triton's model repository (verified, atomically), loads
// them in Triton (explicit model control), waits for them, warms them up and
// removes the versions no longer wanted. `syncer init` runs once (an init
// container); `syncer watch` keeps reconciling (a sidecar). See docs/syncer.md.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tritongate/tritongate/internal/catalog"
	"github.com/tritongate/tritongate/internal/modelrepo"
	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/local"
	"github.com/tritongate/tritongate/internal/source/mlflow"
	s3src "github.com/tritongate/tritongate/internal/source/s3"
	"github.com/tritongate/tritongate/internal/syncer"
	"github.com/tritongate/tritongate/internal/triton"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// flags shared by init and watch.
type flags struct {
	catalog, pool, repository, staging, tritonAddr string
	parallel, concurrency, gpus                    int
	partSize                                       int64
	s3Endpoint, s3Region                           string
	s3PathStyle, allowRefused                      bool
	logLevel, progress                             string
	tritonWait, timeout, interval, poll, retry     time.Duration
	listen                                         string
	cmd                                            string // init or watch
}

func run(args []string, stdout, stderr io.Writer) int {
	var f flags
	root := &cobra.Command{
		Use:   "syncer",
		Short: "Put a Triton pool's models in place from S3, MLflow or a folder, and keep them there",
		Long: `syncer reads the catalog (a YAML file or an s3:// object, see docs/catalog.md) and
puts the models of one pool in place in Triton's model repository: each wanted
version is downloaded into a staging directory on the same filesystem, verified
(digests, the ONNX model, the generated config.pbtxt checked as Triton would load
it), fsynced and renamed into place; Triton (explicit model control) loads the new
versions next to the old ones, the syncer waits until they are ready, warms them
up, and only then unloads and deletes the versions no longer wanted.

  syncer init   once, for an init container: exits 0 when every model is in place,
                non-zero with one line per model that is not
  syncer watch  for a sidecar: reconciles on every catalog change and every
                --interval; serves /status, /readyz and /metrics on --listen`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&f.catalog, "catalog", "", "the catalog: a YAML file or s3://bucket/key (required)")
	pf.StringVar(&f.pool, "pool", "", "the pool this syncer serves (required)")
	pf.StringVar(&f.repository, "repository", "/mnt/models", "Triton's model repository")
	pf.StringVar(&f.staging, "staging", "", "staging directory on the repository's filesystem, outside it (default: a hidden sibling of --repository)")
	pf.StringVar(&f.tritonAddr, "triton", "localhost:8001", "Triton's gRPC address, or none to only publish files")
	pf.IntVar(&f.parallel, "parallel", 4, "models fetched and loaded at once (models needing nothing are checked 32 at a time)")
	pf.IntVar(&f.concurrency, "concurrency", 16, "parallel S3 requests per version")
	f.partSize = 8 << 20
	pf.Var((*byteSize)(&f.partSize), "part-size", "objects larger than this are fetched as parallel ranged GETs of this size (bytes, or with KiB, MiB, GiB)")
	pf.IntVar(&f.gpus, "gpus", pbtxt.AnyGPUs, "GPUs the configs are checked against (-1: not checked)")
	pf.StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3-compatible endpoint URL (overrides the catalog's s3.endpoint)")
	pf.StringVar(&f.s3Region, "s3-region", "", "S3 region (overrides the catalog's s3.region)")
	pf.BoolVar(&f.s3PathStyle, "s3-path-style", false, "path-style S3 addressing (S3-compatible servers)")
	pf.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (JSON logs on stderr)")
	pf.StringVar(&f.progress, "progress", "auto", "download progress: bars, log or auto (bars on a terminal)")
	pf.DurationVar(&f.tritonWait, "triton-wait", 5*time.Minute, "how long to wait for Triton to come up")

	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Put the pool's models in place once, then exit (0: all in place)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.cmd = "init"
			return runInit(cmd.Context(), f, stderr)
		},
	}
	initCmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Minute, "give up after this long")
	initCmd.Flags().DurationVar(&f.retry, "retry", 10*time.Second, "wait between attempts while models are not in place")
	initCmd.Flags().BoolVar(&f.allowRefused, "allow-refused", false, "exit 0 once every model is in place except those whose versions are refused (not a valid model, or a config Triton would refuse: retrying cannot help until the source or the catalog changes); they are logged. Default: those fail the init like any model not in place")
	watchCmd := &cobra.Command{
		Use:   "watch",
		Short: "Keep the pool's models in place: reconcile on catalog changes and every --interval",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.cmd = "watch"
			return runWatch(cmd.Context(), f, stderr)
		},
	}
	watchCmd.Flags().DurationVar(&f.interval, "interval", time.Minute, "reconcile at least this often (aliases and latest versions move at the source)")
	watchCmd.Flags().DurationVar(&f.poll, "catalog-poll", 15*time.Second, "how often an s3:// catalog is checked for changes (files are watched)")
	watchCmd.Flags().StringVar(&f.listen, "listen", ":8090", "HTTP address for /status, /readyz, /livez and /metrics")
	root.AddCommand(initCmd, watchCmd)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "syncer: %v\n", err)
		return 1
	}
	return 0
}

// byteSize is a flag of bytes: "8388608", "8MiB", "512KiB", "1GiB" (K, M,
// G are taken as KiB, MiB, GiB).
type byteSize int64

func (b *byteSize) String() string {
	v := int64(*b)
	for _, u := range []struct {
		s string
		n int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.n && v%u.n == 0 {
			return strconv.FormatInt(v/u.n, 10) + u.s
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return fmt.Errorf("want a positive size such as 8MiB or 8388608")
	}
	*b = byteSize(n * mult)
	return nil
}

func (b *byteSize) Type() string { return "size" }

// app is what both commands build.
type app struct {
	reader   syncer.CatalogReader
	repo     *modelrepo.Repo
	triton   *triton.Client
	syncer   *syncer.Syncer
	reg      *prometheus.Registry
	log      *slog.Logger
	closeAll func()
}

func (f flags) check() error {
	switch {
	case f.catalog == "":
		return errors.New("--catalog is required (a YAML file or s3://bucket/key)")
	case f.pool == "":
		return errors.New("--pool is required (the pool this syncer serves, e.g. cpu)")
	case f.parallel < 1:
		return fmt.Errorf("--parallel %d: must be at least 1", f.parallel)
	case f.concurrency < 1:
		return fmt.Errorf("--concurrency %d: must be at least 1", f.concurrency)
	case f.partSize < 64<<10:
		return fmt.Errorf("--part-size %d: must be at least 64KiB", f.partSize)
	case f.gpus < -1:
		return fmt.Errorf("--gpus %d: a number of GPUs, or -1 for not checked", f.gpus)
	case f.tritonWait <= 0:
		return fmt.Errorf("--triton-wait %v: must be positive", f.tritonWait)
	}
	switch f.progress {
	case "auto", "bars", "log":
	default:
		return fmt.Errorf("--progress %q: bars, log or auto", f.progress)
	}
	// The command's own durations (zero when the command has no such flag).
	for _, d := range []struct {
		name string
		v    time.Duration
		set  bool
	}{{"--timeout", f.timeout, f.cmd == "init"}, {"--retry", f.retry, f.cmd == "init"},
		{"--interval", f.interval, f.cmd == "watch"}, {"--catalog-poll", f.poll, f.cmd == "watch"}} {
		if d.set && d.v <= 0 {
			return fmt.Errorf("%s %v: must be positive", d.name, d.v)
		}
	}
	return nil
}

func setup(ctx context.Context, f flags, stderr io.Writer) (*app, *catalog.Catalog, error) {
	if err := f.check(); err != nil {
		return nil, nil, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: debug, info, warn or error", f.logLevel)
	}
	base := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	log := base.With("pool", f.pool)
	a := &app{log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// An s3:// catalog is read with the flags' and the environment's S3
	// settings; model sources use the flags over the catalog's s3: block,
	// as it is at each reconcile (a client per distinct setting).
	// Up to --parallel versions download at once, --concurrency requests each.
	flagOpts := s3src.ClientOptions{Endpoint: f.s3Endpoint, Region: f.s3Region, PathStyle: f.s3PathStyle, MaxConns: f.parallel*f.concurrency + 8}
	if strings.HasPrefix(f.catalog, "s3://") {
		c, err := s3src.NewClient(ctx, flagOpts)
		if err != nil {
			return nil, nil, err
		}
		a.reader = &s3Catalog{uri: f.catalog, client: c}
	} else {
		a.reader = fileCatalog(f.catalog)
	}
	data, _, err := a.reader.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	cat, err := catalog.Parse(a.reader.Name(), data)
	if err != nil {
		return nil, nil, err
	}
	if err := cat.CheckPool(f.pool); err != nil {
		return nil, nil, fmt.Errorf("--pool: %w", err)
	}

	repo, err := modelrepo.Open(f.repository, f.staging)
	if err != nil {
		return nil, nil, err
	}
	a.repo = repo
	if f.tritonAddr != "none" {
		a.triton, err = triton.Dial(f.tritonAddr, triton.Timeouts{})
		if err != nil {
			repo.Close()
			return nil, nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, f.tritonWait)
		err = a.triton.WaitLive(wctx)
		cancel()
		if err != nil {
			repo.Close()
			return nil, nil, fmt.Errorf("Triton at %s: %w", f.tritonAddr, err)
		}
	}
	s3Retries := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncer_s3_retries_total",
		Help: "S3 requests retried after a transient failure (throttling, 5xx, timeouts, cut bodies), by action."}, []string{"action"})
	a.reg.MustRegister(s3Retries)
	var storeMu sync.Mutex // sources are made from parallel model workers
	stores := map[s3src.ClientOptions]*s3src.Store{}
	storeWith := func(o s3src.ClientOptions) (*s3src.Store, error) {
		storeMu.Lock()
		defer storeMu.Unlock()
		if st := stores[o]; st != nil {
			return st, nil
		}
		cl, err := s3src.NewClient(ctx, o)
		if err != nil {
			return nil, err
		}
		st := s3src.NewStore(s3src.Options{Client: cl, Concurrency: f.concurrency, PartSize: f.partSize, Logger: log,
			OnRetry: func(action string) { s3Retries.WithLabelValues(action).Inc() }})
		stores[o] = st
		return st, nil
	}
	// S3 model sources: the flags over the catalog's s3: block, as it is at
	// each reconcile (a client per distinct setting).
	s3Opts := func(c *catalog.Catalog) s3src.ClientOptions {
		o := flagOpts
		if o.Endpoint == "" {
			o.Endpoint = c.S3.Endpoint
		}
		if o.Region == "" {
			o.Region = c.S3.Region
		}
		o.PathStyle = o.PathStyle || c.S3.PathStyle
		return o
	}
	// s3:// artifacts of MLflow versions: MLflow's own S3 settings
	// (MLFLOW_S3_ENDPOINT_URL, ...) come before the catalog's, as they do
	// for MLflow's client; the flags before both.
	mlflowS3, err := mlflow.S3SettingsFromEnv(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	mlflowOpts := func(c *catalog.Catalog) s3src.ClientOptions {
		o := s3Opts(c)
		if f.s3Endpoint == "" && mlflowS3.Endpoint != "" {
			o.Endpoint = mlflowS3.Endpoint
			o.PathStyle = f.s3PathStyle || mlflowS3.PathStyle
		}
		o.InsecureTLS = mlflowS3.IgnoreTLS
		return o
	}
	mlflowEnv, err := mlflow.OptionsFromEnv(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	// One MLflow client per server (its connections are reused by every
	// model and every reconcile).
	mlflows := map[[2]string]*mlflow.Client{}
	mlflowFor := func(o mlflow.Options) (*mlflow.Client, error) {
		storeMu.Lock()
		defer storeMu.Unlock()
		key := [2]string{o.BaseURL, o.RegistryURL}
		if cl := mlflows[key]; cl != nil {
			return cl, nil
		}
		cl, err := mlflow.New(o)
		if err != nil {
			return nil, err
		}
		mlflows[key] = cl
		return cl, nil
	}
	sources := func(c *catalog.Catalog, m *catalog.Model) (source.Source, error) {
		kind, where, err := catalog.SourceOf(m.Source)
		if err != nil {
			return nil, err
		}
		switch kind {
		case catalog.S3:
			st, err := storeWith(s3Opts(c))
			if err != nil {
				return nil, err
			}
			return st.Model(where)
		case catalog.MLflow:
			o := mlflowEnv
			if c.MLflow.TrackingURI != "" {
				o.BaseURL = c.MLflow.TrackingURI
			}
			if c.MLflow.RegistryURI != "" {
				o.RegistryURL = c.MLflow.RegistryURI
			}
			cl, err := mlflowFor(o)
			if err != nil {
				return nil, err
			}
			// The S3 client is made when a version's artifacts are in S3:
			// versions behind the artifacts proxy need no AWS settings.
			objects := &lazyStore{get: func() (*s3src.Store, error) { return storeWith(mlflowOpts(c)) }}
			return mlflow.NewSource(cl, where, objects), nil
		default:
			return local.New(where), nil
		}
	}
	var progress syncer.Progress
	closeProgress := func() {}
	useBars := f.progress == "bars" || (f.progress == "auto" && isTerminal(stderr))
	if useBars {
		b := newBars(stderr)
		progress, closeProgress = b, b.Wait
	} else {
		lp := newLogProgress(log, 5*time.Second)
		progress, closeProgress = lp, lp.Close
	}
	a.syncer = syncer.New(syncer.Options{Pool: f.pool, Repo: repo, Triton: a.triton, Sources: sources, Parallel: f.parallel,
		GPUs: f.gpus, Progress: progress, Logger: base, Registerer: a.reg}) // the syncer adds the pool
	a.closeAll = func() {
		closeProgress()
		if a.triton != nil {
			a.triton.Close()
		}
		repo.Close()
	}
	return a, cat, nil
}

// lazyStore is an mlflow.ObjectStore whose S3 client is made at first use.
type lazyStore struct {
	get func() (*s3src.Store, error)
}

func (l *lazyStore) Files(ctx context.Context, uri string, skip func(string) bool) ([]source.File, error) {
	st, err := l.get()
	if err != nil {
		return nil, fmt.Errorf("the artifacts are in S3 (%s): %w", uri, err)
	}
	return st.Files(ctx, uri, skip)
}

func (l *lazyStore) FetchFiles(ctx context.Context, files []source.File, dir string, progress func(int64)) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.FetchFiles(ctx, files, dir, progress)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func runInit(ctx context.Context, f flags, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	a, cat, err := setup(ctx, f, stderr)
	if err != nil {
		return err
	}
	defer a.closeAll()
	res := a.syncer.Init(ctx, cat, f.retry, f.allowRefused)
	if !res.OK() && f.allowRefused && res.OnlyRefused() {
		for name, err := range res.Failed {
			a.log.Warn("model refused, not in place (--allow-refused)", "model", name, "error", err)
		}
		a.log.Info("every other model in place", "models", res.Models, "refused", len(res.Failed))
		return nil
	}
	if !res.OK() {
		return fmt.Errorf("%d of %d models of pool %s not in place:\n%w", len(res.Failed), res.Models, f.pool, res.Err())
	}
	a.log.Info("every model in place", "models", res.Models)
	return nil
}

func runWatch(ctx context.Context, f flags, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	// Listening first: /livez answers while the syncer waits for Triton
	// (a liveness probe must not kill it then); /readyz says 503.
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	var handler atomic.Pointer[http.Handler]
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/livez" {
			w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "starting: reading the catalog and waiting for Triton", http.StatusServiceUnavailable)
	})}
	go srv.Serve(lis)
	defer srv.Close()
	a, _, err := setup(ctx, f, stderr)
	if err != nil {
		return err
	}
	defer a.closeAll()
	h := a.syncer.Handler(a.reg, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	handler.Store(&h)
	trigger := make(chan struct{}, 1)
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer func() { signal.Stop(hup); close(hup) }() // ends the goroutine below
	force := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case force <- struct{}{}:
			default:
			}
		}
	}()
	poll := f.poll
	if fc, ok := a.reader.(fileCatalog); ok {
		if w, err := fsnotify.NewWatcher(); err == nil {
			defer w.Close()
			if err := w.Add(filepath.Dir(string(fc))); err == nil {
				go func() {
					// Only the catalog file itself (or the ..data link a
					// ConfigMap mount swaps): a log or any other file
					// written in the same folder is no reason to look.
					for ev := range w.Events {
						if catalogEvent(string(fc), ev) {
							poke()
						}
					}
				}()
				go func() {
					// Drained, or the watcher stops at its first error.
					for err := range w.Errors {
						a.log.Warn("watching the catalog file (it is polled too)", "error", err)
						poke()
					}
				}()
			}
		}
	}
	a.log.Info("watching", "catalog", a.reader.Name(), "listen", lis.Addr().String(), "interval", f.interval.String())
	return a.syncer.Watch(ctx, a.reader, f.interval, poll, trigger, force)
}

// catalogEvent reports whether a change notification in the catalog's
// folder concerns the catalog: the file itself (written, replaced, renamed
// over, removed) or Kubernetes' "..data" symlink, which a ConfigMap or
// Secret mount swaps atomically on every update.
func catalogEvent(catalog string, ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Base(ev.Name)
	return name == filepath.Base(catalog) || name == "..data"
}

// fileCatalog reads the catalog from a file (a ConfigMap mount).
type fileCatalog string

func (p fileCatalog) Name() string { return string(p) }

func (p fileCatalog) Read(context.Context) ([]byte, string, error) {
	b, err := os.ReadFile(string(p))
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// maxCatalog bounds a catalog document.
const maxCatalog = 16 << 20

// s3Catalog reads the catalog from an S3 object; its ETag tells changes:
// each poll is a HEAD, and the object is read only when its ETag moved.
type s3Catalog struct {
	uri      string
	client   *awss3.Client
	lastTag  string
	lastData []byte
}

func (s *s3Catalog) Name() string { return s.uri }

func (s *s3Catalog) Read(ctx context.Context) ([]byte, string, error) {
	bucket, key, err := s3src.ParseURI(s.uri)
	if err != nil {
		return nil, "", err
	}
	key = strings.TrimSuffix(key, "/")
	if s.lastTag != "" {
		head, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			return nil, "", fmt.Errorf("reading the catalog %s: %w", s.uri, err)
		}
		if head.ETag != nil && *head.ETag == s.lastTag {
			return s.lastData, s.lastTag, nil // unchanged
		}
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, "", fmt.Errorf("reading the catalog %s: %w", s.uri, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxCatalog+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading the catalog %s: %w", s.uri, err)
	}
	if len(b) > maxCatalog {
		// Never a truncated catalog: the models it would drop would be removed.
		return nil, "", fmt.Errorf("the catalog %s is larger than %d MiB", s.uri, maxCatalog>>20)
	}
	tag := ""
	if out.ETag != nil {
		tag = *out.ETag
	}
	s.lastTag, s.lastData = tag, b
	return b, tag, nil
}
