package tritonlite

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/proto/inference"
)

// Version states, as Triton names them.
const (
	stateReady       = "READY"
	stateUnavailable = "UNAVAILABLE"
	stateLoading     = "LOADING"
	stateUnloading   = "UNLOADING"
	reasonUnloaded   = "unloaded"
)

// repository tracks every model the server knows and the state of each of
// its versions: Triton's model lifecycle.
type repository struct {
	s *Server

	mu     sync.RWMutex
	models map[string]*modelState
	// pollFailures holds the fingerprint of models whose files could not
	// even be read, so poll mode waits for them to change.
	pollFailures map[string]string

	retiring sync.WaitGroup // versions being drained after a reload
}

type modelState struct {
	name     string
	loadMu   sync.Mutex // one load or unload of this model at a time
	versions map[int64]*versionState
	// fingerprint of the files last loaded (poll mode).
	fingerprint string
	// dir holds files sent with a load request (file: parameters).
	overrideDir string
}

type versionState struct {
	state  string
	reason string
	v      *version // set while READY
}

func newRepository(s *Server) *repository {
	return &repository{s: s, models: map[string]*modelState{}, pollFailures: map[string]string{}}
}

// loadOverride is what a RepositoryModelLoad request may carry.
type loadOverride struct {
	config *inference.ModelConfig // replaces config.pbtxt
	files  map[string][]byte      // relative path → content; replaces the model directory
}

// lockModel returns the model's state with its load lock held, creating it
// if needed. A state can be dropped from the map while a caller waits for its
// lock (a failed first load forgets it); then the caller retries with the
// current one, so that no load ever fills a state nobody can see.
func (r *repository) lockModel(name string, create bool) *modelState {
	for {
		r.mu.Lock()
		ms := r.models[name]
		if ms == nil {
			if !create {
				r.mu.Unlock()
				return nil
			}
			ms = &modelState{name: name, versions: map[int64]*versionState{}}
			r.models[name] = ms
		}
		r.mu.Unlock()
		ms.loadMu.Lock()
		r.mu.RLock()
		current := r.models[name] == ms
		r.mu.RUnlock()
		if current {
			return ms
		}
		ms.loadMu.Unlock()
	}
}

// pollFailed is what a load caller gets when Triton cannot even read the
// model's directory or config (the details go to the log).
func pollFailed(name string) error {
	return status.Errorf(codes.Internal, "failed to load '%s', failed to poll from model repository", name)
}

