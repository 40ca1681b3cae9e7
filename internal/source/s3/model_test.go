package s3

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/source"
)

func TestList(t *testing.T) {
	f := newFake(t)
	for _, k := range []string{
		"resnet/1/model.onnx", "resnet/2/model.onnx", "resnet/10/model.onnx", "resnet/3/a/b.bin",
		"resnet/config.pbtxt", "resnet/4", // an object, not a version directory
		"resnet/latest/model.onnx", "resnet/01/model.onnx", "resnet/0/model.onnx", "resnet/-1/x", "resnet/3a/x", "resnet/1.5/x",
		"resnet50/7/model.onnx", // another model sharing the name's prefix
		"other/5/model.onnx",
	} {
		f.put(t, k, []byte("x"))
	}
	st := f.store(t, Options{})
	ctx := context.Background()
	m, err := st.Model("s3://models/resnet")
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 2, 3, 10}; !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if n, err := m.Alias(ctx, "champion"); !errors.Is(err, source.ErrNoAliases) || n != 0 {
		t.Errorf("Alias = %d, %v; want ErrNoAliases", n, err)
	}

	// Nothing under the prefix: the model does not exist.
	m2, _ := st.Model("s3://models/nosuchmodel/")
	if _, err := m2.List(ctx); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "s3://models/nosuchmodel/") {
		t.Errorf("List of an empty prefix: %v, want ErrNotFound naming it", err)
	}
	// Objects but no version directories: no versions.
	f.put(t, "noversions/README", []byte("x"))
	m3, _ := st.Model("s3://models/noversions/")
	if vs, err := m3.List(ctx); err != nil || len(vs) != 0 {
		t.Errorf("List with no version directories = %v, %v; want none", vs, err)
	}
	// A bucket that does not exist.
	m4, _ := st.Model("s3://nosuchbucket/x/")
	if _, err := m4.List(ctx); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("List in a missing bucket: %v, want ErrNotFound", err)
	}
	if _, err := st.Model("s3://models/a//b"); err == nil {
		t.Error("Model accepted a bad URI")
	}
}

func TestListPagination(t *testing.T) {
	f := newFake(t)
	var want []int64
	for n := int64(1); n <= 57; n++ {
		want = append(want, n)
		f.put(t, fmt.Sprintf("m/%d/model.onnx", n), []byte("x"))
		f.put(t, fmt.Sprintf("m/%d/config.pbtxt", n), []byte("x"))
		f.put(t, fmt.Sprintf("m/junk%d/x", n), []byte("x"))
	}
	st := f.store(t, Options{})
	st.listPageSize = 5
	m, _ := st.Model("s3://models/m/")
	got, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List = %v, want 1..57", got)
	}
	if n := f.count("list"); n < 10 {
		t.Errorf("%d LIST requests, want pagination (>= 10)", n)
	}

	// Describe paginates too.
	for i := range 23 {
		f.put(t, fmt.Sprintf("m/60/shard-%02d.bin", i), []byte{byte(i)})
	}
	v, err := m.Describe(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Files) != 23 {
		t.Errorf("Describe found %d files, want 23", len(v.Files))
	}
}

func TestDescribe(t *testing.T) {
	files := map[string][]byte{
		"model.onnx":       randBytes(5000, 1),
		"config.pbtxt":     []byte("name: \"m\"\n"),
		"sub/dir/w.bin":    randBytes(777, 2),
		"empty.txt":        {},
		"a+b=c@d,e-f_g.hi": []byte("odd but allowed"),
	}
	for _, withManifest := range []bool{false, true} {
		t.Run(fmt.Sprintf("manifest=%v", withManifest), func(t *testing.T) {
			f := newFake(t)
			f.putVersion(t, "resnet/3/", files, withManifest)
			f.put(t, "resnet/3/", nil) // a console "folder" marker
			st := f.store(t, Options{})
			m, _ := st.Model("s3://models/resnet/")
			v, err := m.Describe(context.Background(), 3)
			if err != nil {
				t.Fatal(err)
			}
			if v.Number != 3 || v.Origin != "s3://models/resnet/3/" {
				t.Errorf("Number, Origin = %d, %q", v.Number, v.Origin)
			}
			if len(v.Files) != len(files) {
				t.Fatalf("%d files, want %d: %+v", len(v.Files), len(files), v.Files)
			}
			if !slices.IsSortedFunc(v.Files, func(a, b source.File) int { return strings.Compare(a.Path, b.Path) }) {
				t.Error("files not sorted by path")
			}
			for _, fl := range v.Files {
				b := files[fl.Path]
				if fl.Size != int64(len(b)) || fl.Loc != "s3://models/resnet/3/"+fl.Path || fl.MD5 != md5hex(b) {
					t.Errorf("file %+v: want size %d, md5 %s", fl, len(b), md5hex(b))
				}
				if withManifest != (fl.SHA256 != "") || withManifest && fl.SHA256 != sha(b) {
					t.Errorf("file %s: SHA256 %q (manifest %v)", fl.Path, fl.SHA256, withManifest)
				}
			}
			if v.Digest != source.DigestOf(v.Files) {
				t.Error("Digest is not DigestOf(Files)")
			}
			if _, err := m.Describe(context.Background(), 4); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "s3://models/resnet/4/") {
				t.Errorf("Describe of a missing version: %v, want ErrNotFound naming it", err)
			}
			if _, err := m.Describe(context.Background(), 0); !errors.Is(err, source.ErrNotFound) {
				t.Errorf("Describe(0): %v", err)
			}
		})
	}
}

