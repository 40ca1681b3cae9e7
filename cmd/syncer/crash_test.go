package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/source/s3/s3test"
)

// crashCatalogs are the desired states the crash test moves between, so
// that kills land in downloads, publishes, config writes and deletions.
var crashCatalogs = []string{
	`models:
  - {name: m0, source: "s3://models/m0/", versions: {numbers: [1]}}
  - {name: m1, source: "s3://models/m1/", versions: {numbers: [1]}}
  - {name: m2, source: "s3://models/m2/", versions: {numbers: [1]}}
  - {name: m3, source: "s3://models/m3/", versions: {numbers: [1]}}
`,
	`models:
  - {name: m0, source: "s3://models/m0/", versions: {latest: 1}}
  - {name: m1, source: "s3://models/m1/", versions: {latest: 2}}
  - {name: m4, source: "s3://models/m4/", versions: {numbers: [1, 2]}}
  - {name: m5, source: "s3://models/m5/", versions: {latest: 1}}
`,
	`models:
  - {name: m2, source: "s3://models/m2/", versions: {numbers: [2]}}
  - {name: m3, source: "s3://models/m3/", versions: {numbers: [1, 2]}}
  - {name: m4, source: "s3://models/m4/", versions: {numbers: [1]}}
  - {name: m5, source: "s3://models/m5/", versions: {numbers: [2]}}
`,
}

// TestCrashSafety SIGKILLs `syncer init` processes at random points while
// they sync (at least 30 times, moving between catalogs), and checks after
// each kill that every published version is complete and exactly what the
// source holds; then a run to the end converges to the last catalog.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 30 processes")
	}
	s3Env(t)
	srv := s3test.New(t, "models")
	onnx := testdata(t, "onnx", "node", "test_add", "model.onnx")
	want := map[string]string{} // model/version/path → sha256
	rng := rand.New(rand.NewPCG(1, 2))
	for m := range 6 {
		for v := 1; v <= 2; v++ {
			files := map[string][]byte{"model.onnx": onnx}
			for i := range 3 {
				b := make([]byte, 256<<10+rng.IntN(768<<10))
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				files[fmt.Sprintf("weights/part-%d.bin", i)] = b
			}
			for p, b := range files {
				sum := sha256.Sum256(b)
				want[fmt.Sprintf("m%d/%d/%s", m, v, p)] = hex.EncodeToString(sum[:])
			}
			srv.PutVersion(t, "models", fmt.Sprintf("m%d/%d/", m, v), files)
		}
	}
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	repo := filepath.Join(dir, "models")
	writeCatalog := func(i int) {
		// Written atomically, as a ConfigMap update is.
		tmp := cat + ".tmp"
		if err := os.WriteFile(tmp, []byte(`s3: {endpoint: "`+srv.URL+`", path_style: true, region: us-east-1}
defaults: {pools: [cpu]}
`+crashCatalogs[i]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cat); err != nil {
			t.Fatal(err)
		}
	}
	start := func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, os.Args[0], "init", "--catalog", cat, "--pool", "cpu", "--repository", repo,
			"--triton", "none", "--progress", "log", "--log-level", "warn", "--retry", "50ms", "--timeout", "30s",
			"--concurrency", "4", "--part-size", "262144", "--parallel", "2")
		cmd.Env = append(os.Environ(), "SYNCER_TEST_MAIN=1")
		cmd.Stderr = &strings.Builder{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// A calibration run measures how long a sync from nothing takes.
	writeCatalog(1)
	began := time.Now()
	cmd := start(context.Background())
	if err := cmd.Wait(); err != nil {
		t.Fatalf("calibration run: %v\n%s", err, cmd.Stderr)
	}
	full := time.Since(began)
	if _, left := checkRepo(t, repo, want); left > 0 {
		t.Errorf("a run to the end left %d hidden entries", left)
	}
	os.RemoveAll(repo)

	kills, runs := 0, 0
	for kills < 30 && runs < 200 {
		runs++
		c := rng.IntN(len(crashCatalogs))
		writeCatalog(c)
		cmd := start(context.Background())
		after := time.Duration(rng.Int64N(int64(full)))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d (catalog %d) failed on its own: %v\n%s", runs, c, err, cmd.Stderr)
			}
		case <-time.After(after):
			cmd.Process.Signal(syscall.SIGKILL)
			if err := <-done; err != nil {
				kills++
			}
		}
		versions, _ := checkRepo(t, repo, want)
		if t.Failed() {
			t.Fatalf("after run %d (catalog %d, killed after %v): the repository is inconsistent", runs, c, after)
		}
		t.Logf("run %d: catalog %d, kill after %v: %d versions in place", runs, c, after, len(versions))
	}
	if kills < 30 {
		t.Fatalf("only %d of %d runs were killed before they finished", kills, runs)
	}

	// The next run converges: exactly the last catalog's versions.
	writeCatalog(2)
	cmd = start(context.Background())
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final run: %v\n%s", err, cmd.Stderr)
	}
	got, left := checkRepo(t, repo, want)
	if left > 0 {
		t.Errorf("the final run left %d hidden entries in model directories", left)
	}
	slices.Sort(got)
	if w := []string{"m2/2", "m3/1", "m3/2", "m4/1", "m5/2"}; !slices.Equal(got, w) {
		t.Errorf("after the final run: %v, want %v", got, w)
	}
	// Partial downloads of versions no longer wanted are gone too.
	if work, _ := os.ReadDir(filepath.Join(dir, ".models-staging", "work")); len(work) > 0 {
		t.Errorf("%d stages left after the final run", len(work))
	}
	t.Logf("%d kills in %d runs (a full sync takes %v)", kills, runs, full)
}
