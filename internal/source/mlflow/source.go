package mlflow

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/local"
	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
)

// ObjectStore lists and fetches artifacts that MLflow keeps in an object
// store (s3:// artifact URIs). *s3.Store satisfies it.
type ObjectStore interface {
	// Files describes every object under uri (a prefix): paths relative
	// to it, checked by source.CheckPath, with what is known to verify
	// them; paths skip accepts are left out first. A manifest among them
	// may already be applied (and left out).
	Files(ctx context.Context, uri string, skip func(rel string) bool) ([]source.File, error)
	// FetchFiles downloads files (as Files returned them) into dir, an
	// existing empty directory, verifying each as source.Source.Fetch
	// does.
	FetchFiles(ctx context.Context, files []source.File, dir string, progress func(int64)) error
}

// fetchConcurrency bounds the parallel downloads through the proxy.
const fetchConcurrency = 4

// maxManifestSize bounds the manifest read (about 100k files).
const maxManifestSize = 32 << 20

// describedTTL is how long a version's description is reused while the
// registry says nothing changed about it (see Describe).
const describedTTL = 10 * time.Minute

// NewSource is one registered model of the MLflow registry as a
// source.Source. objects serves s3:// artifact URIs (nil: such versions
// are refused); mlflow-artifacts:/ URIs go through c's artifacts proxy;
// file: URIs and absolute paths are read where the syncer runs.
func NewSource(c *Client, model string, objects ObjectStore) source.Source {
	return &registrySource{c: c, model: model, objects: objects, described: map[int64]described{}}
}

type registrySource struct {
	c       *Client
	model   string
	objects ObjectStore

	mu        sync.Mutex
	described map[int64]described
}

// described is a version's description and what the registry said of the
// version when it was made.
type described struct {
	stamp string
	at    time.Time
	v     source.Version
	err   error // a refusal (see refused)
}

