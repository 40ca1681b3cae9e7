package mlflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/proto/mlflow/artifacts"
)

// artifactsAPI is the artifacts proxy's REST root under a tracking server
// (mlflow_artifacts.proto: listArtifacts, downloadArtifact).
const artifactsAPI = "/api/2.0/mlflow-artifacts/artifacts"

// artifactLoc is a path behind an artifacts proxy.
type artifactLoc struct {
	// endpoint is the proxy's REST root: <server>[/prefix]/api/2.0/mlflow-artifacts/artifacts.
	endpoint *url.URL
	// path is relative to the proxy's root, without leading or trailing
	// slash; "" is the root.
	path string
	// uri is how the location was given (for messages and File.Loc).
	uri string
}

// child is the location of rel (slash-separated, checked) below l.
func (l artifactLoc) child(rel string) artifactLoc {
	if rel == "" {
		return l
	}
	c := l
	c.path = joinPath(l.path, rel)
	c.uri = strings.TrimRight(l.uri, "/") + "/" + rel
	return c
}

func (l artifactLoc) listURL() *url.URL {
	u := *l.endpoint
	if l.path != "" {
		u.RawQuery = url.Values{"path": {l.path}}.Encode()
	}
	return &u
}

func (l artifactLoc) fileURL() *url.URL {
	u := *l.endpoint
	segs := strings.Split(l.path, "/")
	esc := make([]string, len(segs))
	for i, s := range segs {
		esc[i] = url.PathEscape(s)
	}
	u.Path = l.endpoint.Path + "/" + l.path
	u.RawPath = l.endpoint.EscapedPath() + "/" + strings.Join(esc, "/")
	return &u
}

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// resolveArtifact maps an artifact URI to the proxy serving it, as MLflow's
// client does:
//
//	mlflow-artifacts:/<path>             the tracking server's proxy
//	mlflow-artifacts://<host:port>/<path> the proxy at that host (tracking server's scheme and path prefix)
//	http(s)://<host>/[prefix/]api/2.0/mlflow-artifacts/artifacts/<path>
func (c *Client) resolveArtifact(uri string) (artifactLoc, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return artifactLoc{}, fmt.Errorf("artifact URI %q: %w", uri, err)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return artifactLoc{}, fmt.Errorf("artifact URI %q: unexpected form", uri)
	}
	var ep url.URL
	var p string
	switch u.Scheme {
	case "mlflow-artifacts":
		ep = *c.base
		if u.Host != "" {
			if u.Hostname() == "" {
				return artifactLoc{}, fmt.Errorf("artifact URI %q: a port without a host", uri)
			}
			ep.Host = u.Host
		}
		ep.Path = c.base.Path + artifactsAPI
		p = u.Path
	case "http", "https":
		i := strings.Index(u.Path, artifactsAPI)
		rest := ""
		if i >= 0 {
			rest = u.Path[i+len(artifactsAPI):]
		}
		if i < 0 || (rest != "" && rest[0] != '/') {
			return artifactLoc{}, fmt.Errorf("artifact URI %q: an http(s) artifact location must be an MLflow artifacts proxy URL (…%s/…)", uri, artifactsAPI)
		}
		ep = url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path[:i+len(artifactsAPI)]}
		p = rest
	default:
		return artifactLoc{}, fmt.Errorf("artifact URI %q: not served by an MLflow artifacts proxy", uri)
	}
	// url.Parse lets through hosts that a URL cannot carry back ("::").
	if _, err := url.Parse(ep.String()); err != nil {
		return artifactLoc{}, fmt.Errorf("artifact URI %q: host %q: %w", uri, ep.Host, err)
	}
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "":
			continue // MLflow collapses repeated slashes
		case ".", "..":
			return artifactLoc{}, fmt.Errorf("artifact URI %q: %q elements are not allowed", uri, s)
		}
		segs = append(segs, s)
	}
	ep.RawPath = ""
	return artifactLoc{endpoint: &ep, path: strings.Join(segs, "/"), uri: uri}, nil
}