// load loads (or reloads) a model: every version its version policy selects.
// Versions already serving keep serving until their replacements are ready.
// As in Triton, a load is all or nothing: if any version fails, the versions
// it created are released and the previously serving ones stay.
func (r *repository) load(ctx context.Context, name string, ov *loadOverride) error {
	if err := pbtxt.ValidateModelName(name); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	ms := r.lockModel(name, true)
	defer ms.loadMu.Unlock()
	if r.s.closing.Load() || r.s.loadsStopped() {
		r.forgetIfUnknown(name)
		return status.Error(codes.Unavailable, "Server not ready")
	}
	log := r.s.log.With("model", name)

	// Files sent with the request replace the model directory, but only once
	// the load succeeds.
	dirPath := filepath.Join(r.s.opts.Repository, name)
	newOverride := ""
	if ov != nil && ov.files != nil {
		d, err := writeOverrideFiles(name, ov.files)
		if err != nil {
			r.forgetIfUnknown(name)
			if _, ok := status.FromError(err); ok {
				return err // a file parameter Triton refuses, in its words
			}
			// A file that cannot be written (a name over NAME_MAX): Triton's
			// later releases fail the poll (2.51 aborts).
			log.Warn("failed to poll model: writing the load request's files", "error", err)
			return pollFailed(name)
		}
		newOverride, dirPath = d, d
	} else if ms.overrideDir != "" {
		dirPath = ms.overrideDir
	}
	pollFail := func(msg string, args ...any) error {
		log.Warn(msg, args...)
		if newOverride != "" {
			os.RemoveAll(filepath.Dir(newOverride))
		}
		r.forgetIfUnknown(name)
		return pollFailed(name)
	}
	if st, err := os.Stat(dirPath); err != nil || !st.IsDir() {
		return pollFail("failed to poll model: model not found in any model repository")
	}
	fingerprint := fingerprintDir(dirPath)
	dir, err := pbtxt.ReadModelDir(dirPath)
	if err != nil {
		r.notePollFailure(name, fingerprint)
		return pollFail("poll failed for model directory", "error", err)
	}
	if ov != nil && ov.config != nil {
		dir.Config = &pbtxt.Source{File: "config override", Config: r.overrideBackend(dir, ov.config)}
	}
	prep, ps := pbtxt.Prepare(dir, r.s.opts.Config)
	if len(ps) > 0 {
		r.notePollFailure(name, fingerprint)
		return pollFail("poll failed for model directory", "error", ps[0].Msg)
	}
	if c, ok := r.s.opts.Backends[prep.Config.GetBackend()].(ConfigCompleter); ok && !r.s.opts.Config.NoAutofill {
		c.CompleteConfig(prep.Config)
	}
	if len(prep.Versions) == 0 {
		if newOverride != "" {
			os.RemoveAll(filepath.Dir(newOverride))
		}
		return status.Errorf(codes.InvalidArgument, "load failed for model '%s': %s\n", name, prep.NoVersions().Msg)
	}

	// A version that is not serving is LOADING (not ready: strict
	// readiness is lost until the load ends); one that is serving keeps
	// serving, READY, while its replacement loads beside it, as in Triton.
	r.mu.Lock()
	for _, v := range prep.Versions {
		if vs := ms.versions[v]; vs == nil || vs.state != stateReady {
			ms.versions[v] = &versionState{state: stateLoading}
		}
	}
	r.mu.Unlock()
	r.s.updateHealth()

	// The versions load in parallel, as Triton's load threads do. A
	// serving version whose files and completed config are unchanged stays
	// as it is (kept): Triton does not load it again.
	r.mu.RLock()
	serving := map[int64]*version{}
	for num, vs := range ms.versions {
		if vs.state == stateReady && vs.v != nil {
			serving[num] = vs.v
		}
	}
	r.mu.RUnlock()
	results := make([]struct {
		v    *version
		kept bool
		err  error
	}, len(prep.Versions))
	var wg sync.WaitGroup
	slots := make(chan struct{}, loadThreads)
	for i, num := range prep.Versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			if cur := serving[num]; cur != nil && newOverride == "" && unchanged(cur, prep, num) {
				results[i].v, results[i].kept = cur, true
				return
			}
			results[i].v, results[i].err = r.loadVersion(ctx, prep, num)
		}()
	}
	wg.Wait()
	loaded := map[int64]*version{}
	kept := map[int64]bool{}
	var failures []string
	reasons := map[int64]string{}
	for i, num := range prep.Versions {
		kept[num] = results[i].kept
		if err := results[i].err; err != nil {
			log.Warn("failed to load model version", "version", num, "error", err)
			r.s.metrics.loadFailures.WithLabelValues(name).Inc()
			reasons[num] = reasonOf(err)
			failures = append(failures, fmt.Sprintf("version %d is at %s state: %s;", num, stateUnavailable, reasons[num]))
			continue
		}
		loaded[num] = results[i].v
	}

	type closing struct {
		v   *version
		how int
		// vs is set for a version that is gone: UNLOADING until its
		// requests finish, then UNAVAILABLE "unloaded".
		vs *versionState
	}
	var release []closing
	r.mu.Lock()
	if len(failures) > 0 {
		// All or nothing: release what this load created; versions that were
		// serving keep serving.
		for _, num := range prep.Versions {
			vs := ms.versions[num]
			if v := loaded[num]; v != nil && !kept[num] {
				release = append(release, closing{v, retired, nil})
			}
			if vs.state == stateReady {
				continue
			}
			vs.state, vs.reason = stateUnavailable, reasons[num]
			if vs.reason == "" {
				vs.reason = reasonUnloaded
			}
		}
	} else {
		for _, num := range prep.Versions {
			if kept[num] {
				continue
			}
			if old := ms.versions[num].v; old != nil {
				release = append(release, closing{old, retired, nil})
			}
			ms.versions[num] = &versionState{state: stateReady, v: loaded[num]}
		}
		for num, vs := range ms.versions {
			if !slices.Contains(prep.Versions, num) && vs.v != nil {
				release = append(release, closing{vs.v, unloaded, vs})
				vs.state, vs.reason, vs.v = stateUnloading, "", nil
			}
		}
		ms.fingerprint = fingerprint
		delete(r.pollFailures, name)
		if newOverride != "" {
			if ms.overrideDir != "" {
				os.RemoveAll(filepath.Dir(ms.overrideDir))
			}
			ms.overrideDir = newOverride
		}
	}
	r.mu.Unlock()
	if len(failures) > 0 && newOverride != "" {
		os.RemoveAll(filepath.Dir(newOverride))
	}
	for _, c := range release {
		r.retiring.Add(1)
		go func() {
			defer r.retiring.Done()
			c.v.close(c.how)
			if c.vs == nil {
				return
			}
			r.mu.Lock()
			if c.vs.state == stateUnloading {
				c.vs.state, c.vs.reason = stateUnavailable, reasonUnloaded
			}
			r.mu.Unlock()
			r.s.updateHealth()
		}()
	}
	r.s.updateHealth()
	if len(failures) > 0 {
		return status.Errorf(codes.InvalidArgument, "load failed for model '%s': %s\n", name, strings.Join(failures, ""))
	}
	log.Info("loaded model", "versions", prep.Versions)
	return nil
}

