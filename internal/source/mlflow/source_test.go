package mlflow_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/mlflow"
	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
)

func TestSourceList(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	check(t, s.CreateModel("other"))
	statuses := []mlflowpb.ModelVersionStatus{
		mlflowpb.ModelVersionStatus_READY,                // 1
		mlflowpb.ModelVersionStatus_PENDING_REGISTRATION, // 2
		mlflowpb.ModelVersionStatus_READY,                // 3
		mlflowpb.ModelVersionStatus_FAILED_REGISTRATION,  // 4
		mlflowpb.ModelVersionStatus_READY,                // 5
		mlflowpb.ModelVersionStatus_READY,                // 6
		mlflowpb.ModelVersionStatus_PENDING_REGISTRATION, // 7
	}
	for _, st := range statuses {
		v := must[int64](t)(s.CreateVersion("ranker", "s3://b/ranker"))
		check(t, s.SetVersionStatus("ranker", v, st, ""))
	}
	must[int64](t)(s.CreateVersion("other", "s3://b/other"))
	s.SetPageSize(3)

	for _, tc := range []struct {
		model string
		want  []int64
	}{
		{"ranker", []int64{1, 3, 5, 6}},
		{"other", []int64{1}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			got, err := mlflow.NewSource(newClient(t, ts.URL), tc.model, nil).List(t.Context())
			check(t, err)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("List = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSourceAlias(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	for range 3 {
		must[int64](t)(s.CreateVersion("ranker", "s3://b/k"))
	}
	check(t, s.SetAlias("ranker", "champion", 2))
	check(t, s.SetAlias("ranker", "challenger", 3))
	check(t, s.SetAlias("ranker", "old", 1))
	check(t, s.DeleteAlias("ranker", "old"))
	src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
	for _, tc := range []struct {
		alias string
		want  int64
	}{{"champion", 2}, {"challenger", 3}, {"old", 0}, {"nope", 0}} {
		t.Run(tc.alias, func(t *testing.T) {
			n, err := src.Alias(t.Context(), tc.alias)
			if tc.want == 0 {
				wantErr(t, err, source.ErrNotFound, `registered model "ranker"`, fmt.Sprintf("alias %q", tc.alias))
				return
			}
			check(t, err)
			if n != tc.want {
				t.Errorf("Alias(%s) = %d, want %d", tc.alias, n, tc.want)
			}
		})
	}
}

func TestDescribeProxy(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	all := onnxFlavor()
	files := served(all)
	v := putVersion(t, s, "ranker", "1/run1/artifacts/model", all)
	s.PutArtifact("1/run1/artifacts/other/model.onnx", []byte("not this version's"))

	for _, tc := range []struct {
		name string
		auth bool
		uri  string // the version's source; "" keeps mlflow-artifacts:/
	}{
		{name: "mlflow-artifacts"},
		{name: "with token", auth: true},
		{name: "proxy url", auth: true, uri: ts.URL + "/api/2.0/mlflow-artifacts/artifacts/1/run1/artifacts/model"},
		{name: "mlflow-artifacts with host", auth: true, uri: "mlflow-artifacts://" + strings.TrimPrefix(ts.URL, "http://") + "/1/run1/artifacts/model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := v
			uri := "mlflow-artifacts:/1/run1/artifacts/model"
			if tc.uri != "" {
				uri = tc.uri
				n = must[int64](t)(s.CreateVersion("ranker", uri))
			}
			opts := func(o *mlflow.Options) {}
			if tc.auth {
				s.RequireToken("tok")
				t.Cleanup(func() { s.RequireToken("") })
				opts = func(o *mlflow.Options) { o.Token = "tok" }
			}
			src := mlflow.NewSource(newClient(t, ts.URL, opts), "ranker", nil)
			ver, err := src.Describe(t.Context(), n)
			check(t, err)
			var paths []string
			for p := range files {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			if len(ver.Files) != len(paths) {
				t.Fatalf("files %v, want %v", ver.Files, paths)
			}
			for i, f := range ver.Files {
				if f.Path != paths[i] || f.Size != int64(len(files[paths[i]])) || f.SHA256 != "" {
					t.Errorf("file %d: %+v, want %s (%d bytes, no sha256)", i, f, paths[i], len(files[paths[i]]))
				}
				if f.Loc != strings.TrimRight(uri, "/")+"/"+f.Path {
					t.Errorf("file %s: Loc %q", f.Path, f.Loc)
				}
			}
			if want := fmt.Sprintf("mlflow:ranker/%d (%s)", n, uri); ver.Origin != want {
				t.Errorf("Origin %q, want %q", ver.Origin, want)
			}
			if ver.Number != n || ver.Digest != source.DigestOf(ver.Files) {
				t.Errorf("Number %d, Digest %s", ver.Number, ver.Digest)
			}

			dir := t.TempDir()
			var got atomic.Int64
			check(t, src.Fetch(t.Context(), ver, dir, func(n int64) { got.Add(n) }))
			checkDir(t, dir, files)
			if got.Load() != ver.Size() {
				t.Errorf("progress %d bytes, want %d", got.Load(), ver.Size())
			}
		})
	}
}

// checkDir fails unless dir holds exactly files.
func checkDir(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		want, ok := files[rel]
		if !ok {
			t.Errorf("unexpected file %s", rel)
		} else if !bytes.Equal(b, want) {
			t.Errorf("%s: %q, want %q", rel, b, want)
		}
		seen[rel] = true
		return nil
	})
	check(t, err)
	for p := range files {
		if !seen[p] {
			t.Errorf("missing file %s", p)
		}
	}
}

