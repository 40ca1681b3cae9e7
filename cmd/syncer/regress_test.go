// Regression tests from a review of the syncer: the comment on each test
// describes the bug it caught; the test checks the behaviour since.

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