// List returns the versions in status READY, ascending.
func (s *registrySource) List(ctx context.Context) ([]int64, error) {
	mvs, err := s.c.SearchModelVersions(ctx, s.model)
	if err != nil {
		return nil, err
	}
	if len(mvs) == 0 {
		// MLflow's search answers an unknown name with no versions: ask
		// for the model, so a misspelt name is said to be unknown.
		if _, err := s.c.GetRegisteredModel(ctx, s.model); err != nil {
			return nil, err
		}
	}
	seen := map[int64]bool{}
	var out []int64
	for _, mv := range mvs {
		if mv.GetStatus() != mlflowpb.ModelVersionStatus_READY {
			continue
		}
		n, ok := source.ParseVersion(mv.GetVersion())
		if !ok {
			return nil, fmt.Errorf("mlflow: registered model %q: version %q is not a positive integer", s.model, mv.GetVersion())
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Alias resolves one of the model's aliases (champion, challenger, ...).
func (s *registrySource) Alias(ctx context.Context, alias string) (int64, error) {
	mv, err := s.c.GetModelVersionByAlias(ctx, s.model, alias)
	if err != nil {
		return 0, err
	}
	n, ok := source.ParseVersion(mv.GetVersion())
	if !ok {
		return 0, fmt.Errorf("mlflow: registered model %q, alias %q: version %q is not a positive integer", s.model, alias, mv.GetVersion())
	}
	return n, nil
}

// Describe lists a READY version's artifacts: through the object store
// for s3:// URIs, through the artifacts proxy for mlflow-artifacts:/ and
// proxy URLs, on the local disk for file: URIs; runs:/ and models:/ URIs
// are resolved first, as MLflow's client does. Files of the MLflow model
// format that Triton never reads (MLmodel, conda.yaml, code/, ...) are
// left out (see FlavorFile).
//
// A version whose registry entry is unchanged (same last update, source,
// run and status) is described once per describedTTL: retrying a version
// the syncer refused costs one registry call, not a walk of its
// artifacts.
func (s *registrySource) Describe(ctx context.Context, n int64) (source.Version, error) {
	if n <= 0 {
		return source.Version{}, fmt.Errorf("mlflow: registered model %q: version %d is not a positive integer", s.model, n)
	}
	ver := strconv.FormatInt(n, 10)
	mv, err := s.c.GetModelVersion(ctx, s.model, ver)
	if err != nil {
		return source.Version{}, err
	}
	if st := mv.GetStatus(); st != mlflowpb.ModelVersionStatus_READY {
		msg := ""
		if m := mv.GetStatusMessage(); m != "" {
			msg = fmt.Sprintf(" (%q)", clip(m))
		}
		return source.Version{}, fmt.Errorf("mlflow: registered model %q version %d is %s%s, not READY: %w", s.model, n, st, msg, source.ErrNotFound)
	}
	stamp := fmt.Sprintf("%d\x00%s\x00%s", mv.GetLastUpdatedTimestamp(), mv.GetSource(), mv.GetRunId())
	s.mu.Lock()
	d, ok := s.described[n]
	s.mu.Unlock()
	if ok && d.stamp == stamp && time.Since(d.at) < describedTTL && d.err == nil {
		return d.v, nil
	}
	if ok && d.stamp == stamp && time.Since(d.at) < describedTTL && d.err != nil {
		return source.Version{}, d.err
	}
	v, err := s.describe(ctx, n, ver)
	if err != nil && !refused(err) {
		return source.Version{}, err
	}
	s.mu.Lock()
	s.described[n] = described{stamp: stamp, at: time.Now(), v: v, err: err}
	s.mu.Unlock()
	return v, err
}

// refusedError is a version refused for what it is (its files, its
// artifact URI), not for a failure to reach it: while the registry says
// nothing changed about the version, it is refused again without asking.
type refusedError struct{ error }

func (e refusedError) Unwrap() error { return e.error }

func refuse(err error) error { return refusedError{err} }

// refused reports whether err is a refusal (see refusedError), or the 503
// of a server that does not serve artifacts at all.
func refused(err error) bool {
	var r refusedError
	var ae *APIError
	return errors.As(err, &r) || (errors.As(err, &ae) && ae.Disabled())
}

func (s *registrySource) describe(ctx context.Context, n int64, ver string) (source.Version, error) {
	given, err := s.c.GetModelVersionDownloadURI(ctx, s.model, ver)
	if err != nil {
		return source.Version{}, err
	}
	uri, err := s.c.resolveURI(ctx, given)
	if err != nil {
		return source.Version{}, fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	origin := fmt.Sprintf("mlflow:%s/%d (%s)", s.model, n, uri)
	var files []source.File
	var manifest []byte
	switch scheme(uri) {
	case "s3":
		files, manifest, err = s.describeObjects(ctx, n, uri)
	case "mlflow-artifacts", "http", "https":
		files, manifest, err = s.describeProxy(ctx, n, uri)
	case "file", "":
		files, manifest, err = s.describeLocal(ctx, n, uri)
	default:
		err = refuse(fmt.Errorf("mlflow: registered model %q version %d: artifact URI %q: %w", s.model, n, uri, unsupportedScheme(uri)))
	}
	if err != nil {
		return source.Version{}, err
	}
	refusing := fmt.Sprintf("mlflow: refusing registered model %q version %d (%s)", s.model, n, uri)
	if manifest != nil {
		entries, err := source.ParseManifest(manifest)
		if err != nil {
			return source.Version{}, refuse(fmt.Errorf("%s: %s: %v", refusing, source.ManifestFile, err))
		}
		for p := range entries {
			if FlavorFile(p) {
				delete(entries, p) // not downloaded: not verified
			}
		}
		if err := applyManifest(files, entries); err != nil {
			return source.Version{}, refuse(fmt.Errorf("%s: %w", refusing, err))
		}
	}
	for _, f := range files {
		if f.Size < 0 {
			return source.Version{}, refuse(fmt.Errorf("%s: the listing gives no size for %q and the version has no %s to verify it with", refusing, f.Path, source.ManifestFile))
		}
	}
	if len(files) == 0 {
		return source.Version{}, fmt.Errorf("mlflow: registered model %q version %d: no artifacts under %s: %w", s.model, n, uri, source.ErrNotFound)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return source.Version{Number: n, Files: files, Digest: source.DigestOf(files), Origin: origin}, nil
}

func scheme(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme)
}

// errUnsupported is the error of an artifact URI whose store the syncer
// cannot read.
var errUnsupported = errors.New("artifact store not supported")

func unsupportedScheme(uri string) error {
	switch sc := scheme(uri); sc {
	case "gs", "wasbs", "wasb", "abfss", "abfs", "dbfs", "hdfs", "viewfs", "ftp", "sftp", "oss", "b2":
		return fmt.Errorf("%w: %s:// artifacts are not supported; keep the artifacts in S3 (s3://) or run the tracking server with --serve-artifacts so that they come through its artifacts proxy (mlflow-artifacts:/)", errUnsupported, sc)
	default:
		return fmt.Errorf("%w: want s3://, mlflow-artifacts:/, an artifacts proxy URL, runs:/, models:/ or file:", errUnsupported)
	}
}

// FlavorFile reports whether rel (a path in a model version's artifact
// directory) belongs to the MLflow model format rather than to the model
// Triton serves: the MLmodel file, the environment files MLflow writes
// next to it (conda.yaml, python_env.yaml, requirements.txt,
// constraints.txt, environment_variables.txt), input examples,
// registered_model_meta, and the code/ and metadata/ directories. Triton
// never reads them, so they are not downloaded, and their names (an empty
// __init__.py, a file name with a space under code/) never decide whether
// a version serves.
func FlavorFile(rel string) bool {
	top, _, nested := strings.Cut(rel, "/")
	if nested {
		return top == "code" || top == "metadata"
	}
	switch rel {
	case "MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "constraints.txt",
		"environment_variables.txt", "input_example.json", "serving_input_example.json", "registered_model_meta",
		"code", "metadata":
		return true
	}
	return false
}

// resolveURI turns a version's download URI into the location of its
// artifacts, as MLflow's client does: runs:/<run_id>/<path> is <path>
// under the run's artifact root, models:/<model_id>[/<path>] (an MLflow 3
// logged model) is under the logged model's artifact location. Others are
// returned as they are.
func (c *Client) resolveURI(ctx context.Context, uri string) (string, error) {
	rest, isRun := strings.CutPrefix(uri, "runs:/")
	if !isRun {
		rest, _ = strings.CutPrefix(uri, "models:/")
	}
	if rest == uri {
		return uri, nil
	}
	id, sub, _ := strings.Cut(strings.TrimLeft(rest, "/"), "/")
	for _, e := range strings.Split(sub, "/") {
		if e == ".." || e == "." {
			return "", fmt.Errorf("download URI %q: %q elements are not allowed", uri, e)
		}
	}
	var root string
	var err error
	switch {
	case id == "":
		return "", fmt.Errorf("download URI %q: no run or model id", uri)
	case isRun:
		root, err = c.RunArtifactURI(ctx, id)
	case strings.HasPrefix(id, "m-"):
		root, err = c.LoggedModelArtifactURI(ctx, id)
	default:
		// models:/<name>/<version> or models:/<name>@<alias>: a version
		// registered from another registry entry.
		return "", fmt.Errorf("download URI %q: a registry URI; register the version from the artifacts themselves (its source's run or logged model)", uri)
	}
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", uri, err)
	}
	if sub == "" {
		return root, nil
	}
	return strings.TrimRight(root, "/") + "/" + strings.Trim(sub, "/"), nil
}

// describeObjects lists an s3:// artifact directory through the object
// store, and reads the manifest if the store left it among the files.
func (s *registrySource) describeObjects(ctx context.Context, n int64, uri string) ([]source.File, []byte, error) {
	if s.objects == nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: artifacts at %s, and no object store is configured for s3://", s.model, n, uri)
	}
	all, err := s.objects.Files(ctx, uri, FlavorFile)
	if err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	files, mf, err := s.splitManifest(n, uri, all)
	if err != nil || mf == nil {
		return files, nil, err
	}
	tmp, err := os.MkdirTemp("", "tritongate-mlflow-manifest-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	if err := s.objects.FetchFiles(ctx, []source.File{*mf}, tmp, func(int64) {}); err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: reading %s: %w", s.model, n, mf.Loc, err)
	}
	data, err := os.ReadFile(filepath.Join(tmp, source.ManifestFile))
	if err != nil {
		return nil, nil, err
	}
	return files, data, nil
}

// describeLocal lists a file: artifact directory (a tracking server
// started with --no-serve-artifacts and a local artifact root, ./mlruns by
// default): readable only where that path is mounted.
func (s *registrySource) describeLocal(ctx context.Context, n int64, uri string) ([]source.File, []byte, error) {
	dir, err := localPath(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: the artifacts are at %s on the tracking server's disk (a server started with --no-serve-artifacts and a local artifact root), and that path is not mounted here: run the server with --serve-artifacts, keep the artifacts in S3, or mount the path: %w", s.model, n, uri, source.ErrNotFound)
	}
	all, err := local.Files(ctx, dir, FlavorFile)
	if err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	files, mf, err := s.splitManifest(n, uri, all)
	if err != nil || mf == nil {
		return files, nil, err
	}
	data, err := os.ReadFile(mf.Loc)
	if err != nil {
		return nil, nil, err
	}
	return files, data, nil
}

// localPath is the directory of a file: URI or an absolute path.
func localPath(uri string) (string, error) {
	if strings.HasPrefix(uri, "/") {
		return filepath.Clean(uri), nil
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return "", fmt.Errorf("artifact URI %q: %w", uri, unsupportedScheme(uri))
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("artifact URI %q: a file: URI on another host", uri)
	}
	if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("artifact URI %q: a relative path (the tracking server's ./mlruns?): run the server with --serve-artifacts or an absolute --default-artifact-root", uri)
	}
	return filepath.Clean(u.Path), nil
}