func TestDescribeManifest(t *testing.T) {
	files := onnxFlavor()
	for _, tc := range []struct {
		name     string
		manifest func(t *testing.T) []byte
		err      error
		parts    []string
	}{
		{name: "good", manifest: func(t *testing.T) []byte { return manifest(t, files) }},
		{name: "missing file", manifest: func(t *testing.T) []byte {
			m := maps(files)
			m["tokenizer.json"] = []byte("gone")
			return manifest(t, m)
		}, parts: []string{"tokenizer.json", "not among the artifacts"}},
		{name: "extra file", manifest: func(t *testing.T) []byte {
			m := maps(files)
			delete(m, "weights.bin")
			return manifest(t, m)
		}, parts: []string{"weights.bin", "is not in the tritongate-manifest.json"}},
		{name: "flavor files need not be listed", manifest: func(t *testing.T) []byte {
			return manifest(t, served(files))
		}},
		{name: "size differs", manifest: func(t *testing.T) []byte {
			m := maps(files)
			m["model.onnx"] = append([]byte("x"), m["model.onnx"]...)
			return manifest(t, m)
		}, err: source.ErrDigestMismatch, parts: []string{"model.onnx", "bytes"}},
		{name: "not json", manifest: func(*testing.T) []byte { return []byte("{") },
			parts: []string{"tritongate-manifest.json", "not valid JSON"}},
		{name: "bad path", manifest: func(*testing.T) []byte {
			return []byte(`{"files": [{"path": "../x", "size": 1, "sha256": "` + sha([]byte("x")) + `"}]}`)
		}, parts: []string{`"../x"`}},
		{name: "bad digest", manifest: func(*testing.T) []byte {
			return []byte(`{"files": [{"path": "MLmodel", "size": 1, "sha256": "abc"}]}`)
		}, parts: []string{"64 hex digits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t)
			check(t, s.CreateModel("ranker"))
			all := maps(files)
			all[source.ManifestFile] = tc.manifest(t)
			v := putVersion(t, s, "ranker", "1/run/artifacts/model", all)
			src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
			ver, err := src.Describe(t.Context(), v)
			if tc.parts != nil {
				wantErr(t, err, tc.err, append(tc.parts, `registered model "ranker" version 1`)...)
				return
			}
			check(t, err)
			want := served(files)
			if len(ver.Files) != len(want) {
				t.Fatalf("%d files, want %d (manifest and MLflow's files left out)", len(ver.Files), len(want))
			}
			for _, f := range ver.Files {
				if f.Path == source.ManifestFile {
					t.Errorf("the manifest is returned as a file")
				}
				if f.SHA256 != sha(files[f.Path]) {
					t.Errorf("%s: sha256 %q", f.Path, f.SHA256)
				}
			}
			dir := t.TempDir()
			check(t, src.Fetch(t.Context(), ver, dir, nil))
			checkDir(t, dir, want)
		})
	}
}