// ListArtifacts lists the direct children of an artifact directory through
// the artifacts proxy (GET /api/2.0/mlflow-artifacts/artifacts?path=...).
// uri is an mlflow-artifacts:/ URI or an http(s) URL of the proxy. MLflow
// answers with base names.
func (c *Client) ListArtifacts(ctx context.Context, uri string) ([]*artifacts.FileInfo, error) {
	loc, err := c.resolveArtifact(uri)
	if err != nil {
		return nil, fmt.Errorf("mlflow: list artifacts: %w", err)
	}
	return c.listArtifacts(ctx, loc, fmt.Sprintf("artifacts %q", uri))
}

func (c *Client) listArtifacts(ctx context.Context, loc artifactLoc, subject string) ([]*artifacts.FileInfo, error) {
	var resp artifacts.ListArtifacts_Response
	if err := c.getJSON(ctx, "list artifacts", subject, loc.listURL(), &resp); err != nil {
		return nil, err
	}
	return resp.GetFiles(), nil
}

// OpenArtifact starts downloading one artifact file through the artifacts
// proxy (GET /api/2.0/mlflow-artifacts/artifacts/<path>). Failures are
// retried until the response headers arrive; the caller reads and closes
// the body, which fails if no data comes for Options.Timeout.
func (c *Client) OpenArtifact(ctx context.Context, uri string) (io.ReadCloser, error) {
	loc, err := c.resolveArtifact(uri)
	if err != nil {
		return nil, fmt.Errorf("mlflow: download artifact: %w", err)
	}
	var body *artifactBody
	err = c.retry(ctx, func() error {
		var err error
		body, err = c.openOnce(ctx, loc, fmt.Sprintf("artifact %q", uri), -1)
		return err
	})
	if err != nil {
		return nil, err
	}
	return body, nil
}

// idleError is the cancel cause of a download that stalled.
type idleError struct{ d time.Duration }

func (e *idleError) Error() string { return fmt.Sprintf("no data received for %s", e.d) }

// headerWait is how long a download of size bytes (-1: unknown) may take
// to answer: MLflow's artifacts proxy copies the whole file from its store
// to its own disk before it sends the headers, so the wait grows with the
// size (Options.DownloadRate). Giving up early would not help: a retry
// starts the copy again.
func (c *Client) headerWait(size int64) time.Duration {
	if size <= 0 {
		return c.timeout
	}
	return c.timeout + time.Duration(float64(size)/float64(c.rate)*float64(time.Second))
}

// openOnce sends one download request for a file of size bytes (-1:
// unknown).
func (c *Client) openOnce(ctx context.Context, loc artifactLoc, subject string, size int64) (*artifactBody, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	idle := &idleError{c.timeout}
	first := &idleError{c.headerWait(size)}
	timer := time.AfterFunc(first.d, func() { cancel(first) })
	res, err := c.send(ctx, "download artifact", subject, loc.fileURL())
	if err != nil {
		timer.Stop()
		cancel(nil)
		if errors.Is(context.Cause(ctx), first) {
			return nil, fmt.Errorf("mlflow: download artifact (%s): no answer within %s: %w", subject, first.d.Round(time.Second), first)
		}
		return nil, err
	}
	timer.Reset(idle.d)
	return &artifactBody{rc: res.Body, size: res.ContentLength, ctx: ctx, cancel: cancel, timer: timer, idle: idle, first: first, subject: subject}, nil
}

// artifactBody is a download's body with an idle timeout.
type artifactBody struct {
	rc      io.ReadCloser
	size    int64 // Content-Length, -1 if unknown
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	idle    *idleError
	first   *idleError // the wait for the headers, if it fires late
	subject string
}

func (b *artifactBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle.d)
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); errors.Is(cause, b.idle) || errors.Is(cause, b.first) {
			err = b.idle
		}
		err = fmt.Errorf("mlflow: download artifact (%s): %w", b.subject, err)
	}
	return n, err
}

