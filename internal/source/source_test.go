package source

import "testing"

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

// FuzzCheckPath: an accepted path never escapes its directory.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"model.onnx", "../x", "a/b", "/x", "a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		for _, bad := range []string{"..", "//", "\x00"} {
			if len(p) >= len(bad) && contains(p, bad) {
				t.Fatalf("accepted %q", p)
			}
		}
		if p[0] == '/' || p[0] == '.' {
			t.Fatalf("accepted %q", p)
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