func TestDescribeRefuses(t *testing.T) {
	good := fmt.Sprintf(`{"files":[{"path":"model.onnx","size":4,"sha256":"%s"}]}`, sha([]byte("onnx")))
	for _, tc := range []struct {
		name    string
		objects map[string]string
		err     string // in the message
		is      error
	}{
		{name: "traversal", objects: map[string]string{"model.onnx": "onnx", "../../x": "evil"}, err: `s3://models/m/1/../../x`},
		{name: "dot element", objects: map[string]string{"model.onnx": "onnx", "./a": "x"}, err: `s3://models/m/1/./a`},
		{name: "hidden file", objects: map[string]string{"model.onnx": "onnx", ".git/config": "x"}, err: `s3://models/m/1/.git/config`},
		{name: "empty element", objects: map[string]string{"a//b": "x"}, err: `s3://models/m/1/a//b`},
		{name: "space", objects: map[string]string{"my model.onnx": "x"}, err: `my model.onnx`},
		{name: "file and directory", objects: map[string]string{"a": "x", "a/b": "y"}, err: `"a" is both a file and the directory of "a/b"`},
		{name: "manifest misses a file", objects: map[string]string{"model.onnx": "onnx", "extra.bin": "x", source.ManifestFile: good}, err: "s3://models/m/1/extra.bin is not in the manifest"},
		{name: "manifest lists a missing file", objects: map[string]string{source.ManifestFile: good}, err: "not in the bucket: model.onnx"},
		{name: "manifest size differs", objects: map[string]string{"model.onnx": "onnx!", source.ManifestFile: good}, err: `manifest says "model.onnx" is 4 bytes`},
		{name: "manifest not json", objects: map[string]string{"model.onnx": "onnx", source.ManifestFile: "{"}, err: "not valid JSON"},
		{name: "manifest bad sha", objects: map[string]string{"model.onnx": "onnx", source.ManifestFile: `{"files":[{"path":"model.onnx","size":4,"sha256":"x"}]}`}, err: "64 hex"},
		{name: "only a manifest listing nothing", objects: map[string]string{source.ManifestFile: `{"files":[]}`}, is: source.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			for k, v := range tc.objects {
				f.put(t, "m/1/"+k, []byte(v))
			}
			st := f.store(t, Options{})
			m, _ := st.Model("s3://models/m/")
			_, err := m.Describe(context.Background(), 1)
			if err == nil {
				t.Fatal("Describe accepted the version")
			}
			if tc.err != "" && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want it to contain %q", err, tc.err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), "s3://models/m/") {
				t.Errorf("err = %v: does not name the model", err)
			}
		})
	}
}

func TestFilesArbitraryPrefix(t *testing.T) {
	f := newFake(t)
	files := map[string][]byte{"model/model.onnx": randBytes(3000, 3), "MLmodel": []byte("flavors: {}\n")}
	f.putVersion(t, "mlflow/12/abc/artifacts/", files, false)
	st := f.store(t, Options{})
	got, err := st.Files(context.Background(), "s3://models/mlflow/12/abc/artifacts", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "MLmodel" || got[1].Path != "model/model.onnx" {
		t.Fatalf("Files = %+v", got)
	}
	// Skipped paths are left out before they are checked: a name CheckPath
	// refuses does not refuse the rest.
	f.putVersion(t, "mlflow/13/abc/artifacts/", map[string][]byte{"model.onnx": randBytes(10, 1), "code/my file.py": []byte("x")}, false)
	skipped, err := st.Files(context.Background(), "s3://models/mlflow/13/abc/artifacts", func(rel string) bool { return strings.HasPrefix(rel, "code/") })
	if err != nil || len(skipped) != 1 || skipped[0].Path != "model.onnx" {
		t.Fatalf("Files with skip = %+v, %v", skipped, err)
	}
	dir := t.TempDir()
	if err := st.FetchFiles(context.Background(), got, dir, nil); err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, files)
	if _, err := st.Files(context.Background(), "s3://models/mlflow/nothing/", nil); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Files of an empty prefix: %v", err)
	}
	if _, err := st.Files(context.Background(), "gs://x/y", nil); err == nil {
		t.Error("Files accepted a gs:// URI")
	}
}

func TestNoClient(t *testing.T) {
	st := NewStore(Options{})
	if _, err := st.Model("s3://models/m/"); err == nil {
		t.Error("Model without a client did not fail")
	}
	if err := st.FetchFiles(context.Background(), nil, t.TempDir(), nil); err == nil {
		t.Error("FetchFiles without a client did not fail")
	}
}
