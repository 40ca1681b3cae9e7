package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tritongate/tritongate/internal/source"
)

const testBucket = "models"

// fake is an in-process S3 (gofakes3) behind a middleware that counts
// requests and injects faults.
type fake struct {
	t       *testing.T
	backend *s3mem.Backend
	srv     *httptest.Server
	next    http.Handler

	mu     sync.Mutex
	counts map[string]int // "get", "list", "head", "other"
	gets   map[string]int // object GETs by key
	faults map[string]*fault
	served atomic.Int64 // object body bytes written
}

// fault is what happens to the GETs of one key.
type fault struct {
	status int    // answer with this HTTP status and S3 error code...
	code   string //
	times  int    // ...for the first times GETs (-1: always)

	cutAfter int64 // cut the connection after cutAfter body bytes...
	cuts     int   // ...for the first cuts GETs

	delay      time.Duration // pause this long every 32 KiB...
	delayTimes int           // ...for the first delayTimes GETs (-1: always)

	corrupt bool // flip the first byte of every response body

	etag, sse string // override the ETag, set x-amz-server-side-encryption

	n int // GETs seen
}

func newFake(t testing.TB) *fake {
	t.Helper()
	f := &fake{backend: s3mem.New(), counts: map[string]int{}, gets: map[string]int{}, faults: map[string]*fault{}}
	f.next = gofakes3.New(f.backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // gofakes3 complains about cut responses
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	if err := f.backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fake) store(t testing.TB, o Options) *Store {
	t.Helper()
	c, err := NewClient(context.Background(), ClientOptions{
		Region: "us-east-1", Endpoint: f.srv.URL, PathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Client = c
	if o.RetryBaseDelay == 0 {
		o.RetryBaseDelay = time.Millisecond
	}
	if o.RetryMaxDelay == 0 {
		o.RetryMaxDelay = 5 * time.Millisecond
	}
	return NewStore(o)
}

func (f *fake) put(t testing.TB, key string, data []byte) {
	t.Helper()
	if _, err := f.backend.PutObject(testBucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

func (f *fake) del(t testing.TB, key string) {
	t.Helper()
	if _, err := f.backend.DeleteObject(testBucket, key); err != nil {
		t.Fatal(err)
	}
}

func (f *fake) setFault(key string, ft *fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[key] = ft
}

func (f *fake) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[kind]
}

func (f *fake) getsOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[key]
}

func (f *fake) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = map[string]int{}
	f.gets = map[string]int{}
	f.served.Store(0)
}

var errCut = errors.New("cut by the test")

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	kind := "other"
	switch {
	case r.Method == http.MethodGet && key == "" && bucket != "":
		kind = "list"
	case r.Method == http.MethodGet && key != "":
		kind = "get"
	case r.Method == http.MethodHead:
		kind = "head"
	}
	f.mu.Lock()
	f.counts[kind]++
	var status int
	var code string
	var cutAfter int64 = -1
	var delay time.Duration
	var corrupt bool
	var etag, sse string
	if kind == "get" {
		f.gets[key]++
		if ft := f.faults[key]; ft != nil {
			ft.n++
			if ft.times < 0 || ft.n <= ft.times {
				status, code = ft.status, ft.code
			}
			if ft.n <= ft.cuts {
				cutAfter = ft.cutAfter
			}
			if ft.delayTimes < 0 || ft.n <= ft.delayTimes {
				delay = ft.delay
			}
			corrupt, etag, sse = ft.corrupt, ft.etag, ft.sse
		}
	}
	f.mu.Unlock()
	if kind != "get" {
		f.next.ServeHTTP(w, r)
		return
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message><Key>%s</Key><RequestId>test</RequestId></Error>`, code, key)
		return
	}
	cw := &faultWriter{ResponseWriter: w, ctx: r.Context(), limit: cutAfter, delay: delay, corrupt: corrupt, etag: etag, sse: sse, served: &f.served}
	f.next.ServeHTTP(cw, r)
	if cw.cut {
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
}

// faultWriter counts body bytes, and can slow down or cut a response.
type faultWriter struct {
	http.ResponseWriter
	ctx     context.Context
	n       int64
	limit   int64 // -1: none
	delay   time.Duration
	corrupt bool
	cut     bool
	served  *atomic.Int64

	etag, sse   string
	wroteHeader bool
}

func (w *faultWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if w.etag != "" {
			w.Header().Set("ETag", w.etag)
		}
		if w.sse != "" {
			w.Header().Set("x-amz-server-side-encryption", w.sse)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *faultWriter) Write(p []byte) (int, error) {
	if w.cut {
		return 0, errCut
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.corrupt && w.n == 0 && len(p) > 0 {
		p = append([]byte(nil), p...) // p is the server's copy of the object
		p[0] ^= 0xff
	}
	written := 0
	for len(p) > 0 {
		c := p
		if w.delay > 0 && len(c) > 32<<10 {
			c = c[:32<<10]
		}
		if w.limit >= 0 && w.n+int64(len(c)) > w.limit {
			c = c[:w.limit-w.n]
			w.cut = true
		}
		m, err := w.ResponseWriter.Write(c)
		w.n += int64(m)
		w.served.Add(int64(m))
		written += m
		if err != nil {
			return written, err
		}
		if w.cut {
			return written, errCut
		}
		p = p[len(c):]
		if w.delay > 0 {
			_ = http.NewResponseController(w.ResponseWriter).Flush()
			select {
			case <-time.After(w.delay):
			case <-w.ctx.Done():
				return written, w.ctx.Err()
			}
		}
	}
	return written, nil
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// putVersion uploads files under prefix, with a manifest if withManifest.
func (f *fake) putVersion(t testing.TB, prefix string, files map[string][]byte, withManifest bool) {
	t.Helper()
	var m source.Manifest
	for p, b := range files {
		f.put(t, prefix+p, b)
		m.Files = append(m.Files, source.ManifestEntry{Path: p, Size: int64(len(b)), SHA256: sha(b)})
	}
	if withManifest {
		sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		f.put(t, prefix+source.ManifestFile, b)
	}
}

// checkDir checks that dir holds exactly files (no dot-files left).
func checkDir(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	got := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		got[rel] = true
		want, ok := files[rel]
		if !ok {
			t.Errorf("unexpected file %s in the fetch directory", rel)
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s: content differs (%d bytes, want %d)", rel, len(b), len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range files {
		if !got[p] {
			t.Errorf("%s missing from the fetch directory", p)
		}
	}
}
