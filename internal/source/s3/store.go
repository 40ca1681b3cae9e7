package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tritongate/tritongate/internal/source"
)

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// Client is the S3 client (see NewClient). Its transport should keep at
	// least Concurrency idle connections per host.
	Client *awss3.Client
	// Concurrency is how many GETs run in parallel per Fetch (default 16).
	Concurrency int
	// PartSize: objects larger than this are fetched as parallel ranged GETs
	// of this size (default 8 MiB). Memory use is about
	// (Concurrency+2) x PartSize.
	PartSize int64
	// Retries is how many times a transient failure is retried (default 5;
	// negative: never).
	Retries int
	// RequestTimeout bounds each attempt of a request, body included
	// (default 60s): a part of PartSize must arrive within it.
	RequestTimeout time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the backoff: retry n waits a
	// random time up to min(RetryMaxDelay, RetryBaseDelay x 2^n)
	// (defaults 200ms and 15s).
	RetryBaseDelay, RetryMaxDelay time.Duration
	// Logger receives retries (Info) and per-fetch summaries (Debug).
	// Nil: discard.
	Logger *slog.Logger
	// OnRetry, if set, is called before each retry with the action
	// ("listing", "download", ...), for metrics.
	OnRetry func(action string)
}

// api is what the Store uses of the S3 client.
type api interface {
	GetObject(ctx context.Context, in *awss3.GetObjectInput, optFns ...func(*awss3.Options)) (*awss3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *awss3.ListObjectsV2Input, optFns ...func(*awss3.Options)) (*awss3.ListObjectsV2Output, error)
}

// Store fetches model versions and artifacts from S3. It is safe for
// concurrent use.
type Store struct {
	api                 api
	concurrency         int
	partSize            int64
	retries             int
	timeout             time.Duration
	baseDelay, maxDelay time.Duration
	log                 *slog.Logger
	onRetry             func(action string)
	bufPool             sync.Pool // *[]byte of partSize
	// syncEvery is how many bytes of a file without a checksum are written
	// between two fsyncs (see recordSynced); tests lower it.
	syncEvery int64
	// listPageSize is MaxKeys for listings (0: the server's default, 1000);
	// tests lower it to exercise pagination.
	listPageSize int32
}

// maxManifestSize bounds the manifest we read (about 100k files).
const maxManifestSize = 32 << 20

// NewStore returns a Store over o.Client.
func NewStore(o Options) *Store {
	st := &Store{
		concurrency: o.Concurrency,
		partSize:    o.PartSize,
		retries:     o.Retries,
		timeout:     o.RequestTimeout,
		baseDelay:   o.RetryBaseDelay,
		maxDelay:    o.RetryMaxDelay,
		log:         o.Logger,
		onRetry:     o.OnRetry,
		syncEvery:   64 << 20,
	}
	if o.Client != nil {
		st.api = o.Client
	}
	if st.concurrency <= 0 {
		st.concurrency = 16
	}
	if st.partSize <= 0 {
		st.partSize = 8 << 20
	}
	switch {
	case st.retries == 0:
		st.retries = 5
	case st.retries < 0:
		st.retries = 0
	}
	if st.timeout <= 0 {
		st.timeout = 60 * time.Second
	}
	if st.baseDelay <= 0 {
		st.baseDelay = 200 * time.Millisecond
	}
	if st.maxDelay <= 0 {
		st.maxDelay = 15 * time.Second
	}
	st.maxDelay = max(st.maxDelay, st.baseDelay)
	if st.log == nil {
		st.log = slog.New(slog.DiscardHandler)
	}
	return st
}