// overrideBackend is the config a load's override config gives. Triton
// takes the backend of an override that names neither a backend nor a
// platform from the model's files (model.py: python), but a builtin model
// has no file: when the files name no backend either, the backend of the
// model's config.pbtxt is kept.
func (r *repository) overrideBackend(dir *pbtxt.ModelDir, cfg *inference.ModelConfig) *inference.ModelConfig {
	if cfg.GetBackend() != "" || cfg.GetPlatform() != "" || dir.Config == nil || dir.Config.Config.GetBackend() == "" {
		return cfg
	}
	trial := *dir
	trial.Config = &pbtxt.Source{File: "config override", Config: cfg}
	if _, ps := pbtxt.Prepare(&trial, r.s.opts.Config); len(ps) != 1 || ps[0].Path != "backend" {
		return cfg // the files determine the backend (or the config fails for another reason)
	}
	cfg = proto.Clone(cfg).(*inference.ModelConfig)
	cfg.Backend = dir.Config.Config.GetBackend()
	return cfg
}

// loadThreads is how many versions of a model load at once (Triton's
// --model-load-thread-count default).
const loadThreads = 4

// loadDelayParam is the config parameter that sets a model's load delay.
const loadDelayParam = "tritonlite_load_delay"

// loadDelay is how long loading a version of cfg takes: its
// tritonlite_load_delay parameter (a Go duration), else def.
func loadDelay(cfg *inference.ModelConfig, def time.Duration) (time.Duration, error) {
	p, ok := cfg.GetParameters()[loadDelayParam]
	if !ok {
		return def, nil
	}
	v := p.GetStringValue()
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("must not be negative")
	}
	if err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "model '%s': config parameter '%s' = %q is not a valid duration (such as \"1.5s\"): %v", cfg.GetName(), loadDelayParam, v, err)
	}
	return d, nil
}

// notePollFailure remembers the files of a model that could not be polled,
// so that poll mode does not retry it until they change.
func (r *repository) notePollFailure(name, fingerprint string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pollFailures[name] = fingerprint
}

