package syncer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tritongate/tritongate/internal/syncer"
)

// memCatalog is a catalog document the test edits; its tag is its digest,
// as a file's is.
type memCatalog struct {
	mu   sync.Mutex
	data string
}

func (m *memCatalog) set(s string) { m.mu.Lock(); m.data = s; m.mu.Unlock() }
func (m *memCatalog) Name() string { return "catalog.yaml" }
func (m *memCatalog) Read(context.Context) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sum := sha256.Sum256([]byte(m.data))
	return []byte(m.data), hex.EncodeToString(sum[:]), nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWatch: the sidecar follows catalog edits (a model added, one
// removed), keeps the last good catalog when an edit is invalid (counted
// once), reports a failing model on /readyz and /status, and serves
// /metrics.
func TestWatch(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(a, "1", "model.onnx"), model(t, "mnist.onnx"))
	writeFile(t, filepath.Join(b, "3", "model.onnx"), model(t, "mnist.onnx"))
	e := newEnv(t, localSources)
	cat := &memCatalog{}
	cat.set("defaults: {pools: [cpu]}\nmodels:\n  - {name: a, source: " + a + "}\n")
	srv := httptest.NewServer(e.syncer.Handler(e.reg, promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.syncer.Watch(ctx, cat, time.Hour, 10*time.Millisecond, nil, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	status := func() syncer.Status {
		_, body := get(t, srv.URL+"/status")
		var st syncer.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/status is not JSON: %v\n%s", err, body)
		}
		return st
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; /status: %+v; Triton: %s", what, status(), e.index(t))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	routable := func(model string, v int64) bool {
		m := status().Models[model]
		return m != nil && m.Versions[v] != nil && m.Versions[v].State == "routable"
	}

	waitFor("a/1 routable", func() bool { return routable("a", 1) })
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d with every model in place", code)
	}

	// An invalid edit: reported once, the last good catalog stays.
	cat.set("models:\n  - {name: b, source: " + b + ", verisons: {latest: 1}}\n")
	waitFor("the invalid catalog to be counted", func() bool {
		_, m := get(t, srv.URL+"/metrics")
		return strings.Contains(m, `syncer_catalog_reads_total{result="error"} 1`)
	})
	time.Sleep(100 * time.Millisecond) // ten more polls of the same document
	if _, m := get(t, srv.URL+"/metrics"); !strings.Contains(m, `syncer_catalog_reads_total{result="error"} 1`) {
		t.Errorf("the same invalid catalog was reported again:\n%s", m)
	}
	if got := e.index(t); got != "a/1:READY" {
		t.Errorf("after an invalid edit Triton has %q", got)
	}

	// b replaces a.
	cat.set("defaults: {pools: [cpu]}\nmodels:\n  - {name: b, source: " + b + "}\n")
	waitFor("b/3 routable, a unloaded and deleted", func() bool {
		return routable("b", 3) && e.index(t) == "b/3:READY" && e.versionsOnDisk(t, "a") == ""
	})

	// A model that cannot be put in place: not ready, and /status says why.
	cat.set("defaults: {pools: [cpu]}\nmodels:\n  - {name: b, source: " + b + "}\n  - {name: c, source: " + t.TempDir() + "}\n")
	waitFor("not ready", func() bool { code, _ := get(t, srv.URL+"/readyz"); return code == http.StatusServiceUnavailable })
	if c := status().Models["c"]; c == nil || c.State != "error" || !strings.Contains(c.Error, "no version") {
		t.Errorf("/status for c: %+v", c)
	}
	if code, _ := get(t, srv.URL+"/livez"); code != http.StatusOK {
		t.Errorf("/livez %d", code)
	}
	if _, m := get(t, srv.URL+"/metrics"); !strings.Contains(m, `syncer_version_routable{model="b",version="3"} 1`) || !strings.Contains(m, "syncer_reconciles_total") {
		t.Errorf("/metrics lacks the syncer's series:\n%s", m)
	}
}