// describeProxy walks the artifact directory through the artifacts proxy,
// and downloads the manifest if there is one.
func (s *registrySource) describeProxy(ctx context.Context, n int64, uri string) ([]source.File, []byte, error) {
	root, err := s.c.resolveArtifact(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	subject := fmt.Sprintf("registered model %q, version %d, %s", s.model, n, uri)
	entries, err := s.c.walkArtifacts(ctx, root, subject, FlavorFile)
	if err != nil {
		return nil, nil, experimentHint(err, root)
	}
	all := make([]source.File, len(entries))
	for i, e := range entries {
		all[i] = source.File{Path: e.rel, Size: e.size, Loc: root.child(e.rel).uri}
	}
	files, mf, err := s.splitManifest(n, uri, all)
	if err != nil || mf == nil {
		return files, nil, err
	}
	data, err := s.c.readArtifact(ctx, root.child(mf.Path), fmt.Sprintf("registered model %q, version %d, %s", s.model, n, mf.Loc), maxManifestSize)
	if err != nil {
		return nil, nil, experimentHint(err, root)
	}
	if mf.Size >= 0 && int64(len(data)) != mf.Size {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %s: %w: %d bytes, the listing says %d", s.model, n, mf.Loc, source.ErrDigestMismatch, len(data), mf.Size)
	}
	return files, data, nil
}

// experimentHint explains a 403 on a version's artifacts: MLflow's
// basic-auth app grants artifact reads by the experiment that logged them
// (the first element of an mlflow-artifacts:/ path), so READ on the
// registered model alone lets the syncer resolve the version but not read
// it.
func experimentHint(err error, root artifactLoc) error {
	var ae *APIError
	if !errors.As(err, &ae) || (ae.StatusCode != http.StatusForbidden && ae.Code != "PERMISSION_DENIED") {
		return err
	}
	exp, _, _ := strings.Cut(root.path, "/")
	if exp == "" || strings.Trim(exp, "0123456789") != "" {
		exp = "that logged it"
	}
	ae.hint = fmt.Sprintf("reading a version's artifacts needs READ on the experiment %s as well as on the registered model (MLflow's basic-auth app checks artifact access by experiment)", exp)
	return err
}

// splitManifest checks the paths and takes the manifest (at the artifact
// root, at most maxManifestSize bytes) out of the files.
func (s *registrySource) splitManifest(n int64, uri string, all []source.File) ([]source.File, *source.File, error) {
	files := make([]source.File, 0, len(all))
	var mf *source.File
	seen := make(map[string]bool, len(all))
	for _, f := range all {
		if err := source.CheckPath(f.Path); err != nil {
			return nil, nil, refuse(fmt.Errorf("mlflow: refusing registered model %q version %d (%s): %v", s.model, n, uri, err))
		}
		if seen[f.Path] {
			return nil, nil, refuse(fmt.Errorf("mlflow: refusing registered model %q version %d (%s): %q listed twice", s.model, n, uri, f.Path))
		}
		seen[f.Path] = true
		if f.Path == source.ManifestFile {
			if f.Size > maxManifestSize {
				return nil, nil, refuse(fmt.Errorf("mlflow: refusing registered model %q version %d: %s is %d bytes (more than %d)", s.model, n, f.Loc, f.Size, maxManifestSize))
			}
			m := f
			mf = &m
			continue
		}
		files = append(files, f)
	}
	return files, mf, nil
}

// applyManifest sets SHA256 (and, where the listing has none, Size) on
// files from the manifest, which must list exactly these files: an extra or
// missing file, or a different size, means the artifacts changed after
// registration (or an upload is incomplete), and the version is refused.
func applyManifest(files []source.File, entries map[string]source.ManifestEntry) error {
	left := make(map[string]bool, len(entries))
	for p := range entries {
		left[p] = true
	}
	for i := range files {
		f := &files[i]
		e, ok := entries[f.Path]
		if !ok {
			return fmt.Errorf("%s (%s) is not in the %s (re-register the version, or remove the file)", f.Path, f.Loc, source.ManifestFile)
		}
		delete(left, f.Path)
		if f.Size >= 0 && f.Size != e.Size {
			return fmt.Errorf("%w: the manifest says %q is %d bytes, the artifact store has %d (changed after registration?)", source.ErrDigestMismatch, f.Path, e.Size, f.Size)
		}
		if f.SHA256 != "" && !strings.EqualFold(f.SHA256, e.SHA256) {
			return fmt.Errorf("%w: the manifest says %q has sha256 %s, the artifact store says %s", source.ErrDigestMismatch, f.Path, e.SHA256, f.SHA256)
		}
		f.Size = e.Size
		f.SHA256 = e.SHA256
	}
	if len(left) > 0 {
		missing := make([]string, 0, len(left))
		for p := range left {
			missing = append(missing, p)
		}
		sort.Strings(missing)
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", len(left)-5))
		}
		return fmt.Errorf("the %s lists files that are not among the artifacts: %s (an incomplete upload?)", source.ManifestFile, strings.Join(missing, ", "))
	}
	return nil
}