// reasonOf renders a load error as a version's state reason: Triton's
// "<Code>: <message>".
func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	var p pbtxt.Problem
	if errors.As(err, &p) {
		return p.Reason()
	}
	st, _ := status.FromError(err)
	return pbtxt.CodeString(st.Code()) + ": " + st.Message()
}

// loadVersion completes the config for one version and creates its instances.
func (r *repository) loadVersion(ctx context.Context, prep *pbtxt.Prepared, num int64) (*version, error) {
	cfg, sig, ps := prep.LoadVersion(num)
	if len(ps) > 0 {
		return nil, ps[0]
	}
	backend, ok := r.s.opts.Backends[cfg.GetBackend()]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unable to find backend library for backend '%s', try specifying runtime on the model configuration.", cfg.GetBackend())
	}
	if err := unsupportedSequencing(cfg); err != nil {
		return nil, err
	}
	delay, err := loadDelay(cfg, r.s.opts.LoadDelay)
	if err != nil {
		return nil, err
	}
	if delay > 0 {
		// The model "initializes"; a server that closes ends the wait.
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.s.stop:
			t.Stop()
			return nil, status.Error(codes.Unavailable, "Server not ready")
		}
	}
	backend = withFaults(backend, r.s)
	versionDir := filepath.Join(prep.Dir.Path, strconv.FormatInt(num, 10))
	var execs []Executor
	fail := func(err error) (*version, error) {
		for _, e := range execs {
			e.Close()
		}
		return nil, err
	}
	for _, g := range cfg.GetInstanceGroup() {
		for i := range int(g.GetCount()) {
			inst := Instance{
				Config: cfg, VersionDir: versionDir, Version: num, Group: g.GetName(), Index: i, Signature: sig,
				ModelPath: pbtxt.ModelFile(prep.Dir.Path, cfg, num),
			}
			e, err := backend.NewExecutor(ctx, inst)
			if err != nil {
				if _, ok := status.FromError(err); !ok {
					err = status.Error(codes.Internal, err.Error())
				}
				return fail(err)
			}
			execs = append(execs, e)
		}
	}
	if len(execs) == 0 {
		return fail(status.Errorf(codes.InvalidArgument, "model '%s' has no instances", cfg.GetName()))
	}
	v, err := newVersion(cfg.GetName(), num, cfg, sig, execs, r.s.metrics, r.s.log)
	if err != nil {
		return fail(err)
	}
	v.files = fingerprintVersion(prep.Dir.Path, num)
	return v, nil
}

// unchanged reports whether serving version v would be loaded again as it
// is: its files (the version directory and the model directory's other
// files, config.pbtxt aside) and its completed config, version policy
// aside, are the same. Triton leaves such a version serving, untouched.
func unchanged(v *version, prep *pbtxt.Prepared, num int64) bool {
	if v.files != fingerprintVersion(prep.Dir.Path, num) {
		return false
	}
	cfg, _, ps := prep.LoadVersion(num)
	if len(ps) > 0 {
		return false
	}
	a, b := proto.Clone(cfg).(*inference.ModelConfig), proto.Clone(v.cfg).(*inference.ModelConfig)
	a.VersionPolicy, b.VersionPolicy = nil, nil
	return proto.Equal(a, b)
}

// forgetIfUnknown drops a model that never had a version state, so that it
// shows in the index by name only, as Triton shows models it could not poll.
func (r *repository) forgetIfUnknown(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ms := r.models[name]; ms != nil && len(ms.versions) == 0 {
		delete(r.models, name)
	}
}

