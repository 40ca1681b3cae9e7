package source

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"model.onnx": true, "weights/part-0.bin": true, "a+b=c@d,e-f_g.h": true,
		"": false, "/etc/passwd": false, "../x": false, "a/../b": false, "a//b": false, "./a": false,
		"a/": false, ".hidden": false, "a/.git/config": false, `a\b`: false, "sp ace": false, "a/..": false,
	} {
		if err := CheckPath(p); (err == nil) != ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for s, want := range map[string]int64{"1": 1, "42": 42, "0": 0, "01": 0, "-1": 0, "x": 0, "": 0, "1.5": 0} {
		n, ok := ParseVersion(s)
		if (want != 0) != ok || n != want {
			t.Errorf("ParseVersion(%q) = %d %v", s, n, ok)
		}
	}
}

func TestDigestOf(t *testing.T) {
	a := []File{{Path: "b", Size: 2, SHA256: "bb"}, {Path: "a", Size: 1, MD5: "aa"}}
	b := []File{{Path: "a", Size: 1, MD5: "aa"}, {Path: "b", Size: 2, SHA256: "bb"}}
	if DigestOf(a) != DigestOf(b) {
		t.Error("the digest depends on the order of the files")
	}
	c := []File{{Path: "a", Size: 1, MD5: "aa"}, {Path: "b", Size: 3, SHA256: "bb"}}
	if DigestOf(a) == DigestOf(c) {
		t.Error("a size change does not change the digest")
	}
	loc := []File{{Path: "a", Size: 1, MD5: "aa", Loc: "s3://x/a"}, {Path: "b", Size: 2, SHA256: "bb", Loc: "s3://y/b"}}
	if DigestOf(a) != DigestOf(loc) {
		t.Error("the digest depends on where files are fetched from")
	}
}

// FuzzCheckPath: an accepted path never escapes its directory: it is
// relative, has no '.' or '..' element, no empty element, no hidden element
// and no NUL or backslash. ("a..b" is a fine file name.)
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"model.onnx", "../x", "a/b", "/x", "a/./b", "aaaa..000", "a/..", "a/b.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		if strings.ContainsAny(p, "\x00\\") || strings.HasPrefix(p, "/") {
			t.Fatalf("accepted %q", p)
		}
		for _, e := range strings.Split(p, "/") {
			if e == "" || e == "." || e == ".." || strings.HasPrefix(e, ".") {
				t.Fatalf("accepted %q (element %q)", p, e)
			}
		}
		if filepath.IsAbs(p) || !filepath.IsLocal(p) {
			t.Fatalf("accepted %q, which is not local", p)
		}
	})
}

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
		{name: "itself", json: `{"files":[{"path":"` + ManifestFile + `","size":1,"sha256":"` + sha0 + `"}]}`, err: "manifest itself"},
		{name: "duplicate", json: `{"files":[{"path":"x","size":1,"sha256":"` + sha0 + `"},{"path":"x","size":1,"sha256":"` + sha0 + `"}]}`, err: "twice"},
		{name: "negative size", json: `{"files":[{"path":"x","size":-1,"sha256":"` + sha0 + `"}]}`, err: "negative"},
		{name: "short sha", json: `{"files":[{"path":"x","size":1,"sha256":"abc"}]}`, err: "64 hex"},
		{name: "non-hex sha", json: `{"files":[{"path":"x","size":1,"sha256":"` + strings.Repeat("g", 64) + `"}]}`, err: "64 hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.json))
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

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"files":[{"path":"model.onnx","size":3,"sha256":"` + sha0 + `"}]}`))
	f.Add([]byte(`{"files":[{"path":"../x","size":-1,"sha256":""}]}`))
	f.Add([]byte(`{"files":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		for p, e := range m {
			if p != e.Path || CheckPath(p) != nil || p == ManifestFile || e.Size < 0 || len(e.SHA256) != 64 || strings.ToLower(e.SHA256) != e.SHA256 || strings.Trim(e.SHA256, "0123456789abcdef") != "" {
				t.Fatalf("parseManifest accepted a bad entry %+v", e)
			}
		}
	})
}