// Fetch downloads v's files into dir: through the object store when they
// are s3:// objects, by copying when they are local files, else through
// the artifacts proxy, up to fetchConcurrency at a time, each verified
// (SHA-256 when known, else MD5, else size). A retried download reports its
// bytes to progress again.
func (s *registrySource) Fetch(ctx context.Context, v source.Version, dir string, progress func(int64)) error {
	if progress == nil {
		progress = func(int64) {}
	}
	kinds := map[string]int{}
	for _, f := range v.Files {
		if err := source.CheckPath(f.Path); err != nil {
			return fmt.Errorf("mlflow: registered model %q version %d: refusing to write: %v", s.model, v.Number, err)
		}
		kinds[fileKind(f.Loc)]++
	}
	if len(kinds) > 1 {
		return fmt.Errorf("mlflow: registered model %q version %d: files in more than one kind of store", s.model, v.Number)
	}
	switch {
	case kinds["s3"] > 0:
		if s.objects == nil {
			return fmt.Errorf("mlflow: registered model %q version %d: no object store is configured for s3://", s.model, v.Number)
		}
		if err := s.objects.FetchFiles(ctx, v.Files, dir, progress); err != nil {
			return fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, v.Number, err)
		}
		return nil
	case kinds["local"] > 0:
		if err := local.FetchFiles(ctx, v.Files, dir, progress); err != nil {
			return fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, v.Number, err)
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchConcurrency)
	for _, f := range v.Files {
		g.Go(func() error { return s.download(gctx, v.Number, f, dir, progress) })
	}
	return g.Wait()
}

