// Package s3test runs a real S3 server in process for tests: gofakes3 over
// memory, behind a handler that counts requests and can refuse objects. It
// is a test-support package: production code never imports it.
package s3test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tritongate/tritongate/internal/source"
)

// Credentials the server accepts (gofakes3 does not check signatures, but
// clients must sign with something).
const (
	AccessKey = "AKIDTEST"
	SecretKey = "secret"
	Region    = "us-east-1"
)

// Server is an in-process S3 endpoint (path-style addressing).
type Server struct {
	URL     string
	backend *s3mem.Backend
	next    http.Handler
	srv     *httptest.Server

	mu    sync.Mutex
	gets  int            // object GETs (not listings)
	lists int            // bucket GETs (listings)
	deny  map[string]int // "bucket/key" → status to answer
}

// New starts a server with the given buckets, closed when the test ends.
func New(t testing.TB, buckets ...string) *Server {
	t.Helper()
	s := &Server{backend: s3mem.New(), deny: map[string]int{}}
	s.next = gofakes3.New(s.backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.Start()
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	for _, b := range buckets {
		if err := s.backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// ServeHTTP counts the request, answers refused objects, and passes the
// rest to gofakes3.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	isObject := strings.Contains(path, "/") && !strings.HasSuffix(path, "/")
	s.mu.Lock()
	switch {
	case r.Method == http.MethodGet && isObject:
		s.gets++
	case r.Method == http.MethodGet:
		s.lists++
	}
	status := s.deny[path]
	s.mu.Unlock()
	if status != 0 && isObject {
		code := map[int]string{403: "AccessDenied", 404: "NoSuchKey"}[status]
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>refused by the test</Message></Error>`, code)
		return
	}
	s.next.ServeHTTP(w, r)
}

// Put stores an object.
func (s *Server) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if _, err := s.backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// Delete removes an object.
func (s *Server) Delete(t testing.TB, bucket, key string) {
	t.Helper()
	if _, err := s.backend.DeleteObject(bucket, key); err != nil {
		t.Fatal(err)
	}
}

// PutVersion uploads a version's files under prefix with a manifest of
// their SHA-256 (as `modelctl register` writes it).
func (s *Server) PutVersion(t testing.TB, bucket, prefix string, files map[string][]byte) {
	t.Helper()
	var m source.Manifest
	for p, b := range files {
		s.Put(t, bucket, prefix+p, b)
		sum := sha256.Sum256(b)
		m.Files = append(m.Files, source.ManifestEntry{Path: p, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(t, bucket, prefix+source.ManifestFile, mb)
}

// Counts returns the object GETs and listings served since the last Reset.
func (s *Server) Counts() (gets, lists int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets, s.lists
}

// Reset zeroes the counts.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets, s.lists = 0, 0
}

// Refuse answers GETs of bucket/key with status (403 AccessDenied or 404
// NoSuchKey) from now on; 0 serves it again.
func (s *Server) Refuse(bucketKey string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.deny, bucketKey)
		return
	}
	s.deny[bucketKey] = status
}