func maps(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestDescribeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s *mlflowtest.Server) int64 // returns the version
		err   error
		parts []string
	}{
		{name: "dot-dot", setup: func(s *mlflowtest.Server) int64 {
			s.PutArtifact("1/r/artifacts/model/model.onnx", []byte("m"))
			s.PutArtifact("1/r/artifacts/model/../../../../etc/passwd", []byte("root"))
			v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model")
			return v
		}, parts: []string{`".."`, "not allowed"}},
		{name: "hidden file", setup: func(s *mlflowtest.Server) int64 {
			s.PutArtifact("1/r/artifacts/model/.ssh/authorized_keys", []byte("k"))
			v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model")
			return v
		}, parts: []string{`".ssh"`}},
		{name: "backslash", setup: func(s *mlflowtest.Server) int64 {
			s.PutArtifact(`1/r/artifacts/model/..\..\evil`, []byte("k"))
			v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model")
			return v
		}, parts: []string{`..\\..\\evil`}},
		{name: "space", setup: func(s *mlflowtest.Server) int64 {
			s.PutArtifact("1/r/artifacts/model/my model.onnx", []byte("k"))
			v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model")
			return v
		}, parts: []string{`"my model.onnx"`}},
		{name: "not ready", setup: func(s *mlflowtest.Server) int64 {
			s.PutArtifact("1/r/artifacts/model/model.onnx", []byte("m"))
			v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model")
			s.SetVersionStatus("ranker", v, mlflowpb.ModelVersionStatus_PENDING_REGISTRATION, "copying")
			return v
		}, err: source.ErrNotFound, parts: []string{"PENDING_REGISTRATION", `"copying"`, "not READY"}},
		{name: "failed", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model")
			s.SetVersionStatus("ranker", v, mlflowpb.ModelVersionStatus_FAILED_REGISTRATION, "")
			return v
		}, err: source.ErrNotFound, parts: []string{"FAILED_REGISTRATION"}},
		{name: "no such version", setup: func(s *mlflowtest.Server) int64 { return 42 },
			err: source.ErrNotFound, parts: []string{"version 42", "not found"}},
		{name: "empty directory", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/nothing")
			return v
		}, err: source.ErrNotFound, parts: []string{"no artifacts under mlflow-artifacts:/1/r/artifacts/nothing"}},
		{name: "unsupported scheme", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "gs://bucket/model")
			return v
		}, parts: []string{"gs://bucket/model", "gs:// artifacts are not supported", "--serve-artifacts"}},
		{name: "relative file path", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "file:./mlruns/1/r/artifacts/model")
			return v
		}, parts: []string{"./mlruns", "--serve-artifacts"}},
		{name: "file path not mounted", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "file:///mlflow/mlruns/1/r/artifacts/model")
			return v
		}, err: source.ErrNotFound, parts: []string{"/mlflow/mlruns/1/r/artifacts/model", "not mounted here", "--serve-artifacts"}},
		{name: "registry uri", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "models:/other/3")
			return v
		}, parts: []string{"models:/other/3", "a registry URI"}},
		{name: "run not found", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "runs:/nosuchrun/model")
			return v
		}, err: source.ErrNotFound, parts: []string{"runs:/nosuchrun/model", `run "nosuchrun"`}},
		{name: "s3 without store", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "s3://bucket/model")
			return v
		}, parts: []string{"s3://bucket/model", "no object store"}},
		{name: "http not a proxy", setup: func(s *mlflowtest.Server) int64 {
			v, _ := s.CreateVersion("ranker", "https://example.com/model.onnx")
			return v
		}, parts: []string{"https://example.com/model.onnx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t)
			check(t, s.CreateModel("ranker"))
			v := tc.setup(s)
			_, err := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil).Describe(t.Context(), v)
			wantErr(t, err, tc.err, append(tc.parts, `"ranker"`)...)
		})
	}
}