// fileKind tells where a file's Loc points: "s3", "local" (a path) or
// "proxy".
func fileKind(loc string) string {
	switch {
	case strings.HasPrefix(loc, "/"):
		return "local"
	case scheme(loc) == "s3":
		return "s3"
	}
	return "proxy"
}

// download fetches one file through the proxy into dir/f.Path and verifies
// it; a failed file is removed.
func (s *registrySource) download(ctx context.Context, n int64, f source.File, dir string, progress func(int64)) (err error) {
	subject := fmt.Sprintf("registered model %q, version %d, %s", s.model, n, f.Loc)
	loc, err := s.c.resolveArtifact(f.Loc)
	if err != nil {
		return fmt.Errorf("mlflow: registered model %q version %d: %s: %w", s.model, n, f.Path, err)
	}
	target := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	// Written under a temporary name, renamed when verified: what a crash or
	// an earlier failed attempt left in the directory is replaced, never
	// taken for the file.
	tmp := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".mlflow-part")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, cerr)
		}
		if err == nil {
			if rerr := os.Rename(tmp, target); rerr != nil {
				err = fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, rerr)
			}
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	return s.c.retry(ctx, func() error {
		if _, err := out.Seek(0, io.SeekStart); err != nil {
			return permanent(err)
		}
		if err := out.Truncate(0); err != nil {
			return permanent(err)
		}
		body, err := s.c.openOnce(ctx, loc, subject, f.Size)
		if err != nil {
			return err
		}
		defer body.Close()
		if body.size >= 0 && body.size != f.Size {
			return permanent(fmt.Errorf("mlflow: %s: %w: the server sends %d bytes, expected %d", subject, source.ErrDigestMismatch, body.size, f.Size))
		}
		return copyVerified(out, body, f, subject, progress)
	})
}