func (b *artifactBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// listEntry is one entry of an artifact listing, checked.
type listEntry struct {
	// rel is the path relative to the artifact root being walked.
	rel   string
	isDir bool
	// size is -1 when the listing gives none.
	size int64
}

// listingEntries checks one listing of the directory rel (relative to the
// walked root; listed is the same directory relative to the proxy's root).
// MLflow answers with base names; full paths below listed are accepted too.
// Entries whose path skip (if not nil) accepts are left out; every other
// resulting path must pass source.CheckPath. A file without file_size is
// empty: MLflow's JSON leaves out a size of 0 (the download's
// Content-Length is checked against it).
func listingEntries(listed, rel string, files []*artifacts.FileInfo, skip func(string) bool) ([]listEntry, error) {
	out := make([]listEntry, 0, len(files))
	seen := make(map[string]bool, len(files))
	for _, fi := range files {
		name := fi.GetPath()
		if listed != "" && strings.HasPrefix(name, listed+"/") {
			name = name[len(listed)+1:]
		}
		if name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("listing of %q: entry %q is not a file name", listed, fi.GetPath())
		}
		p := joinPath(rel, name)
		if skip != nil && skip(p) {
			continue
		}
		if err := source.CheckPath(p); err != nil {
			return nil, fmt.Errorf("artifact refused: %w", err)
		}
		if seen[p] {
			return nil, fmt.Errorf("listing of %q: entry %q appears twice", listed, name)
		}
		seen[p] = true
		e := listEntry{rel: p, isDir: fi.GetIsDir(), size: -1}
		if !e.isDir {
			if fi.GetFileSize() < 0 {
				return nil, fmt.Errorf("listing of %q: entry %q has size %d", listed, name, fi.GetFileSize())
			}
			e.size = fi.GetFileSize() // 0 when absent
		}
		out = append(out, e)
	}
	return out, nil
}

// Walk limits, against listings that never end.
const (
	maxWalkDepth    = 32
	maxWalkFiles    = 100000
	maxWalkListings = 10000
)

// walkArtifacts lists every file below root through the proxy, leaving out
// (and not descending into) the paths skip accepts.
func (c *Client) walkArtifacts(ctx context.Context, root artifactLoc, subject string, skip func(string) bool) ([]listEntry, error) {
	type dir struct {
		rel   string
		depth int
	}
	var files []listEntry
	stack := []dir{{}}
	for listings := 0; len(stack) > 0; listings++ {
		if listings >= maxWalkListings {
			return nil, fmt.Errorf("mlflow: list artifacts (%s): more than %d directories", subject, maxWalkListings)
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		loc := root.child(d.rel)
		infos, err := c.listArtifacts(ctx, loc, subject)
		if err != nil {
			return nil, err
		}
		entries, err := listingEntries(loc.path, d.rel, infos, skip)
		if err != nil {
			return nil, fmt.Errorf("mlflow: list artifacts (%s): %w", subject, err)
		}
		for _, e := range entries {
			if e.isDir {
				if d.depth+1 > maxWalkDepth {
					return nil, fmt.Errorf("mlflow: list artifacts (%s): directory %q nested deeper than %d", subject, e.rel, maxWalkDepth)
				}
				stack = append(stack, dir{e.rel, d.depth + 1})
				continue
			}
			files = append(files, e)
			if len(files) > maxWalkFiles {
				return nil, fmt.Errorf("mlflow: list artifacts (%s): more than %d files", subject, maxWalkFiles)
			}
		}
	}
	return files, nil
}

// readArtifact downloads a small artifact (at most max bytes) into memory.
func (c *Client) readArtifact(ctx context.Context, loc artifactLoc, subject string, max int64) ([]byte, error) {
	var data []byte
	err := c.retry(ctx, func() error {
		body, err := c.openOnce(ctx, loc, subject, max)
		if err != nil {
			return err
		}
		defer body.Close()
		data, err = io.ReadAll(io.LimitReader(body, max+1))
		if err != nil {
			return err
		}
		if int64(len(data)) > max {
			return permanent(fmt.Errorf("mlflow: download artifact (%s): larger than %d bytes", subject, max))
		}
		return nil
	})
	return data, err
}