// TestDescribeRefusesBadListings: answers no MLflow server gives.
func TestDescribeRefusesBadListings(t *testing.T) {
	for _, tc := range []struct {
		name, listing string
		parts         []string
	}{
		{"slash in name", `{"files": [{"path": "a/../../x", "is_dir": false, "file_size": 1}]}`, []string{`"a/../../x"`, "not a file name"}},
		{"empty name", `{"files": [{"path": "", "file_size": 1}]}`, []string{"not a file name"}},
		{"duplicate", `{"files": [{"path": "a", "file_size": 1}, {"path": "a", "file_size": 2}]}`, []string{`"a" appears twice`}},
		{"negative size", `{"files": [{"path": "a", "file_size": -5}]}`, []string{"size -5"}},
		{"dir loop", `{"files": [{"path": "d", "is_dir": true}]}`, []string{"nested deeper than"}},
		{"not json", `<html>`, []string{"not the expected JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mlflowtest.New()
			check(t, s.CreateModel("ranker"))
			v := must[int64](t)(s.CreateVersion("ranker", "mlflow-artifacts:/1/r/artifacts/model"))
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/2.0/mlflow-artifacts/artifacts" {
					io.WriteString(w, tc.listing)
					return
				}
				s.ServeHTTP(w, r)
			}))
			t.Cleanup(ts.Close)
			_, err := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil).Describe(t.Context(), v)
			wantErr(t, err, nil, append(tc.parts, `"ranker"`)...)
		})
	}
}

// TestCredentialsStayHome: a proxy on another host gets no credentials.
func TestCredentialsStayHome(t *testing.T) {
	s, ts := newServer(t)
	other, ots := newServer(t)
	s.RequireToken("tok")
	other.RequireToken("tok")
	check(t, s.CreateModel("ranker"))
	other.PutArtifact("1/r/model.onnx", []byte("m"))
	v := must[int64](t)(s.CreateVersion("ranker", "mlflow-artifacts://"+strings.TrimPrefix(ots.URL, "http://")+"/1/r"))
	_, err := mlflow.NewSource(newClient(t, ts.URL, func(o *mlflow.Options) { o.Token = "tok" }), "ranker", nil).Describe(t.Context(), v)
	wantErr(t, err, source.ErrAccessDenied, "HTTP 401", `"ranker"`)
	if other.Requests() != 1 {
		t.Errorf("%d requests to the other host", other.Requests())
	}
}