// unload unloads every version of a model, waiting for its requests to
// finish (an injected hang is ended). Unloading a model that is not loaded
// succeeds.
func (r *repository) unload(name string) {
	ms := r.lockModel(name, false)
	if ms == nil {
		return
	}
	defer ms.loadMu.Unlock()
	var closing []*version
	var states []*versionState
	r.mu.Lock()
	for _, vs := range ms.versions {
		if vs.v != nil {
			closing = append(closing, vs.v)
			states = append(states, vs)
			vs.state, vs.reason, vs.v = stateUnloading, "", nil
		}
	}
	r.mu.Unlock()
	r.s.updateHealth() // not ready while unloading (strict readiness)
	for _, v := range closing {
		v.close(unloaded)
	}
	r.mu.Lock()
	for _, vs := range states {
		vs.state, vs.reason = stateUnavailable, reasonUnloaded
	}
	ms.fingerprint = ""
	dir := ms.overrideDir
	ms.overrideDir = ""
	r.mu.Unlock()
	if dir != "" {
		os.RemoveAll(filepath.Dir(dir))
	}
	if len(closing) > 0 {
		r.s.log.Info("unloaded model", "model", name)
	}
}

// names lists every model the repository tracks.
func (r *repository) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.models))
	for n := range r.models {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// acquire finds the version a request is for and holds it until release is
// called. Errors are Triton's, with Triton's codes.
func (r *repository) acquire(name, versionStr string) (*version, func(), error) {
	num := int64(-1)
	if versionStr != "" {
		n, err := strconv.ParseInt(versionStr, 10, 64)
		if err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "failed to get model version from specified version string '%s' (details: stol), version should be an integral value > 0", versionStr)
		}
		if n < 0 {
			return nil, nil, status.Errorf(codes.InvalidArgument, "invalid model version specified '%s' , version should be an integral value > 0", versionStr)
		}
		num = n
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	ms := r.models[name]
	if ms == nil || len(ms.versions) == 0 {
		return nil, nil, status.Errorf(codes.NotFound, "Request for unknown model: '%s' is not found", name)
	}
	var vs *versionState
	if num < 0 {
		for n, s := range ms.versions {
			if s.state == stateReady && s.v != nil && (vs == nil || n > num) {
				vs, num = s, n
			}
		}
		if vs == nil {
			return nil, nil, status.Errorf(codes.NotFound, "Request for unknown model: '%s' has no available versions", name)
		}
	} else {
		vs = ms.versions[num]
		if vs == nil {
			return nil, nil, status.Errorf(codes.NotFound, "Request for unknown model: '%s' version %d is not found", name, num)
		}
		if vs.state != stateReady || vs.v == nil {
			return nil, nil, status.Errorf(codes.Unavailable, "Request for unknown model: '%s' version %d is not at ready state", name, num)
		}
	}
	v := vs.v
	v.inflight.Add(1)
	return v, v.inflight.Done, nil
}

// readyVersions lists the READY versions of a model, ascending.
func (r *repository) readyVersions(name string) []*version {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ms := r.models[name]
	if ms == nil {
		return nil
	}
	var out []*version
	for _, vs := range ms.versions {
		if vs.state == stateReady && vs.v != nil {
			out = append(out, vs.v)
		}
	}
	slices.SortFunc(out, func(a, b *version) int { return cmp.Compare(a.number, b.number) })
	return out
}

// index is RepositoryIndex: every model directory in the repository and every
// model loaded from elsewhere, sorted by name; one entry per known version,
// or the name alone for a model never loaded.
func (r *repository) index(readyOnly bool) []*inference.RepositoryIndexResponse_ModelIndex {
	names := map[string]bool{}
	entries, _ := os.ReadDir(r.s.opts.Repository)
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names[e.Name()] = true
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for n := range r.models {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []*inference.RepositoryIndexResponse_ModelIndex
	for _, n := range sorted {
		ms := r.models[n]
		if ms == nil || len(ms.versions) == 0 {
			if !readyOnly {
				out = append(out, &inference.RepositoryIndexResponse_ModelIndex{Name: n})
			}
			continue
		}
		nums := make([]int64, 0, len(ms.versions))
		for v := range ms.versions {
			nums = append(nums, v)
		}
		slices.Sort(nums)
		for _, v := range nums {
			vs := ms.versions[v]
			if readyOnly && vs.state != stateReady {
				continue
			}
			out = append(out, &inference.RepositoryIndexResponse_ModelIndex{Name: n, Version: strconv.FormatInt(v, 10), State: vs.state, Reason: vs.reason})
		}
	}
	return out
}

// allReady is Triton's strict readiness: every known version is READY, or
// was unloaded on purpose.
func (r *repository) allReady() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, ms := range r.models {
		for _, vs := range ms.versions {
			if vs.state != stateReady && vs.reason != reasonUnloaded {
				return false
			}
		}
	}
	return true
}