// copyVerified copies body (at most f.Size+1 bytes) to out and checks the
// size and the strongest checksum f carries.
func copyVerified(out io.Writer, body io.Reader, f source.File, subject string, progress func(int64)) error {
	var h hash.Hash
	want, algo := "", ""
	switch {
	case f.SHA256 != "":
		h, want, algo = sha256.New(), strings.ToLower(f.SHA256), "sha256"
	case f.MD5 != "":
		h, want, algo = md5.New(), strings.ToLower(f.MD5), "md5"
	}
	w := io.Writer(&fileWriter{out, progress})
	if h != nil {
		w = io.MultiWriter(w, h)
	}
	n, err := io.Copy(w, io.LimitReader(body, f.Size+1))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return permanent(fmt.Errorf("mlflow: %s: %w", subject, we.err))
		}
		return err // a read error: retried
	}
	if n != f.Size {
		return permanent(fmt.Errorf("mlflow: %s: %w: received %d bytes, expected %d", subject, source.ErrDigestMismatch, n, f.Size))
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return permanent(fmt.Errorf("mlflow: %s: %w: %s %s, expected %s", subject, source.ErrDigestMismatch, algo, got, want))
		}
	}
	return nil
}

// fileWriter reports progress and marks write errors (not retried).
type fileWriter struct {
	w        io.Writer
	progress func(int64)
}

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if n > 0 {
		w.progress(int64(n))
	}
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}
