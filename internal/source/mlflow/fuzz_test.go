package mlflow

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
	"github.com/tritongate/tritongate/proto/mlflow/artifacts"
)

// FuzzParseErrorBody: any error body gives a printable, bounded message and
// either no code or a well-formed one.
func FuzzParseErrorBody(f *testing.F) {
	for _, s := range []string{
		`{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model with name=x not found"}`,
		`{"error_code": "PERMISSION_DENIED", "message": "no", "stack_trace": "..."}`,
		`{"error_code": 404, "message": ["x"]}`,
		`{"error_code": "bad code!", "message": "m"}`,
		`<html><body>502 Bad Gateway</body></html>`,
		"You are not authenticated.",
		"", "{", "null", `{"message": "` + strings.Repeat("é", 2000) + `"}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, msg := parseErrorBody(body)
		if code != "" && !isErrorCode(code) {
			t.Errorf("code %q", code)
		}
		if !utf8.ValidString(msg) || len(msg) > maxErrorMessage+len("…") {
			t.Errorf("message %q (%d bytes)", msg, len(msg))
		}
	})
}

// FuzzListingEntries: whatever an artifacts listing says, accepted entries
// are checked paths below the listed directory, each once.
func FuzzListingEntries(f *testing.F) {
	for _, s := range []string{
		`{"files": [{"path": "MLmodel", "is_dir": false, "file_size": "120"}, {"path": "data", "is_dir": true}]}`,
		`{"files": [{"path": "1/r/model/sub/x.bin", "file_size": 3}]}`,
		`{"files": [{"path": "..", "is_dir": true}]}`,
		`{"files": [{"path": "a/b"}, {"path": ".hidden"}, {"path": "a\\b"}]}`,
		`{"files": [{"path": "x", "file_size": -1}]}`,
		`{}`, `{"files": null}`, `{"unknown": 1, "files": [{"path": "ok", "extra": true}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp artifacts.ListArtifacts_Response
		if (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &resp) != nil {
			return
		}
		entries, err := listingEntries("1/r/model/sub", "sub", resp.GetFiles(), nil)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if err := source.CheckPath(e.rel); err != nil {
				t.Errorf("accepted %q: %v", e.rel, err)
			}
			if !strings.HasPrefix(e.rel, "sub/") || strings.Contains(e.rel[len("sub/"):], "/") {
				t.Errorf("accepted %q outside the listed directory", e.rel)
			}
			if seen[e.rel] {
				t.Errorf("%q twice", e.rel)
			}
			seen[e.rel] = true
			if e.isDir && e.size != -1 || e.size < -1 {
				t.Errorf("%q: size %d", e.rel, e.size)
			}
		}
	})
}

// FuzzResolveArtifact: artifact URIs from the registry resolve to a path
// below the proxy's REST root, without dot elements.
func FuzzResolveArtifact(f *testing.F) {
	for _, s := range []string{
		"mlflow-artifacts:/1/abc/artifacts/model",
		"mlflow-artifacts://other:5000/1/abc/artifacts/model/",
		"mlflow-artifacts:/a/../b", "mlflow-artifacts://:5000/x", "mlflow-artifacts:opaque",
		"https://h/prefix/api/2.0/mlflow-artifacts/artifacts/1/x%2Fy/z",
		"https://h/api/2.0/mlflow-artifacts/artifactsX/y", "http://h/x?y=1", "s3://b/k", "%zz",
	} {
		f.Add(s)
	}
	c, err := New(Options{BaseURL: "https://mlflow.example.com/prefix"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		loc, err := c.resolveArtifact(uri)
		if err != nil {
			return
		}
		if strings.HasPrefix(loc.path, "/") || strings.HasSuffix(loc.path, "/") {
			t.Errorf("%q: path %q", uri, loc.path)
		}
		for _, e := range strings.Split(loc.path, "/") {
			if e == "." || e == ".." {
				t.Errorf("%q: path %q has dot elements", uri, loc.path)
			}
		}
		if !strings.HasSuffix(loc.endpoint.Path, artifactsAPI) {
			t.Errorf("%q: endpoint %s", uri, loc.endpoint)
		}
		for _, u := range []*url.URL{loc.fileURL(), loc.listURL()} {
			back, err := url.Parse(u.String())
			if err != nil {
				t.Fatalf("%q: %s does not parse: %v", uri, u, err)
			}
			if !strings.HasPrefix(back.Path, loc.endpoint.Path) {
				t.Errorf("%q: %s escapes %s", uri, back.Path, loc.endpoint.Path)
			}
		}
	})
}

// FuzzNameFilter: the filter the client writes for a model name is read
// back as that name by mlflowtest's parser (MLflow's grammar for it).
func FuzzNameFilter(f *testing.F) {
	for _, s := range []string{"ranker", "it's", `say "hi"`, `both ' "`, "", " spaced ", "näme", "a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		filter, err := NameFilter(name)
		if err != nil {
			return
		}
		got, all, err := mlflowtest.ParseFilter(filter)
		if err != nil || all || got != name {
			t.Errorf("NameFilter(%q) = %q, parsed back as %q, %v, %v", name, filter, got, all, err)
		}
	})
}