func TestFetchProxy(t *testing.T) {
	all := onnxFlavor()
	files := served(all)
	for _, tc := range []struct {
		name     string
		manifest bool
		before   func(s *mlflowtest.Server) // after Describe, before Fetch
		edit     func(v *source.Version)    // the version given to Fetch
		err      error                      // nil and no parts: success
		parts    []string
		after    func(t *testing.T, s *mlflowtest.Server, dir string)
	}{
		{name: "retries 5xx", before: func(s *mlflowtest.Server) { s.FailNext(3, 503) }},
		{name: "retries 500 with manifest", manifest: true, before: func(s *mlflowtest.Server) { s.FailNext(2, 500) }},
		{name: "digest mismatch", manifest: true,
			before: func(s *mlflowtest.Server) {
				b := bytes.Clone(files["model.onnx"])
				b[0] ^= 0xff // same size, other bytes
				s.PutArtifact("1/run/artifacts/model/model.onnx", b)
			},
			err: source.ErrDigestMismatch, parts: []string{"model.onnx", "sha256", `registered model "ranker", version 1`},
			after: func(t *testing.T, s *mlflowtest.Server, dir string) {
				if _, err := os.Stat(filepath.Join(dir, "model.onnx")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the mismatching file stays: %v", err)
				}
				if n := s.Calls("mlflow-artifacts/artifacts/1/run/artifacts/model/model.onnx"); n != 1 {
					t.Errorf("%d downloads of a mismatching file, want 1 (not retried)", n)
				}
			}},
		{name: "size mismatch without manifest",
			before: func(s *mlflowtest.Server) {
				s.PutArtifact("1/run/artifacts/model/weights.bin", []byte("longer than before\n"))
			},
			err: source.ErrDigestMismatch, parts: []string{"weights.bin"}},
		{name: "gone since describe",
			before: func(s *mlflowtest.Server) { s.DeleteArtifact("1/run/artifacts/model/weights.bin") },
			err:    source.ErrNotFound, parts: []string{"weights.bin", `registered model "ranker", version 1`}},
		{name: "forged path", edit: func(v *source.Version) { v.Files[0].Path = "../escape" },
			parts: []string{"refusing to write", `"../escape"`}},
		{name: "forged absolute path", edit: func(v *source.Version) { v.Files[0].Path = "/etc/passwd" },
			parts: []string{"refusing to write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t)
			check(t, s.CreateModel("ranker"))
			all := maps(all)
			if tc.manifest {
				all[source.ManifestFile] = manifest(t, files)
			}
			v := putVersion(t, s, "ranker", "1/run/artifacts/model", all)
			src := mlflow.NewSource(newClient(t, ts.URL), "ranker", nil)
			ver, err := src.Describe(t.Context(), v)
			check(t, err)
			if tc.before != nil {
				tc.before(s)
			}
			if tc.edit != nil {
				tc.edit(&ver)
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "stage")
			check(t, os.Mkdir(dir, 0o755))
			err = src.Fetch(t.Context(), ver, dir, nil)
			if tc.err == nil && tc.parts == nil {
				check(t, err)
				checkDir(t, dir, files)
				return
			}
			wantErr(t, err, tc.err, tc.parts...)
			if tc.after != nil {
				tc.after(t, s, dir)
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 {
				t.Errorf("Fetch wrote outside dir: %v", entries)
			}
		})
	}
}

// fakeStore is an ObjectStore over a map of s3:// prefixes.
type fakeStore struct {
	mu       sync.Mutex
	prefixes map[string][]source.File // uri -> files
	data     map[string][]byte        // Loc -> content
	fetched  []string
}

func (f *fakeStore) Files(_ context.Context, uri string, skip func(string) bool) ([]source.File, error) {
	files, ok := f.prefixes[uri]
	if !ok {
		return nil, fmt.Errorf("%s: %w: no objects under this prefix", uri, source.ErrNotFound)
	}
	var out []source.File
	for _, file := range files {
		if skip == nil || !skip(file.Path) {
			out = append(out, file)
		}
	}
	return out, nil
}

func (f *fakeStore) FetchFiles(_ context.Context, files []source.File, dir string, progress func(int64)) error {
	for _, file := range files {
		b, ok := f.data[file.Loc]
		if !ok || int64(len(b)) != file.Size {
			return fmt.Errorf("%s: %w", file.Loc, source.ErrDigestMismatch)
		}
		p := filepath.Join(dir, filepath.FromSlash(file.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		progress(int64(len(b)))
		f.mu.Lock()
		f.fetched = append(f.fetched, file.Loc)
		f.mu.Unlock()
	}
	return nil
}

// newFakeStore stores files under uri; withManifest adds the manifest as a
// plain object (the store leaves it to the source).
func newFakeStore(uri string, files map[string][]byte, extra ...source.File) *fakeStore {
	st := &fakeStore{prefixes: map[string][]source.File{}, data: map[string][]byte{}}
	for p, b := range files {
		loc := uri + "/" + p
		st.prefixes[uri] = append(st.prefixes[uri], source.File{Path: p, Size: int64(len(b)), Loc: loc})
		st.data[loc] = b
	}
	st.prefixes[uri] = append(st.prefixes[uri], extra...)
	return st
}

func TestSourceObjectStore(t *testing.T) {
	files := onnxFlavor()
	const uri = "s3://mlflow-artifacts/7/abc/artifacts/model"
	for _, tc := range []struct {
		name     string
		store    func(t *testing.T) *fakeStore
		wantSHA  bool
		parts    []string
		err      error
		fetchErr error
	}{
		{name: "plain", store: func(*testing.T) *fakeStore { return newFakeStore(uri, files) }},
		{name: "manifest left by the store", wantSHA: true, store: func(t *testing.T) *fakeStore {
			all := maps(files)
			all[source.ManifestFile] = manifest(t, files)
			return newFakeStore(uri, all)
		}},
		{name: "manifest mismatch", store: func(t *testing.T) *fakeStore {
			m := maps(files)
			m["model.onnx"] = []byte("other")
			all := maps(files)
			all[source.ManifestFile] = manifest(t, m)
			return newFakeStore(uri, all)
		}, err: source.ErrDigestMismatch, parts: []string{"model.onnx"}},
		{name: "traversal from the store", store: func(*testing.T) *fakeStore {
			return newFakeStore(uri, files, source.File{Path: "../../x", Size: 1, Loc: "s3://mlflow-artifacts/7/x"})
		}, parts: []string{`"../../x"`, "refusing"}},
		{name: "missing prefix", store: func(*testing.T) *fakeStore { return newFakeStore("s3://elsewhere", files) },
			err: source.ErrNotFound, parts: []string{uri}},
		{name: "fetch fails", store: func(*testing.T) *fakeStore {
			st := newFakeStore(uri, files)
			st.data[uri+"/model.onnx"] = []byte("truncated")
			return st
		}, fetchErr: source.ErrDigestMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t)
			check(t, s.CreateModel("ranker"))
			v := must[int64](t)(s.CreateVersion("ranker", uri))
			st := tc.store(t)
			src := mlflow.NewSource(newClient(t, ts.URL), "ranker", st)
			ver, err := src.Describe(t.Context(), v)
			if tc.parts != nil || tc.err != nil {
				wantErr(t, err, tc.err, append(tc.parts, `"ranker"`)...)
				return
			}
			check(t, err)
			if ver.Origin != "mlflow:ranker/1 ("+uri+")" {
				t.Errorf("Origin %q", ver.Origin)
			}
			if len(ver.Files) != len(served(files)) {
				t.Fatalf("%d files, want %d", len(ver.Files), len(served(files)))
			}
			for _, f := range ver.Files {
				if (f.SHA256 != "") != tc.wantSHA || (tc.wantSHA && f.SHA256 != sha(files[f.Path])) {
					t.Errorf("%s: sha256 %q", f.Path, f.SHA256)
				}
				if !strings.HasPrefix(f.Loc, "s3://") {
					t.Errorf("%s: Loc %q", f.Path, f.Loc)
				}
			}
			dir := t.TempDir()
			var got atomic.Int64
			err = src.Fetch(t.Context(), ver, dir, func(n int64) { got.Add(n) })
			if tc.fetchErr != nil {
				wantErr(t, err, tc.fetchErr, `registered model "ranker" version 1`)
				return
			}
			check(t, err)
			checkDir(t, dir, served(files))
			if got.Load() != ver.Size() {
				t.Errorf("progress %d, want %d", got.Load(), ver.Size())
			}
			if n := s.Calls("mlflow-artifacts/artifacts"); n != 0 {
				t.Errorf("%d proxy listings for an s3:// version", n)
			}
		})
	}
}
