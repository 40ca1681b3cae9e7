// Package source is where model versions come from: the contract between
// the syncer and its sources (S3 prefixes, the MLflow model registry, local
// folders). A source lists a model's versions, resolves aliases, describes a
// version's files (with digests) and fetches them into a staging directory,
// verifying every file. Implementations: source/s3, source/mlflow,
// source/local.
package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Source is one model's versions at their origin.
type Source interface {
	// List returns the numbers of the versions available (for MLflow: in
	// status READY), in increasing order.
	List(ctx context.Context) ([]int64, error)
	// Alias resolves an alias (MLflow's champion, challenger...) to a
	// version number. Sources without aliases return ErrNoAliases.
	Alias(ctx context.Context, alias string) (int64, error)
	// Describe returns a version's files, each with what is known to verify
	// it, and the version's digest.
	Describe(ctx context.Context, number int64) (Version, error)
	// Fetch downloads every file of v into dir (an existing, empty
	// directory), creating subdirectories as needed, and verifies each one
	// (SHA-256 when known, else MD5, else size). progress is called with the
	// number of bytes received as they arrive (from several goroutines).
	// It writes nothing outside dir.
	Fetch(ctx context.Context, v Version, dir string, progress func(n int64)) error
}

// Version is one version of a model at its source.
type Version struct {
	Number int64
	// Files are sorted by Path.
	Files []File
	// Digest identifies the version's content: it changes when any file's
	// path, size or checksum does (see DigestOf).
	Digest string
	// Origin says where the version lives, for messages:
	// "s3://bucket/models/resnet/3/", "mlflow:ranker/3 (s3://...)".
	Origin string
}

// Size is the total size of the version's files.
func (v Version) Size() int64 {
	var n int64
	for _, f := range v.Files {
		n += f.Size
	}
	return n
}

// File is one file of a version.
type File struct {
	// Path is relative to the version directory, slash-separated, checked
	// by CheckPath.
	Path string
	Size int64
	// SHA256 (hex) when known: from the version's manifest or the
	// object's checksum. MD5 (hex) when known (a single-part S3 ETag).
	SHA256, MD5 string
	// Loc is where the source fetches it from (an s3:// URI, a URL, a
	// local path): opaque to the syncer, shown in messages.
	Loc string
	// ETag identifies the object's content at the source when no checksum
	// is known (an S3 multipart ETag): a file re-uploaded with the same
	// size is another version of it, and parts of the two are never mixed.
	ETag string `json:",omitempty"`
}

// ManifestFile is the name of the optional manifest a version may carry
// (written by modelctl when it registers a version): the SHA-256 of every
// other file of the version. It is used for verification and not published.
const ManifestFile = "tritongate-manifest.json"

// Manifest is the manifest's JSON form.
type Manifest struct {
	Files []ManifestEntry `json:"files"`
}

// ManifestEntry is one file of a manifest.
type ManifestEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ParseManifest reads a manifest: every entry's path must pass CheckPath,
// appear once and not be the manifest itself; sizes are non-negative;
// SHA-256 digests are 64 hex digits (returned lowercase). Unknown fields
// are ignored, for manifests written by newer tools.
func ParseManifest(data []byte) (map[string]ManifestEntry, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if m.Files == nil {
		return nil, errors.New(`no "files" list`)
	}
	entries := make(map[string]ManifestEntry, len(m.Files))
	for i, e := range m.Files {
		if err := CheckPath(e.Path); err != nil {
			return nil, fmt.Errorf("entry %d: %v", i, err)
		}
		if e.Path == ManifestFile {
			return nil, fmt.Errorf("entry %d: lists the manifest itself", i)
		}
		if _, dup := entries[e.Path]; dup {
			return nil, fmt.Errorf("entry %d: %q listed twice", i, e.Path)
		}
		if e.Size < 0 {
			return nil, fmt.Errorf("entry %d (%q): negative size %d", i, e.Path, e.Size)
		}
		e.SHA256 = strings.ToLower(e.SHA256)
		if _, err := hex.DecodeString(e.SHA256); err != nil || len(e.SHA256) != 64 {
			shown := e.SHA256
			if len(shown) > 80 {
				shown = shown[:80] + "…"
			}
			return nil, fmt.Errorf("entry %d (%q): sha256 %q is not 64 hex digits", i, e.Path, shown)
		}
		entries[e.Path] = e
	}
	return entries, nil
}

// DigestOf is the digest of a list of files: "sha256:" and the hex SHA-256
// of one line per file, sorted by path: path, size, and the strongest
// checksum known (else the ETag, else nothing: size only).
func DigestOf(files []File) string {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	h := sha256.New()
	for _, f := range sorted {
		sum := "size-only"
		switch {
		case f.SHA256 != "":
			sum = "sha256:" + f.SHA256
		case f.MD5 != "":
			sum = "md5:" + f.MD5
		case f.ETag != "":
			sum = "etag:" + f.ETag
		}
		fmt.Fprintf(h, "%s\t%d\t%s\n", f.Path, f.Size, sum)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

var pathElem = regexp.MustCompile(`^[A-Za-z0-9._+=@,-]+$`)

// CheckPath accepts a file path inside a version: relative,
// slash-separated, clean (no "." or ".." elements, no empty elements), each
// element made of letters, digits and ._+=@,- and not starting with a dot.
// Keys such as "../../etc/passwd" or "/abs" from a bucket listing are
// refused before anything is written.
func CheckPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return fmt.Errorf("path %q: must be relative and slash-separated", p)
	}
	if path.Clean(p) != p {
		return fmt.Errorf("path %q: not clean (no '.', '..' or empty elements)", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." || strings.HasPrefix(e, ".") || !pathElem.MatchString(e) {
			return fmt.Errorf("path %q: element %q not allowed (letters, digits and ._+=@,- only, not starting with '.')", p, e)
		}
	}
	return nil
}

// ParseVersion reads a version number as it appears in a directory or key
// name: a positive decimal integer without leading zeros.
func ParseVersion(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' || len(s) > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Errors a source returns wrapped (with the object or version they concern),
// so that callers can tell them apart with errors.Is.
var (
	// ErrNotFound: the model, version, alias or object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAccessDenied: the credentials may not read it.
	ErrAccessDenied = errors.New("access denied")
	// ErrDigestMismatch: a fetched file is not what its checksum says.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNoAliases: the source has no aliases (S3, local folders).
	ErrNoAliases = errors.New("this source has no aliases")
)
