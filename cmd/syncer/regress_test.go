// Regression tests from a review of the syncer: the comment on each test
// describes the bug it caught; the test checks the behaviour since.

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func reviewSetup(t *testing.T) (dir, catalog string) {
	dir = t.TempDir()
	src := filepath.Join(dir, "src", "digits")
	os.MkdirAll(filepath.Join(src, "1"), 0o755)
	os.WriteFile(filepath.Join(src, "1", "model.onnx"), testdata(t, "onnx", "models", "mnist.onnx"), 0o644)
	catalog = filepath.Join(dir, "catalog.yaml")
	os.WriteFile(catalog, []byte("models:\n  - {name: digits, source: "+src+", pools: [cpu]}\n"), 0o644)
	return dir, catalog
}

// --interval 0 (or any duration <= 0) is accepted and makes watch
// reconcile in a tight loop (every reconcile lists every model's source).
func TestWatchIntervalZeroRefused(t *testing.T) {
	dir, cat := reviewSetup(t)
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "watch", "--catalog", cat, "--pool", "cpu", "--repository", filepath.Join(dir, "models"),
		"--triton", "none", "--listen", "127.0.0.1:0", "--interval", "0", "--progress", "log")
	cmd.Env = append(os.Environ(), "SYNCER_TEST_MAIN=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	n := strings.Count(stderr.String(), `"msg":"reconciled"`)
	if n > 5 {
		t.Errorf("--interval 0 accepted: %d reconciles in one second", n)
	}
}

// --pool naming a pool no model has (a typo) is not refused: init exits 0
// and, on a repository the syncer filled, removes every model of it.
func TestInitUnknownPoolRefused(t *testing.T) {
	dir, cat := reviewSetup(t)
	repo := filepath.Join(dir, "models")
	if code, _, stderr := runSyncer("init", "--catalog", cat, "--pool", "cpu", "--repository", repo, "--triton", "none", "--progress", "log"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	code, _, stderr := runSyncer("init", "--catalog", cat, "--pool", "cpuu", "--repository", repo, "--triton", "none", "--progress", "log")
	ents, _ := os.ReadDir(repo)
	if code == 0 {
		t.Errorf("--pool cpuu (no such pool in the catalog): exit 0, repository now holds %d entries; log: %s", len(ents), lastLine(stderr))
	}
}

// Any file written in the catalog's folder (the demo's syncer-watch.log
// beside catalog.yaml) woke watch and made it reconcile: 7,235 reconciles
// in 3 s with a busy log there. It reconciles only when the catalog
// changes (or the interval comes).
func TestWatchIgnoresOtherFilesBesideTheCatalog(t *testing.T) {
	dir, cat := reviewSetup(t)
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "watch", "--catalog", cat, "--pool", "cpu", "--repository", filepath.Join(dir, "models"),
		"--triton", "none", "--listen", "127.0.0.1:0", "--interval", "1h", "--progress", "log")
	cmd.Env = append(os.Environ(), "SYNCER_TEST_MAIN=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	reconciles := func() int { return strings.Count(stderr.String(), `"msg":"reconciled"`) }
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for reconciles() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d reconciles, want %d; log:\n%s", reconciles(), n, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(1)
	busy := func(d time.Duration) {
		log, err := os.OpenFile(filepath.Join(dir, "syncer-watch.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		for end := time.Now().Add(d); time.Now().Before(end); {
			log.WriteString("a line of somebody's log\n")
			os.WriteFile(filepath.Join(dir, "other.tmp"), []byte("x"), 0o644)
			time.Sleep(2 * time.Millisecond)
		}
	}
	busy(1500 * time.Millisecond)
	if n := reconciles(); n != 1 {
		t.Fatalf("a busy log beside the catalog caused %d reconciles, want 1 (the first)", n)
	}
	// The catalog itself changing is seen at once, and only once per change.
	data, _ := os.ReadFile(cat)
	os.WriteFile(cat, append(data, "# edited\n"...), 0o644)
	waitFor(2)
	busy(500 * time.Millisecond)
	if n := reconciles(); n != 2 {
		t.Fatalf("%d reconciles after one catalog edit and a busy log, want 2", n)
	}
}

// syncBuffer is a strings.Builder safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
