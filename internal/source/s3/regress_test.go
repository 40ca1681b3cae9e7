// Regression tests from a review of the syncer: the comment on each test
// describes the bug it caught; the test checks the behaviour since.

package s3

import (
	"bytes"
	"errors"

	"github.com/tritongate/tritongate/internal/source"

	"context"
	"os"
	"path/filepath"
	"testing"
)

// Retries that resume mid-part, with received-but-unwritten bytes (between
// `written` and `got`) in the buffer, for each verification kind.
func TestRetryMidPartKeepsUnwrittenBytes(t *testing.T) {
	for _, cut := range []int64{1, 700 << 10, MiB, MiB + 1, 3*MiB/2 + 13} {
		for _, kind := range []string{"sha256", "md5", "size"} {
			f := newFake(t)
			files := map[string][]byte{"model.onnx": randBytes(9*MiB+5, 3)}
			f.putVersion(t, "m/1/", files, kind == "sha256")
			st := f.store(t, Options{PartSize: 8 * MiB, Concurrency: 2})
			_, v := describe(t, st)
			if kind == "size" {
				for i := range v.Files {
					v.Files[i].MD5, v.Files[i].SHA256 = "", ""
				}
			}
			f.reset()
			f.setFault("m/1/model.onnx", &fault{cutAfter: cut, cuts: 5})
			dir := t.TempDir()
			if err := st.FetchFiles(context.Background(), v.Files, dir, nil); err != nil {
				t.Fatalf("cut %d %s: %v", cut, kind, err)
			}
			checkDir(t, dir, files)
		}
	}
}

// A size-only file (multipart upload: "-N" ETag, no manifest) interrupted,
// then overwritten at the source with another object of the same size: the
// ETag the listing gives is in the file's description, so the version's
// digest changes (the syncer stages it afresh) and, even fetched into the
// same directory, the old parts are not resumed. gofakes3 gives multipart
// uploads plain ETags, so the test sets the description as Describe does
// for "-N" ETags and makes GET responses carry them.
func TestSizeOnlyResumeNeverMixesObjects(t *testing.T) {
	f := newFake(t)
	st := f.store(t, Options{PartSize: 4 * MiB, Concurrency: 2})
	st.syncEvery = 8 * MiB // the default is 64 MiB: same effect for models > 64 MiB
	sizeOnly := func(etag string) source.Version {
		_, v := describe(t, st)
		for i := range v.Files {
			v.Files[i].MD5, v.Files[i].ETag = "", etag
		}
		v.Digest = source.DigestOf(v.Files)
		return v
	}
	old := randBytes(40*MiB, 1)
	f.put(t, "m/1/model.onnx", old)
	f.setFault("m/1/model.onnx", &fault{etag: `"0123456789abcdef0123456789abcdef-8"`})
	v := sizeOnly("0123456789abcdef0123456789abcdef-8")
	dir := t.TempDir()
	interrupt(t, st, v.Files, dir, 24*MiB)

	fresh := randBytes(40*MiB, 2) // re-uploaded, same size
	f.put(t, "m/1/model.onnx", fresh)
	f.setFault("m/1/model.onnx", &fault{etag: `"fedcba9876543210fedcba9876543210-8"`})
	v2 := sizeOnly("fedcba9876543210fedcba9876543210-8")
	if v2.Digest == v.Digest {
		t.Errorf("the version's digest did not change with the object: %s", v.Digest)
	}
	// The old description against the new object: refused as changed.
	if err := st.FetchFiles(context.Background(), v.Files, t.TempDir(), nil); !errors.Is(err, source.ErrDigestMismatch) {
		t.Errorf("fetching the old description from the new object: %v, want a digest mismatch", err)
	}
	if err := st.FetchFiles(context.Background(), v2.Files, dir, nil); err != nil {
		t.Fatalf("second fetch: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fresh) {
		oldParts, newParts := 0, 0
		for i := 0; i < 10; i++ {
			p := got[i*4*MiB : (i+1)*4*MiB]
			switch {
			case bytes.Equal(p, old[i*4*MiB:(i+1)*4*MiB]):
				oldParts++
			case bytes.Equal(p, fresh[i*4*MiB:(i+1)*4*MiB]):
				newParts++
			}
		}
		t.Errorf("fetched model.onnx is neither object: %d parts of the old object, %d of the new one", oldParts, newParts)
	}
}