// opts are the per-call SDK options: the Store retries by itself (so the
// SDK's retryer is off, or attempts would multiply) and verifies whole files
// (so the SDK does not checksum responses).
func opts(o *awss3.Options) {
	o.Retryer = aws.NopRetryer{}
	o.RetryMaxAttempts = 0
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

func (st *Store) ready() error {
	if st == nil || st.api == nil {
		return errors.New("s3 store has no client (Options.Client is nil)")
	}
	return nil
}

// Model returns the model whose versions live under the prefix of uri
// (s3://bucket/prefix/), version N under <prefix>N/.
func (st *Store) Model(uri string) (source.Source, error) {
	if err := st.ready(); err != nil {
		return nil, err
	}
	bucket, prefix, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return &model{st: st, bucket: bucket, prefix: prefix}, nil
}

type model struct {
	st             *Store
	bucket, prefix string
}

func (m *model) uri() string { return "s3://" + m.bucket + "/" + m.prefix }

// List returns the version numbers found as <prefix>N/ "directories". A
// prefix with nothing under it is ErrNotFound; a prefix with objects but no
// version directories has no versions.
func (m *model) List(ctx context.Context) ([]int64, error) {
	seen := map[int64]bool{}
	found := false
	err := m.st.list(ctx, m.bucket, m.prefix, "/", func(out *awss3.ListObjectsV2Output) error {
		if len(out.Contents) > 0 || len(out.CommonPrefixes) > 0 {
			found = true
		}
		for _, cp := range out.CommonPrefixes {
			p := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), m.prefix), "/")
			if n, ok := source.ParseVersion(p); ok {
				seen[n] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the versions of model %s: %w", m.uri(), err)
	}
	if !found {
		return nil, fmt.Errorf("model %s: %w: nothing under this prefix (versions are expected as %sN/)", m.uri(), source.ErrNotFound, m.uri())
	}
	vs := make([]int64, 0, len(seen))
	for n := range seen {
		vs = append(vs, n)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	return vs, nil
}

// Alias: S3 prefixes have no aliases.
func (m *model) Alias(ctx context.Context, alias string) (int64, error) {
	return 0, fmt.Errorf("model %s: alias %q: %w (name a version number)", m.uri(), alias, source.ErrNoAliases)
}

// Describe lists version number's objects, reads its manifest if any and
// returns its files.
func (m *model) Describe(ctx context.Context, number int64) (source.Version, error) {
	if number <= 0 {
		return source.Version{}, fmt.Errorf("model %s: version %d: %w (versions are positive numbers)", m.uri(), number, source.ErrNotFound)
	}
	prefix := fmt.Sprintf("%s%d/", m.prefix, number)
	origin := "s3://" + m.bucket + "/" + prefix
	files, err := m.st.describe(ctx, m.bucket, prefix, nil)
	if err != nil {
		return source.Version{}, fmt.Errorf("model %s version %d: %w", m.uri(), number, err)
	}
	return source.Version{Number: number, Files: files, Digest: source.DigestOf(files), Origin: origin}, nil
}

// Fetch downloads v's files into dir (see FetchFiles).
func (m *model) Fetch(ctx context.Context, v source.Version, dir string, progress func(int64)) error {
	if err := m.st.FetchFiles(ctx, v.Files, dir, progress); err != nil {
		return fmt.Errorf("model %s version %d: %w", m.uri(), v.Number, err)
	}
	return nil
}

// Files describes every object under uri (s3://bucket/prefix/) as Describe
// does for a version: paths relative to the prefix, checked by
// source.CheckPath, checksums from tritongate-manifest.json when present, else
// from single-part ETags. Objects whose relative path skip (if not nil)
// accepts are left out before any check. Used for artifacts stored in S3
// (MLflow).
func (st *Store) Files(ctx context.Context, uri string, skip func(rel string) bool) ([]source.File, error) {
	if err := st.ready(); err != nil {
		return nil, err
	}
	bucket, prefix, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	files, err := st.describe(ctx, bucket, prefix, skip)
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", uri, err)
	}
	return files, nil
}

// list runs a paginated ListObjectsV2 and calls page for each page.
func (st *Store) list(ctx context.Context, bucket, prefix, delimiter string, page func(*awss3.ListObjectsV2Output) error) error {
	what := "s3://" + bucket + "/" + prefix
	var token *string
	seen := map[string]bool{}
	for {
		in := &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), ContinuationToken: token}
		if delimiter != "" {
			in.Delimiter = aws.String(delimiter)
		}
		if st.listPageSize > 0 {
			in.MaxKeys = aws.Int32(st.listPageSize)
		}
		var out *awss3.ListObjectsV2Output
		err := st.attempt(ctx, what, "listing", func(ctx context.Context) error {
			var err error
			out, err = st.api.ListObjectsV2(ctx, in, opts)
			return err
		})
		if err != nil {
			return err
		}
		if err := page(out); err != nil {
			return err
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		next := aws.ToString(out.NextContinuationToken)
		if next == "" || seen[next] {
			return fmt.Errorf("listing %s: the server returned a truncated page without a new continuation token", what)
		}
		seen[next] = true
		token = aws.String(next)
	}
}

