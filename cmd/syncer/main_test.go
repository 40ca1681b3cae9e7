package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/modelrepo"
	"github.com/tritongate/tritongate/internal/source"
	s3src "github.com/tritongate/tritongate/internal/source/s3"
	"github.com/tritongate/tritongate/internal/source/s3/s3test"
)

// TestMain lets the test binary stand in for the syncer binary: with
// SYNCER_TEST_MAIN set it runs the command (the crash test kills it).
func TestMain(m *testing.M) {
	if os.Getenv("SYNCER_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func testdata(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "..", "testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// s3Env points the AWS SDK's default chain at the test server's
// credentials, and nothing else on this machine.
func s3Env(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func runSyncer(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// lastLine is the line a user reads: the last one on stderr (the ones
// before are JSON logs).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestBadInvocations: each mistake gets one line naming it, and exit 1;
// nothing is written to the repository.
func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "models")
	good := filepath.Join(dir, "catalog.yaml")
	os.WriteFile(good, []byte("models:\n  - {name: a, source: \"s3://bkt/a/\", pools: [cpu]}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("models:\n  - name: x\n    source: s3://models/x/\n    pools: [cpu]\n    verisons: {latest: 1}\n"), 0o644)
	common := []string{"--repository", repo, "--triton", "none"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no catalog", []string{"init", "--pool", "cpu"}, "syncer: --catalog is required"},
		{"no pool", []string{"init", "--catalog", good}, "syncer: --pool is required"},
		{"unknown flag", []string{"init", "--frobnicate"}, "syncer: unknown flag: --frobnicate"},
		{"extra argument", []string{"init", "extra"}, `syncer: unknown command "extra" for "syncer init"`},
		{"bad progress", []string{"init", "--catalog", good, "--pool", "cpu", "--progress", "fancy"}, `syncer: --progress "fancy": bars, log or auto`},
		{"bad log level", []string{"init", "--catalog", good, "--pool", "cpu", "--log-level", "loud"}, `syncer: --log-level "loud"`},
		{"missing catalog", []string{"init", "--catalog", filepath.Join(dir, "nope.yaml"), "--pool", "cpu"}, "nope.yaml: no such file or directory"},
		{"bad catalog", []string{"init", "--catalog", bad, "--pool", "cpu"}, "bad.yaml:5:5: models[0].verisons: unknown field"},
		{"bad part size", []string{"init", "--catalog", good, "--pool", "cpu", "--part-size", "8 parsecs"}, `invalid argument "8 parsecs" for "--part-size" flag: want a positive size such as 8MiB`},
		{"zero interval", []string{"watch", "--catalog", good, "--pool", "cpu", "--interval", "0s"}, "syncer: --interval 0s: must be positive"},
		{"zero retry", []string{"init", "--catalog", good, "--pool", "cpu", "--retry", "0s"}, "syncer: --retry 0s: must be positive"},
		{"zero parallel", []string{"init", "--catalog", good, "--pool", "cpu", "--parallel", "0"}, "syncer: --parallel 0: must be at least 1"},
		{"unknown pool", []string{"init", "--catalog", good, "--pool", "cpuu"}, `syncer: --pool: pool "cpuu" is not in the catalog`},
		{"bad duration", []string{"init", "--catalog", good, "--pool", "cpu", "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, common...)
			code, _, stderr := runSyncer(args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if l := lastLine(stderr); !strings.Contains(l, tc.want) || !strings.HasPrefix(l, "syncer: ") {
				t.Errorf("last line %q, want one naming %q", l, tc.want)
			}
			if _, err := os.Stat(repo); err == nil {
				if ents, _ := os.ReadDir(repo); len(ents) > 0 {
					t.Errorf("the repository was written: %v", ents)
				}
			}
		})
	}
	if code, stdout, _ := runSyncer("--help"); code != 0 || !strings.Contains(stdout, "syncer init") || !strings.Contains(stdout, "--repository") {
		t.Errorf("--help: exit %d\n%s", code, stdout)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"8388608": 8 << 20, "8MiB": 8 << 20, "8M": 8 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "2 MiB": 2 << 20, "100B": 100,
		"0": -1, "-1MiB": -1, "MiB": -1, "1.5MiB": -1, "2TiB": -1, "": -1} {
		var b byteSize
		err := b.Set(in)
		if (want < 0) != (err != nil) || (err == nil && int64(b) != want) {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for in, want := range map[int64]string{8 << 20: "8MiB", 1 << 30: "1GiB", 1536: "1536", 3 << 10: "3KiB"} {
		b := byteSize(in)
		if got := b.String(); got != want {
			t.Errorf("String(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestInit: `syncer init --triton none` against S3 publishes the pool's
// models (and only them), exits 0, and a second run downloads nothing; a
// model whose object is missing makes init exit 1 naming it, while the
// others are in place.
func TestInit(t *testing.T) {
	s3Env(t)
	srv := s3test.New(t, "models")
	onnx := testdata(t, "onnx", "node", "test_add", "model.onnx")
	srv.PutVersion(t, "models", "a/1/", map[string][]byte{"model.onnx": onnx})
	srv.PutVersion(t, "models", "a/2/", map[string][]byte{"model.onnx": onnx, "extra/notes.txt": []byte("v2")})
	srv.PutVersion(t, "models", "b/7/", map[string][]byte{"model.onnx": onnx})
	srv.PutVersion(t, "models", "gpuonly/1/", map[string][]byte{"model.onnx": onnx})
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	os.WriteFile(cat, []byte(`s3: {endpoint: "`+srv.URL+`", path_style: true, region: us-east-1}
models:
  - {name: a, source: "s3://models/a/", pools: [cpu], versions: {latest: 2}}
  - {name: b, source: "s3://models/b/", pools: [cpu, gpu]}
  - {name: gpuonly, source: "s3://models/gpuonly/", pools: [gpu]}
`), 0o644)
	repo := filepath.Join(dir, "models")
	args := []string{"init", "--catalog", cat, "--pool", "cpu", "--repository", repo, "--triton", "none", "--progress", "log", "--retry", "10ms", "--timeout", "2s"}
	code, _, stderr := runSyncer(args...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, p := range []string{"a/1/model.onnx", "a/2/model.onnx", "a/2/extra/notes.txt", "a/config.pbtxt", "b/7/model.onnx", "b/config.pbtxt"} {
		if _, err := os.Stat(filepath.Join(repo, p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "gpuonly")); err == nil {
		t.Error("a model of another pool was published")
	}
	srv.Reset()
	if code, _, stderr := runSyncer(args...); code != 0 {
		t.Fatalf("second run: exit %d:\n%s", code, stderr)
	}
	if gets, _ := srv.Counts(); gets != 0 {
		t.Errorf("the second run made %d object GETs", gets)
	}

	// A missing object: init retries until --timeout, then names the model.
	srv.PutVersion(t, "models", "c/1/", map[string][]byte{"model.onnx": onnx})
	srv.Refuse("models/c/1/model.onnx", 404)
	os.WriteFile(cat, []byte(`s3: {endpoint: "`+srv.URL+`", path_style: true, region: us-east-1}
models:
  - {name: a, source: "s3://models/a/", pools: [cpu], versions: {numbers: [2]}}
  - {name: c, source: "s3://models/c/", pools: [cpu]}
`), 0o644)
	code, _, stderr = runSyncer(args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr)
	}
	t.Logf("init's report: %s", stderr[strings.LastIndex(stderr, "}\n")+2:])
	if !strings.Contains(stderr, "syncer: 1 of 2 models of pool cpu not in place") || !strings.Contains(stderr, "s3://models/c/1/model.onnx") {
		t.Errorf("stderr does not name the model and object:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(repo, "c")); err == nil {
		t.Error("the model with a missing object was published")
	}
	// a moved to version 2 only; b left the pool's catalog and was removed.
	if _, err := os.Stat(filepath.Join(repo, "a", "1")); err == nil {
		t.Error("a/1 is still there")
	}
	if _, err := os.Stat(filepath.Join(repo, "b")); err == nil {
		t.Error("b is still there")
	}

	// --allow-refused: a model that is not a valid ONNX model (retrying
	// cannot help) does not fail the init; a missing object (it may yet
	// appear) still does.
	srv.PutVersion(t, "models", "bad/1/", map[string][]byte{"model.onnx": []byte("not a model")})
	os.WriteFile(cat, []byte(`s3: {endpoint: "`+srv.URL+`", path_style: true, region: us-east-1}
models:
  - {name: a, source: "s3://models/a/", pools: [cpu], versions: {numbers: [2]}}
  - {name: bad, source: "s3://models/bad/", pools: [cpu]}
`), 0o644)
	code, _, stderr = runSyncer(args...)
	if code != 1 || !strings.Contains(stderr, "syncer: 1 of 2 models of pool cpu not in place") || !strings.Contains(stderr, "not a valid ONNX model") {
		t.Fatalf("a refused model without --allow-refused: exit %d, want 1 naming it:\n%s", code, stderr)
	}
	code, _, stderr = runSyncer(append(args, "--allow-refused")...)
	if code != 0 || !strings.Contains(stderr, `"model refused, not in place (--allow-refused)"`) || !strings.Contains(stderr, `"model":"bad"`) {
		t.Fatalf("--allow-refused: exit %d, want 0 with the refused model logged:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(repo, "a", "2", "model.onnx")); err != nil {
		t.Errorf("the good model is not in place: %v", err)
	}
	os.WriteFile(cat, []byte(`s3: {endpoint: "`+srv.URL+`", path_style: true, region: us-east-1}
models:
  - {name: bad, source: "s3://models/bad/", pools: [cpu]}
  - {name: c, source: "s3://models/c/", pools: [cpu]}
`), 0o644)
	if code, _, stderr = runSyncer(append(args, "--allow-refused")...); code != 1 || !strings.Contains(stderr, "s3://models/c/1/model.onnx") {
		t.Fatalf("--allow-refused with a missing object too: exit %d, want 1 naming it:\n%s", code, stderr)
	}
}

// checkRepo verifies that every published version under root is complete:
// it has a marker, and its files are exactly those of the marker with
// their sizes and SHA-256, which are the source's (want: "model/version/path" → sha256).
// Every config.pbtxt is a whole file naming its model. Hidden entries (a
// temporary config a kill left, cleaned at the next start) are counted in
// leftovers: Triton ignores them.
func checkRepo(t *testing.T, root string, want map[string]string) (versions []string, leftovers int) {
	t.Helper()
	models, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, 0
		}
		t.Fatal(err)
	}
	for _, me := range models {
		if strings.HasPrefix(me.Name(), ".") {
			continue // the lock file
		}
		mdir := filepath.Join(root, me.Name())
		ents, err := os.ReadDir(mdir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(mdir, e.Name())
			if strings.HasPrefix(e.Name(), ".") {
				leftovers++
				continue
			}
			if e.Name() == modelrepo.ConfigFile {
				b, _ := os.ReadFile(p)
				if !bytes.Contains(b, []byte(fmt.Sprintf("name: %q", me.Name()))) || !bytes.HasSuffix(b, []byte("\n")) {
					t.Errorf("%s is not a whole config:\n%s", p, b)
				}
				continue
			}
			if _, ok := source.ParseVersion(e.Name()); !ok {
				t.Errorf("%s: unexpected entry in a model directory", p)
				continue
			}
			versions = append(versions, me.Name()+"/"+e.Name())
			mk, err := readMarkerFile(filepath.Join(p, modelrepo.MarkerFile))
			if err != nil {
				t.Errorf("%s published without a readable marker: %v", p, err)
				continue
			}
			seen := map[string]bool{modelrepo.MarkerFile: true}
			for _, f := range mk.Files {
				seen[f.Path] = true
				b, err := os.ReadFile(filepath.Join(p, filepath.FromSlash(f.Path)))
				if err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				sum := sha256.Sum256(b)
				got := hex.EncodeToString(sum[:])
				if int64(len(b)) != f.Size || got != f.SHA256 || got != want[me.Name()+"/"+e.Name()+"/"+f.Path] {
					t.Errorf("%s/%s: %d bytes sha256 %s; marker says %d %s, the source %s", p, f.Path, len(b), got, f.Size, f.SHA256, want[me.Name()+"/"+e.Name()+"/"+f.Path])
				}
			}
			filepath.WalkDir(p, func(fp string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(p, fp)
					if !seen[filepath.ToSlash(rel)] {
						t.Errorf("%s: a file the marker does not list", fp)
					}
				}
				return nil
			})
		}
	}
	return versions, leftovers
}

func readMarkerFile(path string) (*modelrepo.Marker, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m modelrepo.Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// TestS3Catalog: a catalog in S3 is read whole once, then each poll is a
// HEAD until its ETag moves; init runs from it.
func TestS3Catalog(t *testing.T) {
	s3Env(t)
	srv := s3test.New(t, "models")
	onnx := testdata(t, "onnx", "node", "test_add", "model.onnx")
	srv.PutVersion(t, "models", "a/1/", map[string][]byte{"model.onnx": onnx})
	doc := "models:\n  - {name: a, source: \"s3://models/a/\", pools: [cpu]}\n"
	srv.Put(t, "models", "catalog.yaml", []byte(doc))
	cl, err := s3src.NewClient(context.Background(), s3src.ClientOptions{Endpoint: srv.URL, Region: s3test.Region, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &s3Catalog{uri: "s3://models/catalog.yaml", client: cl}
	b, tag, err := r.Read(context.Background())
	if err != nil || string(b) != doc || tag == "" {
		t.Fatalf("first read: %q %q %v", b, tag, err)
	}
	srv.Reset()
	b2, tag2, err := r.Read(context.Background())
	if gets, _ := srv.Counts(); err != nil || gets != 0 || tag2 != tag || string(b2) != doc {
		t.Errorf("unchanged read: %d GETs, tag %q→%q, %v", gets, tag, tag2, err)
	}
	srv.Put(t, "models", "catalog.yaml", []byte(doc+"  - {name: b, source: \"s3://models/b/\", pools: [cpu]}\n"))
	b3, tag3, err := r.Read(context.Background())
	if err != nil || tag3 == tag || !strings.Contains(string(b3), "name: b") {
		t.Errorf("changed read: %q %q %v", b3, tag3, err)
	}
	srv.Put(t, "models", "catalog.yaml", []byte(doc))

	repo := filepath.Join(t.TempDir(), "models")
	code, _, stderr := runSyncer("init", "--catalog", "s3://models/catalog.yaml", "--s3-endpoint", srv.URL, "--s3-path-style", "--s3-region", s3test.Region,
		"--pool", "cpu", "--repository", repo, "--triton", "none", "--progress", "log")
	if code != 0 {
		t.Fatalf("init from an s3:// catalog: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(repo, "a", "1", "model.onnx")); err != nil {
		t.Error(err)
	}
	code, _, stderr = runSyncer("init", "--catalog", "s3://models/nope.yaml", "--s3-endpoint", srv.URL, "--s3-path-style", "--s3-region", s3test.Region,
		"--pool", "cpu", "--repository", repo, "--triton", "none")
	if code != 1 || !strings.Contains(lastLine(stderr), "syncer: reading the catalog s3://models/nope.yaml") {
		t.Errorf("a missing s3:// catalog: exit %d, %q", code, lastLine(stderr))
	}
}

// TestWatchAnswersLivenessWhileWaitingForTriton: `syncer watch` listens
// before it waits for Triton: /livez is 200 (a liveness probe must not
// kill it while Triton starts) and /readyz 503.
func TestWatchAnswersLivenessWhileWaitingForTriton(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	os.WriteFile(cat, []byte("models:\n  - {name: a, source: \"s3://bkt/a/\", pools: [cpu]}\n"), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(os.Args[0], "watch", "--catalog", cat, "--pool", "cpu", "--repository", filepath.Join(dir, "models"),
		"--triton", "127.0.0.1:1", "--triton-wait", "1m", "--listen", addr)
	cmd.Env = append(os.Environ(), "SYNCER_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	code := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(10 * time.Second)
	for code("/livez") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/livez never answered while waiting for Triton")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := code("/readyz"); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d while waiting for Triton, want 503", c)
	}
}

// FuzzByteSize: an accepted size is positive and prints back to itself.
func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"8MiB", "8388608", "512K", "1GiB", "0", "-1", "9223372036854775807", "1TiB", " 2 M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b byteSize
		if b.Set(s) != nil {
			return
		}
		if b <= 0 {
			t.Fatalf("Set(%q) = %d", s, b)
		}
		var back byteSize
		if err := back.Set(b.String()); err != nil || back != b {
			t.Fatalf("Set(%q) = %d prints %q, which reads back as %d (%v)", s, b, b.String(), back, err)
		}
	})
}
