// Package syncer reconciles one Triton pool with the catalog: for every
// model the pool serves it resolves the versions wanted (numbers, aliases,
// latest N), fetches the missing ones into staging, verifies them (digests,
// the ONNX model, the generated config.pbtxt validated as Triton would load
// it), publishes them atomically, loads them in Triton (explicit mode) while
// the old versions keep serving, waits for per-version readiness, warms them
// up, marks them routable, and only then unloads and deletes the versions no
// longer wanted. One worker per model, several models in parallel; a model
// that fails does not hold up the others, and whatever it served before
// keeps serving.
package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/catalog"
	"github.com/tritongate/tritongate/internal/modelrepo"
	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/triton"
	"github.com/tritongate/tritongate/proto/inference"
)

// SourceFor returns the source of a model's versions.
type SourceFor func(c *catalog.Catalog, m *catalog.Model) (source.Source, error)

// Progress reports downloads (a terminal progress bar, or log lines).
type Progress interface {
	// Start announces a download of total bytes; the returned functions
	// report bytes as they arrive and the end.
	Start(model string, version int64, total int64) (add func(int64), done func(error))
}

// Options are the syncer's dependencies.
type Options struct {
	// Pool is the pool this syncer serves (the catalog's models with it).
	Pool string
	Repo *modelrepo.Repo
	// Triton is the server to load into; nil only publishes (no loading).
	Triton  *triton.Client
	Sources SourceFor
	// Parallel is how many models are fetched and loaded at once (default
	// 4). Checking models that need nothing is cheap and runs wider
	// (CheckParallel).
	Parallel int
	// CheckParallel is how many models are checked at once: listed at
	// their source and compared with what is in place (default 32).
	CheckParallel int
	// GPUs is the number of GPUs configs are checked against (pbtxt.AnyGPUs
	// for unknown; 0 for a CPU pool).
	GPUs     int
	Progress Progress
	Logger   *slog.Logger
	// Registerer for the syncer's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Syncer reconciles a pool.
type Syncer struct {
	o   Options
	log *slog.Logger
	m   *metrics

	heavy chan struct{} // Parallel slots for fetching and loading
	// refused remembers versions that failed verification, by model,
	// version, source digest and catalog digest: the same bytes under the
	// same catalog would fail again, so they are not downloaded again.
	refused map[string]error
	// warm records the versions this process saw ready and warmed up
	// (model/version/digest); after a restart each is warmed up again.
	warm map[string]bool
	// configs caches each model's config (see config).
	configs map[string]cachedConfig

	mu     sync.Mutex
	status Status
}

// New makes a syncer.
func New(o Options) *Syncer {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.CheckParallel <= 0 {
		o.CheckParallel = 32
	}
	o.CheckParallel = max(o.CheckParallel, o.Parallel)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	s := &Syncer{o: o, log: o.Logger.With("pool", o.Pool), m: newMetrics(o.Registerer), heavy: make(chan struct{}, o.Parallel), refused: map[string]error{}, warm: map[string]bool{}, configs: map[string]cachedConfig{}}
	s.status = Status{Pool: o.Pool, Models: map[string]*ModelStatus{}}
	return s
}

// acquire takes one of the Parallel slots for heavy work (a download, a
// load and warm-up).
func (s *Syncer) acquire(ctx context.Context) (release func(), err error) {
	select {
	case s.heavy <- struct{}{}:
		return func() { <-s.heavy }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type noProgress struct{}

func (noProgress) Start(string, int64, int64) (func(int64), func(error)) {
	return func(int64) {}, func(error) {}
}

// Result is the outcome of one reconcile.
type Result struct {
	// Failed maps each model that is not fully in place to why.
	Failed map[string]error
	// Models is how many models the pool serves.
	Models int
	// Refused is set when the catalog was not applied at all (it does not
	// know the pool): nothing was changed.
	Refused error
}

// OK reports whether every model is in place.
func (r Result) OK() bool { return len(r.Failed) == 0 && r.Refused == nil }

// OnlyRefused reports whether every model not in place failed only because
// a version it wants was refused (not a valid model, a config Triton would
// refuse): retrying cannot help until its files at the source or the
// catalog change. Transient failures (the source, Triton) are not.
func (r Result) OnlyRefused() bool {
	if r.Refused != nil {
		return false
	}
	for _, err := range r.Failed {
		if !allRefused(err) {
			return false
		}
	}
	return true
}

// refusal marks a version refused by verification.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// allRefused reports whether every failure err holds (errors.Join'ed or
// wrapped) is a refusal.
func allRefused(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case refusal:
		return true
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		if len(errs) == 0 {
			return false
		}
		for _, x := range errs {
			if !allRefused(x) {
				return false
			}
		}
		return true
	case interface{ Unwrap() error }:
		return allRefused(e.Unwrap())
	}
	return false
}

// Err summarises the failures, one line per model.
func (r Result) Err() error {
	if r.OK() {
		return nil
	}
	if r.Refused != nil {
		return r.Refused
	}
	names := make([]string, 0, len(r.Failed))
	for n := range r.Failed {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = fmt.Errorf("model %s: %w", n, r.Failed[n])
	}
	return errors.Join(errs...)
}

// Reconcile brings the pool in line with the catalog once.
func (s *Syncer) Reconcile(ctx context.Context, c *catalog.Catalog) Result {
	start := time.Now()
	models := c.ForPool(s.o.Pool)
	res := Result{Failed: map[string]error{}, Models: len(models)}
	if err := c.CheckPool(s.o.Pool); err != nil {
		res.Refused = err
		s.log.Error("catalog refused: nothing changed", "error", err)
		return res
	}
	var loaded map[string]map[int64]string
	if s.o.Triton != nil {
		idx, err := s.o.Triton.Index(ctx)
		if err != nil {
			for _, m := range models {
				res.Failed[m.Name] = err
			}
			s.finish(c, res, start)
			return res
		}
		loaded = map[string]map[int64]string{}
		for _, v := range idx {
			if loaded[v.Model] == nil {
				loaded[v.Model] = map[int64]string{}
			}
			loaded[v.Model][v.Version] = v.State
		}
	}
	inv, err := s.o.Repo.Inventory()
	if err != nil {
		for _, m := range models {
			res.Failed[m.Name] = err
		}
		s.finish(c, res, start)
		return res
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.o.CheckParallel)
	for _, m := range models {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := s.reconcileModel(ctx, c, m, inv[m.Name], loaded[m.Name])
			if err != nil {
				mu.Lock()
				res.Failed[m.Name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	// Models of ours the catalog no longer has for this pool.
	wanted := map[string]bool{}
	for _, m := range models {
		wanted[m.Name] = true
	}
	for name, im := range inv {
		if wanted[name] || !ours(im) {
			continue
		}
		if err := s.removeModel(ctx, name); err != nil {
			res.Failed[name] = err
		}
	}
	s.gcStages(ctx, res)
	s.finish(c, res, start)
	return res
}

// serves reports whether a model has a version routable (or, publishing
// only, published).
func (s *Syncer) serves(ms *ModelStatus) bool {
	if ms == nil {
		return false
	}
	for _, vs := range ms.Versions {
		if vs.State == "routable" || (s.o.Triton == nil && vs.State == "published") {
			return true
		}
	}
	return false
}

// ours reports whether the syncer published any version of a model.
func ours(m *modelrepo.Model) bool {
	for _, v := range m.Versions {
		if v.Marker != nil {
			return true
		}
	}
	return false
}

func (s *Syncer) finish(c *catalog.Catalog, res Result, start time.Time) {
	d := time.Since(start)
	result := "ok"
	if !res.OK() {
		result = "error"
	}
	s.m.reconciles.WithLabelValues(result).Inc()
	s.m.reconcileSeconds.Observe(d.Seconds())
	if res.OK() {
		s.m.lastSuccess.SetToCurrentTime()
	}
	s.mu.Lock()
	s.status.Catalog = c.Name
	s.status.CatalogDigest = c.Digest
	s.status.LastReconcile = time.Now().UTC()
	s.status.LastDuration = d.String()
	s.status.InSync = res.OK()
	wanted := map[string]bool{}
	for _, m := range c.ForPool(s.o.Pool) {
		wanted[m.Name] = true
	}
	var gone []string
	for name := range s.status.Models {
		if !wanted[name] {
			delete(s.status.Models, name)
			delete(s.configs, name)
			gone = append(gone, name)
		}
	}
	// Ready: every model of the pool has a version in service (a failed
	// rollout or a source outage leaves the previous version serving, and
	// the pod serving it).
	ready := res.Refused == nil
	for name := range wanted {
		if !s.serves(s.status.Models[name]) {
			ready = false
		}
	}
	s.status.Ready = ready
	s.mu.Unlock()
	for _, name := range gone {
		s.m.routable.DeletePartialMatch(prometheus.Labels{"model": name})
	}
	if res.OK() {
		s.log.Info("reconciled", "models", res.Models, "duration", d.Round(time.Millisecond).String())
	} else {
		s.log.Warn("reconciled with errors", "models", res.Models, "failed", len(res.Failed), "duration", d.Round(time.Millisecond).String())
	}
}

// reconcileModel puts one model's wanted versions in place.
func (s *Syncer) reconcileModel(ctx context.Context, c *catalog.Catalog, m *catalog.Model, have *modelrepo.Model, loaded map[int64]string) (err error) {
	log := s.log.With("model", m.Name)
	ms := s.modelStatus(m.Name)
	defer func() {
		s.mu.Lock()
		ms.LastSync = time.Now().UTC()
		if err != nil {
			ms.Error = err.Error()
			ms.State = "error"
		} else {
			ms.Error = ""
			ms.State = "ready"
		}
		s.mu.Unlock()
		if err != nil {
			log.Warn("model not in place", "error", err)
		}
	}()
	src, err := s.o.Sources(c, m)
	if err != nil {
		s.m.errors.WithLabelValues(m.Name, "source").Inc()
		return err
	}
	published := map[int64]*modelrepo.Marker{}
	var replaced []int64 // published from another source: fetched again
	oldSource := map[int64]*modelrepo.Marker{}
	if have != nil {
		for _, v := range have.Versions {
			switch {
			case v.Marker == nil:
			case v.Marker.Source != "" && v.Marker.Source != m.Source:
				replaced = append(replaced, v.Number)
				oldSource[v.Number] = v.Marker
			default:
				published[v.Number] = v.Marker
			}
		}
	}
	want, err := s.resolve(ctx, src, m, published)
	if err != nil {
		s.m.errors.WithLabelValues(m.Name, "resolve").Inc()
		return err
	}
	s.setWanted(ms, want)

	// Fetch, verify and publish what is missing, Parallel models at a time.
	for _, v := range want {
		if mk := published[v]; mk != nil {
			continue // versions are immutable: a marker means it is here
		}
		release, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		mk, err := s.fetch(ctx, c, m, src, v)
		release()
		if err != nil {
			return err // sources name the version and the object
		}
		published[v] = mk
		s.m.published.Inc()
	}

	if len(replaced) > 0 {
		// Triton holds the other source's bytes for these: reload the ones
		// fetched again; the others go like any version no longer wanted.
		loaded = maps.Clone(loaded)
		for _, v := range replaced {
			if slices.Contains(want, v) {
				delete(loaded, v)
			} else {
				published[v] = oldSource[v]
			}
		}
	}

	cfg, err := s.config(c, m, want, published)
	if err != nil {
		s.m.errors.WithLabelValues(m.Name, "config").Inc()
		return err
	}
	if s.o.Triton == nil {
		if _, err := s.writeConfig(m.Name, cfg, want); err != nil {
			return err
		}
		return s.removeVersions(ctx, m.Name, want, published)
	}
	return s.load(ctx, m, cfg, want, published, loaded, log)
}

// resolve turns the version spec into numbers. Explicit numbers need no
// call to the source.
func (s *Syncer) resolve(ctx context.Context, src source.Source, m *catalog.Model, published map[int64]*modelrepo.Marker) ([]int64, error) {
	set := map[int64]bool{}
	for _, n := range m.Versions.Numbers {
		set[n] = true
	}
	for _, a := range m.Versions.Aliases {
		n, err := src.Alias(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("alias %s: %w", a, err)
		}
		set[n] = true
	}
	if k := m.Versions.Latest; k > 0 {
		all, err := src.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing versions: %w", err)
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("the source has no versions: %w", source.ErrNotFound)
		}
		slices.Sort(all)
		for _, n := range all[max(0, len(all)-k):] {
			set[n] = true
		}
	}
	out := make([]int64, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// fetch downloads, verifies and publishes one version.
func (s *Syncer) fetch(ctx context.Context, c *catalog.Catalog, m *catalog.Model, src source.Source, v int64) (*modelrepo.Marker, error) {
	s.setVersion(m.Name, v, "describing", nil)
	desc, err := src.Describe(ctx, v)
	if err != nil {
		s.m.errors.WithLabelValues(m.Name, "describe").Inc()
		s.setVersion(m.Name, v, "error", err)
		return nil, err
	}
	refusedKey := fmt.Sprintf("%s/%d/%s/%s", m.Name, v, desc.Digest, c.Digest)
	s.mu.Lock()
	prev := s.refused[refusedKey]
	s.mu.Unlock()
	if prev != nil {
		s.setVersion(m.Name, v, "error", prev)
		return nil, prev // not downloaded again: publish a new version or change the catalog
	}
	st, err := s.o.Repo.Stage(m.Name, v, desc.Digest)
	if err != nil {
		return nil, err
	}
	s.setVersion(m.Name, v, "downloading", nil)
	add, done := s.o.Progress.Start(m.Name, v, desc.Size())
	start := time.Now()
	err = src.Fetch(ctx, desc, st.VersionDir, func(n int64) {
		add(n)
		s.m.bytes.Add(float64(n))
	})
	done(err)
	if err != nil {
		s.m.errors.WithLabelValues(m.Name, "fetch").Inc()
		s.setVersion(m.Name, v, "error", err)
		if errors.Is(err, source.ErrDigestMismatch) {
			s.o.Repo.Discard(st) // bad bytes: start over next time
		}
		return nil, err
	}
	s.m.fetchSeconds.Observe(time.Since(start).Seconds())
	s.setVersion(m.Name, v, "verifying", nil)
	if err := s.verify(c, m, st); err != nil {
		err = fmt.Errorf("version %d (%s): %w", v, desc.Origin, err)
		s.m.errors.WithLabelValues(m.Name, "verify").Inc()
		s.setVersion(m.Name, v, "error", err)
		s.o.Repo.Discard(st)
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			// The model or its config is refused (a local disk error is
			// not the version's fault: tried again next time).
			err = refusal{err}
			s.mu.Lock()
			s.refused[refusedKey] = err
			s.mu.Unlock()
		}
		return nil, err
	}
	mk := modelrepo.Marker{Origin: desc.Origin, Source: m.Source, Files: desc.Files}
	if err := s.o.Repo.Publish(st, mk); err != nil {
		s.setVersion(m.Name, v, "error", err)
		return nil, err
	}
	s.setVersion(m.Name, v, "published", nil)
	s.log.Info("version published", "model", m.Name, "version", v, "bytes", desc.Size(), "origin", desc.Origin, "duration", time.Since(start).Round(time.Millisecond).String())
	return s.o.Repo.Marker(m.Name, v)
}

// verify checks a staged version as Triton would load it: the config
// generated for it (or shipped with it) completes and validates against
// the model file.
func (s *Syncer) verify(c *catalog.Catalog, m *catalog.Model, st *modelrepo.Stage) error {
	cfg, err := s.baseConfig(c, m, st.VersionDir)
	if err != nil {
		return err
	}
	cfg.VersionPolicy = &inference.ModelVersionPolicy{PolicyChoice: &inference.ModelVersionPolicy_All_{All: &inference.ModelVersionPolicy_All{}}}
	if err := os.WriteFile(filepath.Join(st.ModelDir, pbtxt.ConfigFile), pbtxt.Format(cfg), 0o644); err != nil {
		return err
	}
	dir, err := pbtxt.ReadModelDir(st.ModelDir)
	if err != nil {
		return err
	}
	if _, ps := pbtxt.Complete(dir, s.server()); len(ps) > 0 {
		return fmt.Errorf("Triton would not load it: %w", ps)
	}
	return os.Remove(filepath.Join(st.ModelDir, pbtxt.ConfigFile))
}

func (s *Syncer) server() pbtxt.Server {
	srv := pbtxt.DefaultServer()
	srv.GPUs = s.o.GPUs
	return srv
}

// baseConfig is a version's config for this pool: the config.pbtxt shipped
// with the version if any, else one generated from its ONNX model; the
// pool's overrides applied; the catalog's name.
func (s *Syncer) baseConfig(c *catalog.Catalog, m *catalog.Model, versionDir string) (*inference.ModelConfig, error) {
	ov := c.Override(m, s.o.Pool)
	shipped := filepath.Join(versionDir, pbtxt.ConfigFile)
	if _, err := os.Stat(shipped); err == nil {
		src, err := pbtxt.ParseFile(shipped)
		if err != nil {
			return nil, err
		}
		cfg := proto.Clone(src.Config).(*inference.ModelConfig)
		cfg.Name = m.Name
		return ov.Apply(cfg)
	}
	model := filepath.Join(versionDir, "model.onnx")
	om, err := onnxmodel.Inspect(model)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no model.onnx (and no config.pbtxt) in the version: nothing Triton could load")
		}
		return nil, fmt.Errorf("model.onnx: %w", err)
	}
	cfg, ps := pbtxt.Generate(om, pbtxt.GenerateOptions{Name: m.Name, Pool: ov})
	if len(ps) > 0 {
		return nil, fmt.Errorf("generating config.pbtxt: %w", ps)
	}
	return cfg, nil
}

// config is the model's config.pbtxt for the wanted versions: from the
// newest one.
func (s *Syncer) config(c *catalog.Catalog, m *catalog.Model, want []int64, published map[int64]*modelrepo.Marker) (*inference.ModelConfig, error) {
	if len(want) == 0 {
		return nil, errors.New("no version wanted")
	}
	newest := want[len(want)-1]
	// A published version never changes, so its config under one catalog
	// is computed once, not read from the model files every reconcile.
	key := ""
	if mk := published[newest]; mk != nil {
		key = fmt.Sprintf("%d/%s/%s", newest, mk.Digest, c.Digest)
	}
	s.mu.Lock()
	cached := s.configs[m.Name]
	s.mu.Unlock()
	if key != "" && cached.key == key {
		return proto.Clone(cached.cfg).(*inference.ModelConfig), nil
	}
	cfg, err := s.baseConfig(c, m, filepath.Join(s.o.Repo.Root, m.Name, strconv.FormatInt(newest, 10)))
	if err != nil || key == "" {
		return cfg, err
	}
	s.mu.Lock()
	s.configs[m.Name] = cachedConfig{key: key, cfg: proto.Clone(cfg).(*inference.ModelConfig)}
	s.mu.Unlock()
	return cfg, nil
}

// cachedConfig is a model's config for one version, marker digest and
// catalog digest.
type cachedConfig struct {
	key string
	cfg *inference.ModelConfig
}

// writeConfig writes cfg with a version policy selecting exactly versions.
func (s *Syncer) writeConfig(model string, cfg *inference.ModelConfig, versions []int64) (bool, error) {
	c := proto.Clone(cfg).(*inference.ModelConfig)
	c.VersionPolicy = &inference.ModelVersionPolicy{PolicyChoice: &inference.ModelVersionPolicy_Specific_{Specific: &inference.ModelVersionPolicy_Specific{Versions: versions}}}
	return s.o.Repo.WriteConfig(model, pbtxt.Format(c))
}

// load makes Triton serve exactly the wanted versions without a gap.
//
// When the new config is the one in force (same model signature and
// settings, only the versions differ), the new versions are loaded next to
// the old (the config lists both), checked ready and warmed up; then the
// config lists only the wanted ones and the model is reloaded, unloading
// the rest, which are then deleted. When the config changes (another
// signature, other settings), old versions must not run under it: the
// model is switched in one reload (Triton keeps serving the loaded model
// until the new one is ready), then checked and warmed up. Either way, a
// version that fails to become ready or to warm up is taken back out and
// the versions serving before stay.
func (s *Syncer) load(ctx context.Context, m *catalog.Model, cfg *inference.ModelConfig, want []int64, published map[int64]*modelrepo.Marker, loaded map[int64]string, log *slog.Logger) error {
	var serving []int64 // ready now and not wanted: keep until the new ones are routable
	for v, st := range loaded {
		if st == "READY" && !slices.Contains(want, v) && published[v] != nil {
			serving = append(serving, v)
		}
	}
	slices.Sort(serving)
	var pending []int64 // wanted versions not yet ready and warmed up by this syncer
	for _, v := range want {
		if loaded[v] != "READY" || !s.isWarm(m.Name, v, published[v]) {
			pending = append(pending, v)
		}
	}
	oldCfg, err := s.o.Repo.ReadConfig(m.Name)
	if err != nil {
		return err
	}
	switchAll := len(serving) > 0 && len(pending) > 0 && !sameConfig(oldCfg, cfg)

	during := append(slices.Clone(want), serving...)
	if switchAll {
		during = slices.Clone(want)
	}
	slices.Sort(during)
	if _, err := s.writeConfig(m.Name, cfg, during); err != nil {
		return err
	}
	if s.needsLoad(m.Name, pending, loaded) {
		release, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		defer release()
		log.Info("loading", "versions", during, "new", pending, "config_changed", switchAll)
		for _, v := range pending {
			s.setVersion(m.Name, v, "loading", nil)
		}
		if err := s.loadModel(ctx, m.Name); err != nil {
			s.m.errors.WithLabelValues(m.Name, "load").Inc()
			for _, v := range pending {
				s.setVersion(m.Name, v, "error", err)
			}
			s.rollBack(ctx, m.Name, oldCfg, servedBefore(loaded, published, nil), log)
			return err
		}
	}
	for _, v := range pending {
		stage, err := "ready", s.o.Triton.WaitReady(ctx, m.Name, v)
		if err == nil {
			s.setVersion(m.Name, v, "warming up", nil)
			stage, err = "warmup", s.o.Triton.WarmUp(ctx, m.Name, v, m.Warmup.Requests)
		}
		if err != nil {
			s.m.errors.WithLabelValues(m.Name, stage).Inc()
			s.setVersion(m.Name, v, "error", err)
			s.rollBack(ctx, m.Name, oldCfg, servedBefore(loaded, published, []int64{v}), log)
			return err
		}
		s.setWarm(m.Name, v, published[v])
		log.Info("version routable", "version", v)
	}
	for _, v := range want {
		s.setVersion(m.Name, v, "routable", nil)
	}
	if len(serving) > 0 && !switchAll {
		if _, err := s.writeConfig(m.Name, cfg, want); err != nil {
			return err
		}
		log.Info("unloading old versions", "versions", serving)
		if err := s.loadModel(ctx, m.Name); err != nil {
			s.m.errors.WithLabelValues(m.Name, "unload").Inc()
			return err
		}
	}
	return s.removeVersions(ctx, m.Name, want, published)
}

// needsLoad says whether the model must be (re)loaded: a wanted version is
// not ready, or config.pbtxt is not the one Triton last loaded (written by a
// run that crashed or whose load failed, or changed now).
func (s *Syncer) needsLoad(model string, pending []int64, loaded map[int64]string) bool {
	for _, v := range pending {
		if loaded[v] != "READY" {
			return true
		}
	}
	b, err := s.o.Repo.ReadConfig(model)
	return err != nil || s.o.Repo.LoadedConfig(model) != digestOf(b)
}

// loadModel asks Triton to (re)load the model and records the config it
// loaded.
func (s *Syncer) loadModel(ctx context.Context, model string) error {
	b, err := s.o.Repo.ReadConfig(model)
	if err != nil {
		return err
	}
	if err := s.o.Triton.Load(ctx, model); err != nil {
		return err
	}
	return s.o.Repo.SetLoadedConfig(model, digestOf(b))
}

// servedBefore lists the published versions that were ready before this
// load, but for the ones that failed.
func servedBefore(loaded map[int64]string, published map[int64]*modelrepo.Marker, failed []int64) []int64 {
	var out []int64
	for v, st := range loaded {
		if st == "READY" && published[v] != nil && !slices.Contains(failed, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// rollBack puts back the config and versions that served before a failed
// switch, so that the failing version is unloaded and the old ones serve.
func (s *Syncer) rollBack(ctx context.Context, model string, oldCfg []byte, serving []int64, log *slog.Logger) {
	if len(serving) == 0 || oldCfg == nil {
		return // nothing served before: leave what loaded for the next attempt
	}
	old, err := pbtxt.Parse(pbtxt.ConfigFile, oldCfg)
	if err == nil {
		_, err = s.writeConfig(model, old.Config, serving)
	}
	if err == nil {
		err = s.loadModel(ctx, model)
	}
	if err != nil {
		log.Error("could not put the serving versions back", "versions", serving, "error", err)
		return
	}
	log.Warn("new versions taken back out; the previous ones serve", "versions", serving)
}

// sameConfig reports whether two configs differ only in their version
// policy (old is config.pbtxt as written; nil is no config).
func sameConfig(old []byte, cfg *inference.ModelConfig) bool {
	if old == nil {
		return false
	}
	src, err := pbtxt.Parse(pbtxt.ConfigFile, old)
	if err != nil {
		return false
	}
	a := proto.Clone(src.Config).(*inference.ModelConfig)
	b := proto.Clone(cfg).(*inference.ModelConfig)
	a.VersionPolicy, b.VersionPolicy = nil, nil
	return proto.Equal(a, b)
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// isWarm reports whether this syncer warmed up this version (its marker's
// digest: a version published again is warmed up again).
func (s *Syncer) isWarm(model string, v int64, mk *modelrepo.Marker) bool {
	if mk == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.warm[fmt.Sprintf("%s/%d/%s", model, v, mk.Digest)]
}

func (s *Syncer) setWarm(model string, v int64, mk *modelrepo.Marker) {
	if mk == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.warm[fmt.Sprintf("%s/%d/%s", model, v, mk.Digest)] = true
}

// removeVersions deletes published versions no longer wanted (Triton has
// unloaded them: the config no longer lists them and the model was
// reloaded). Versions the syncer did not publish are left alone.
func (s *Syncer) removeVersions(ctx context.Context, model string, want []int64, published map[int64]*modelrepo.Marker) error {
	for v := range published {
		if slices.Contains(want, v) {
			continue
		}
		if s.o.Triton != nil {
			if ok, _ := s.o.Triton.Ready(ctx, model, v); ok {
				return fmt.Errorf("version %d is still loaded: not deleted", v)
			}
		}
		if err := s.o.Repo.RemoveVersion(model, v); err != nil {
			return err
		}
		s.m.removed.Inc()
		s.forgetVersion(model, v)
		s.log.Info("version removed", "model", model, "version", v)
	}
	return nil
}

// removeModel unloads a model the pool no longer serves and deletes it.
func (s *Syncer) removeModel(ctx context.Context, name string) error {
	if s.o.Triton != nil {
		if err := s.o.Triton.Unload(ctx, name); err != nil {
			return err
		}
	}
	if err := s.o.Repo.RemoveModel(name); err != nil {
		return err
	}
	s.m.removed.Inc()
	s.m.routable.DeletePartialMatch(prometheus.Labels{"model": name})
	s.log.Info("model removed", "model", name)
	return nil
}

// gcStages removes staged downloads nobody needs: those of models the pool
// no longer serves, and those of models now fully in place (abandoned
// versions). The stages of a model that failed are kept for the next
// attempt to resume, whatever failed (a listing, a slot, the download);
// after a cancelled reconcile nothing is removed.
func (s *Syncer) gcStages(ctx context.Context, res Result) {
	if ctx.Err() != nil || res.Refused != nil {
		return
	}
	stages, err := s.o.Repo.Stages()
	if err != nil {
		return
	}
	for _, st := range stages {
		// <model>.<version>.<digest prefix>: the model is all but the last
		// two fields.
		base := filepath.Base(st)
		i := strings.LastIndexByte(base, '.')
		if i > 0 {
			i = strings.LastIndexByte(base[:i], '.')
		}
		if i <= 0 {
			continue // not a stage the syncer made
		}
		if _, failed := res.Failed[base[:i]]; failed {
			continue
		}
		os.RemoveAll(st)
	}
}
