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