func (r *repository) countReady() float64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, ms := range r.models {
		for _, vs := range ms.versions {
			if vs.state == stateReady {
				n++
			}
		}
	}
	return float64(n)
}

// loadedNames lists models with at least one version not unloaded.
func (r *repository) loadedNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for n, ms := range r.models {
		for _, vs := range ms.versions {
			if vs.v != nil {
				out = append(out, n)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// repositoryModels lists the model directories in the repository.
func (r *repository) repositoryModels() ([]string, error) {
	entries, err := os.ReadDir(r.s.opts.Repository)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// poll reconciles the loaded models with the repository: new and changed
// model directories are (re)loaded, removed ones unloaded.
func (r *repository) poll(ctx context.Context) {
	names, err := r.repositoryModels()
	if err != nil {
		r.s.log.Error("reading model repository", "error", err)
		return
	}
	present := map[string]bool{}
	for _, n := range names {
		present[n] = true
		fp := fingerprintDir(filepath.Join(r.s.opts.Repository, n))
		r.mu.RLock()
		ms := r.models[n]
		same := (ms != nil && ms.fingerprint == fp) || r.pollFailures[n] == fp
		r.mu.RUnlock()
		if !same {
			if err := r.load(ctx, n, nil); err != nil {
				r.s.log.Warn("poll: load failed", "model", n, "error", status.Convert(err).Message())
				r.mu.Lock()
				if ms := r.models[n]; ms != nil {
					ms.fingerprint = fp // do not retry until the files change
				}
				r.mu.Unlock()
			}
		}
	}
	for _, n := range r.loadedNames() {
		if !present[n] {
			r.unload(n)
		}
	}
}

// fingerprintVersion summarizes the files one version is loaded from: its
// version directory and the files at the top of the model directory other
// than config.pbtxt (Triton's modification times for a version).
func fingerprintVersion(dir string, num int64) string {
	h := sha256.New()
	io.WriteString(h, fingerprintDir(filepath.Join(dir, strconv.FormatInt(num, 10))))
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() || e.Name() == pbtxt.ConfigFile {
			continue
		}
		if info, err := e.Info(); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fingerprintDir summarizes a model directory's files (names, sizes, times).
func fingerprintDir(dir string) string {
	h := sha256.New()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(h, "%s %d %d %v\n", p, info.Size(), info.ModTime().UnixNano(), d.IsDir())
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

// writeOverrideFiles writes a load request's files into a fresh directory
// laid out as <tmp>/<model>/..., refusing paths that leave it. A file
// parameter Triton refuses is an INVALID_ARGUMENT status with Triton's
// message; a file that cannot be written (a name over NAME_MAX) a plain
// error. On error nothing is left behind.
func writeOverrideFiles(name string, files map[string][]byte) (string, error) {
	root, err := os.MkdirTemp("", "tritonlite-override-")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, name)
	for rel, data := range files {
		clean := filepath.Clean(filepath.FromSlash(rel))
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
			os.RemoveAll(root)
			return "", status.Errorf(codes.InvalidArgument, "Invalid file parameter 'file:%s' with normalized path '%s' must stay within model directory.", rel, filepath.Join(dir, clean))
		}
		p := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			os.RemoveAll(root)
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
				return "", status.Errorf(codes.InvalidArgument, "Invalid file parameter 'file:%s', directory has been created as a file", rel)
			}
			return "", fmt.Errorf("file parameter 'file:%s': %w", rel, err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			os.RemoveAll(root)
			return "", fmt.Errorf("file parameter 'file:%s': %w", rel, err)
		}
	}
	return dir, nil
}
