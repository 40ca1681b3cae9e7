package s3

import (
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/source"
)

var sha0 = strings.Repeat("0", 64)

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct {
		name, json, err string
		n               int
	}{
		{name: "ok", json: `{"files":[{"path":"model.onnx","size":3,"sha256":"` + sha0 + `"},{"path":"a/b","size":0,"sha256":"` + strings.ToUpper(sha0) + `"}]}`, n: 2},
		{name: "empty list", json: `{"files":[]}`, n: 0},
		{name: "unknown fields ignored", json: `{"version":2,"files":[{"path":"x","size":1,"sha256":"` + sha0 + `","mtime":1}]}`, n: 1},
		{name: "not json", json: `{"files":`, err: "not valid JSON"},
		{name: "trailing garbage", json: `{"files":[]} x`, err: "not valid JSON"},
		{name: "no files", json: `{}`, err: `no "files"`},
		{name: "traversal", json: `{"files":[{"path":"a/../../x","size":1,"sha256":"` + sha0 + `"}]}`, err: "not clean"},
		{name: "hidden", json: `{"files":[{"path":".x","size":1,"sha256":"` + sha0 + `"}]}`, err: "not allowed"},
		{name: "itself", json: `{"files":[{"path":"` + source.ManifestFile + `","size":1,"sha256":"` + sha0 + `"}]}`, err: "manifest itself"},
		{name: "duplicate", json: `{"files":[{"path":"x","size":1,"sha256":"` + sha0 + `"},{"path":"x","size":1,"sha256":"` + sha0 + `"}]}`, err: "twice"},
		{name: "negative size", json: `{"files":[{"path":"x","size":-1,"sha256":"` + sha0 + `"}]}`, err: "negative"},
		{name: "short sha", json: `{"files":[{"path":"x","size":1,"sha256":"abc"}]}`, err: "64 hex"},
		{name: "non-hex sha", json: `{"files":[{"path":"x","size":1,"sha256":"` + strings.Repeat("g", 64) + `"}]}`, err: "64 hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseManifest([]byte(tc.json))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(m) != tc.n {
				t.Fatalf("got %d entries, %v; want %d", len(m), err, tc.n)
			}
			for _, e := range m {
				if e.SHA256 != strings.ToLower(e.SHA256) {
					t.Errorf("sha256 %q not lowercased", e.SHA256)
				}
			}
		})
	}
}

func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"files":[{"path":"model.onnx","size":3,"sha256":"` + sha0 + `"}]}`))
	f.Add([]byte(`{"files":[{"path":"../x","size":-1,"sha256":""}]}`))
	f.Add([]byte(`{"files":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		for p, e := range m {
			if p != e.Path || source.CheckPath(p) != nil || p == source.ManifestFile || e.Size < 0 || len(e.SHA256) != 64 || !isHex(e.SHA256) {
				t.Fatalf("parseManifest accepted a bad entry %+v", e)
			}
		}
	})
}

func FuzzJournal(f *testing.F) {
	f.Add([]byte(`{"op":"file","path":"m","file":{"size":10,"loc":"s3://b/k","part_size":4}}` + "\n" + `{"op":"part","path":"m","part":1}` + "\n" + `{"op":"done","path":"m"}` + "\n"))
	f.Add([]byte(`{"op":"part","path":"m","part":1}` + "\n"))
	f.Add([]byte(`{"op":"file","path":"m","size":10` + "\n" + `{"op":"par`))
	f.Fuzz(func(t *testing.T, data []byte) {
		prior, keep, err := parseJournal(data)
		if err != nil {
			return
		}
		if keep < 0 || keep > len(data) || keep > 0 && data[keep-1] != '\n' {
			t.Fatalf("keep = %d for %q", keep, data)
		}
		for _, info := range prior {
			for i := range info.parts {
				if i < 0 {
					t.Fatalf("negative part %d", i)
				}
			}
		}
	})
}