// describe lists every object under prefix and returns the files, sorted by
// path, with what is known to verify them; skip (if not nil) leaves out
// paths.
func (st *Store) describe(ctx context.Context, bucket, prefix string, skip func(string) bool) ([]source.File, error) {
	origin := "s3://" + bucket + "/" + prefix
	var files []source.File
	var manifest *source.File
	byPath := map[string]bool{}
	err := st.list(ctx, bucket, prefix, "", func(out *awss3.ListObjectsV2Output) error {
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			size := aws.ToInt64(o.Size)
			rel, ok := strings.CutPrefix(key, prefix)
			if !ok {
				return fmt.Errorf("the listing of %s returned key %q outside the prefix", origin, key)
			}
			if strings.HasSuffix(key, "/") && size == 0 {
				continue // a "folder" marker (the console's Create folder)
			}
			if skip != nil && skip(rel) {
				continue
			}
			loc := "s3://" + bucket + "/" + key
			if err := source.CheckPath(rel); err != nil {
				return fmt.Errorf("refusing %s: object %s: %v (rename or remove it)", origin, loc, err)
			}
			if size < 0 {
				return fmt.Errorf("refusing %s: object %s: negative size %d in the listing", origin, loc, size)
			}
			if byPath[rel] {
				continue // a key repeated across pages by a sloppy server
			}
			byPath[rel] = true
			etag := strings.ToLower(strings.Trim(aws.ToString(o.ETag), `"`))
			f := source.File{Path: rel, Size: size, MD5: etagMD5(aws.ToString(o.ETag)), Loc: loc}
			if f.MD5 == "" {
				f.ETag = etag // no checksum: the ETag at least pins the object
			}
			if rel == source.ManifestFile {
				manifest = &f
				continue
			}
			files = append(files, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 && manifest == nil {
		return nil, fmt.Errorf("%s: %w: no objects under this prefix", origin, source.ErrNotFound)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	if err := checkNesting(files); err != nil {
		return nil, fmt.Errorf("refusing %s: %v", origin, err)
	}
	if manifest != nil {
		if err := st.applyManifest(ctx, origin, *manifest, files, skip); err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w: no files besides the manifest", origin, source.ErrNotFound)
	}
	return files, nil
}

// checkNesting refuses a file that is also another file's directory
// ("a" and "a/b"): they could not both be written.
func checkNesting(files []source.File) error {
	paths := make(map[string]bool, len(files))
	for _, f := range files {
		paths[f.Path] = true
	}
	for _, f := range files {
		for i := strings.IndexByte(f.Path, '/'); i >= 0; i = next(f.Path, i) {
			if paths[f.Path[:i]] {
				return fmt.Errorf("%q is both a file and the directory of %q", f.Path[:i], f.Path)
			}
		}
	}
	return nil
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// etagMD5 returns the MD5 an ETag is, for single-part uploads: 32 hex
// digits. Multipart ETags ("<hex>-N") and anything else give "".
func etagMD5(etag string) string {
	e := strings.ToLower(strings.Trim(etag, `"`))
	if len(e) != 32 || !isHex(e) {
		return ""
	}
	return e
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// applyManifest reads the version's manifest and sets SHA256 on files; it
// must list exactly the files, with their sizes.
func (st *Store) applyManifest(ctx context.Context, origin string, mf source.File, files []source.File, skip func(string) bool) error {
	if mf.Size > maxManifestSize {
		return fmt.Errorf("refusing %s: manifest %s is %d bytes (more than %d)", origin, mf.Loc, mf.Size, maxManifestSize)
	}
	bucket, key, err := parseLoc(mf.Loc)
	if err != nil {
		return err
	}
	var data []byte
	err = st.attempt(ctx, mf.Loc, "fetching", func(ctx context.Context) error {
		out, err := st.api.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}, opts)
		if err != nil {
			return err
		}
		defer out.Body.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(io.LimitReader(out.Body, maxManifestSize+1)); err != nil {
			return fmt.Errorf("%w: %w", errTruncated, err)
		}
		if b.Len() > maxManifestSize {
			return fmt.Errorf("manifest larger than %d bytes", maxManifestSize)
		}
		data = b.Bytes()
		if mf.MD5 != "" && !etagNotMD5(out) {
			if sum := md5.Sum(data); hex.EncodeToString(sum[:]) != mf.MD5 {
				return fmt.Errorf("%w: the manifest's MD5 is not its ETag", errTruncated)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the manifest of %s: %w", origin, err)
	}
	entries, err := source.ParseManifest(data)
	if err != nil {
		return fmt.Errorf("refusing %s: manifest %s: %v", origin, mf.Loc, err)
	}
	for p := range entries {
		if skip != nil && skip(p) {
			delete(entries, p) // left out of the version: not verified
		}
	}
	for i := range files {
		f := &files[i]
		e, ok := entries[f.Path]
		if !ok {
			return fmt.Errorf("refusing %s: object %s is not in the manifest %s (re-register the version, or remove the object)", origin, f.Loc, mf.Loc)
		}
		if e.Size != f.Size {
			return fmt.Errorf("refusing %s: the manifest says %q is %d bytes, object %s is %d bytes (the object was changed after registration?)", origin, f.Path, e.Size, f.Loc, f.Size)
		}
		f.SHA256 = e.SHA256
		delete(entries, f.Path)
	}
	if len(entries) > 0 {
		missing := make([]string, 0, len(entries))
		for p := range entries {
			missing = append(missing, p)
		}
		sort.Strings(missing)
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", len(entries)-5))
		}
		return fmt.Errorf("refusing %s: the manifest lists files that are not in the bucket: %s (an incomplete upload?)", origin, strings.Join(missing, ", "))
	}
	return nil
}

// etagNotMD5 says whether a response's ETag cannot be its MD5 even if it
// looks like one: objects encrypted with SSE-KMS or SSE-C (SSE-S3 keeps MD5
// ETags).
func etagNotMD5(out *awss3.GetObjectOutput) bool {
	return out.ServerSideEncryption == types.ServerSideEncryptionAwsKms ||
		out.ServerSideEncryption == types.ServerSideEncryptionAwsKmsDsse ||
		out.SSECustomerAlgorithm != nil
}
