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
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/tritongate/tritongate/internal/source"
	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
)

// ObjectStore lists and fetches artifacts that MLflow keeps in an object
// store (s3:// artifact URIs). *s3.Store satisfies it.
type ObjectStore interface {
	// Files describes every object under uri (a prefix): paths relative
	// to it, checked by source.CheckPath, with what is known to verify
	// them. A manifest among them may already be applied (and left out).
	Files(ctx context.Context, uri string) ([]source.File, error)
	// FetchFiles downloads files (as Files returned them) into dir, an
	// existing empty directory, verifying each as source.Source.Fetch
	// does.
	FetchFiles(ctx context.Context, files []source.File, dir string, progress func(int64)) error
}

// fetchConcurrency bounds the parallel downloads through the proxy.
const fetchConcurrency = 4

// maxManifestSize bounds the manifest read (about 100k files).
const maxManifestSize = 32 << 20

// NewSource is one registered model of the MLflow registry as a
// source.Source. objects serves s3:// artifact URIs (nil: such versions
// are refused); mlflow-artifacts:/ URIs go through c's artifacts proxy.
func NewSource(c *Client, model string, objects ObjectStore) source.Source {
	return &registrySource{c: c, model: model, objects: objects}
}

type registrySource struct {
	c       *Client
	model   string
	objects ObjectStore
}

// List returns the versions in status READY, ascending.
func (s *registrySource) List(ctx context.Context) ([]int64, error) {
	mvs, err := s.c.SearchModelVersions(ctx, s.model)
	if err != nil {
		return nil, err
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
// proxy URLs.
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
	uri, err := s.c.GetModelVersionDownloadURI(ctx, s.model, ver)
	if err != nil {
		return source.Version{}, err
	}
	origin := fmt.Sprintf("mlflow:%s/%d (%s)", s.model, n, uri)
	var files []source.File
	var manifest []byte
	switch scheme(uri) {
	case "s3":
		files, manifest, err = s.describeObjects(ctx, n, uri)
	case "mlflow-artifacts", "http", "https":
		files, manifest, err = s.describeProxy(ctx, n, uri)
	default:
		err = fmt.Errorf("mlflow: registered model %q version %d: artifact URI %q: unsupported scheme (want s3://, mlflow-artifacts:/ or an artifacts proxy URL)", s.model, n, uri)
	}
	if err != nil {
		return source.Version{}, err
	}
	refusing := fmt.Sprintf("mlflow: refusing registered model %q version %d (%s)", s.model, n, uri)
	if manifest != nil {
		entries, err := source.ParseManifest(manifest)
		if err != nil {
			return source.Version{}, fmt.Errorf("%s: %s: %v", refusing, source.ManifestFile, err)
		}
		if err := applyManifest(files, entries); err != nil {
			return source.Version{}, fmt.Errorf("%s: %w", refusing, err)
		}
	}
	for _, f := range files {
		if f.Size < 0 {
			return source.Version{}, fmt.Errorf("%s: the listing gives no size for %q and the version has no %s to verify it with", refusing, f.Path, source.ManifestFile)
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

// describeObjects lists an s3:// artifact directory through the object
// store, and reads the manifest if the store left it among the files.
func (s *registrySource) describeObjects(ctx context.Context, n int64, uri string) ([]source.File, []byte, error) {
	if s.objects == nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: artifacts at %s, and no object store is configured for s3://", s.model, n, uri)
	}
	all, err := s.objects.Files(ctx, uri)
	if err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	files, mf, err := s.splitManifest(n, uri, all)
	if err != nil || mf == nil {
		return files, nil, err
	}
	if mf.Size > maxManifestSize {
		return nil, nil, fmt.Errorf("mlflow: refusing registered model %q version %d: %s is %d bytes (more than %d)", s.model, n, mf.Loc, mf.Size, maxManifestSize)
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

// describeProxy walks the artifact directory through the artifacts proxy,
// and downloads the manifest if there is one.
func (s *registrySource) describeProxy(ctx context.Context, n int64, uri string) ([]source.File, []byte, error) {
	root, err := s.c.resolveArtifact(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %w", s.model, n, err)
	}
	subject := fmt.Sprintf("registered model %q, version %d, %s", s.model, n, uri)
	entries, err := s.c.walkArtifacts(ctx, root, subject)
	if err != nil {
		return nil, nil, err
	}
	all := make([]source.File, len(entries))
	for i, e := range entries {
		all[i] = source.File{Path: e.rel, Size: e.size, Loc: root.child(e.rel).uri}
	}
	files, mf, err := s.splitManifest(n, uri, all)
	if err != nil || mf == nil {
		return files, nil, err
	}
	if mf.Size > maxManifestSize {
		return nil, nil, fmt.Errorf("mlflow: refusing registered model %q version %d: %s is %d bytes (more than %d)", s.model, n, mf.Loc, mf.Size, maxManifestSize)
	}
	data, err := s.c.readArtifact(ctx, root.child(mf.Path), fmt.Sprintf("registered model %q, version %d, %s", s.model, n, mf.Loc), maxManifestSize)
	if err != nil {
		return nil, nil, err
	}
	if mf.Size >= 0 && int64(len(data)) != mf.Size {
		return nil, nil, fmt.Errorf("mlflow: registered model %q version %d: %s: %w: %d bytes, the listing says %d", s.model, n, mf.Loc, source.ErrDigestMismatch, len(data), mf.Size)
	}
	return files, data, nil
}

// splitManifest checks the paths and takes the manifest (at the artifact
// root) out of the files.
func (s *registrySource) splitManifest(n int64, uri string, all []source.File) ([]source.File, *source.File, error) {
	files := make([]source.File, 0, len(all))
	var mf *source.File
	seen := make(map[string]bool, len(all))
	for _, f := range all {
		if err := source.CheckPath(f.Path); err != nil {
			return nil, nil, fmt.Errorf("mlflow: refusing registered model %q version %d (%s): %v", s.model, n, uri, err)
		}
		if seen[f.Path] {
			return nil, nil, fmt.Errorf("mlflow: refusing registered model %q version %d (%s): %q listed twice", s.model, n, uri, f.Path)
		}
		seen[f.Path] = true
		if f.Path == source.ManifestFile {
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
// are s3:// objects, else through the artifacts proxy, up to
// fetchConcurrency at a time, each verified (SHA-256 when known, else MD5,
// else size). A retried download reports its bytes to progress again.
func (s *registrySource) Fetch(ctx context.Context, v source.Version, dir string, progress func(int64)) error {
	if progress == nil {
		progress = func(int64) {}
	}
	objects := 0
	for _, f := range v.Files {
		if err := source.CheckPath(f.Path); err != nil {
			return fmt.Errorf("mlflow: registered model %q version %d: refusing to write: %v", s.model, v.Number, err)
		}
		if scheme(f.Loc) == "s3" {
			objects++
		}
	}
	if objects > 0 {
		if objects != len(v.Files) {
			return fmt.Errorf("mlflow: registered model %q version %d: files both in an object store and behind the artifacts proxy", s.model, v.Number)
		}
		if s.objects == nil {
			return fmt.Errorf("mlflow: registered model %q version %d: no object store is configured for s3://", s.model, v.Number)
		}
		if err := s.objects.FetchFiles(ctx, v.Files, dir, progress); err != nil {
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
		body, err := s.c.openOnce(ctx, loc, subject)
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
