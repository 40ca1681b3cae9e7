package s3

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/source"
)

const MiB = 1 << 20

// describe describes version 1 of the model at s3://models/m/.
func describe(t *testing.T, st *Store) (source.Source, source.Version) {
	t.Helper()
	m, err := st.Model("s3://models/m/")
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Describe(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return m, v
}

func parts(files map[string][]byte, partSize int64) int {
	n := 0
	for _, b := range files {
		n += max(1, int((int64(len(b))+partSize-1)/partSize))
	}
	return n
}

func TestFetch(t *testing.T) {
	mixed := map[string][]byte{
		"model.onnx":        randBytes(40*MiB, 1),
		"config.pbtxt":      []byte("name: \"m\"\nbackend: \"onnxruntime\"\n"),
		"sub/dir/w.bin":     randBytes(5*MiB+1, 2),
		"sub/exact.bin":     randBytes(4*MiB, 3),
		"empty.txt":         {},
		"labels/labels.txt": randBytes(1000, 4),
	}
	small := map[string][]byte{}
	for i := range 40 {
		small[fmt.Sprintf("shard-%02d.bin", i)] = randBytes(1000*i, uint64(i))
	}
	for _, tc := range []struct {
		name        string
		files       map[string][]byte
		manifest    bool
		partSize    int64
		concurrency int
	}{
		{name: "mixed, manifest", files: mixed, manifest: true, partSize: 4 * MiB, concurrency: 8},
		{name: "mixed, ETag MD5", files: mixed, partSize: 4 * MiB, concurrency: 8},
		{name: "mixed, one worker", files: mixed, manifest: true, partSize: 4 * MiB, concurrency: 1},
		{name: "many small files", files: small, partSize: 8 * MiB, concurrency: 16},
		{name: "tiny parts", files: map[string][]byte{"a": randBytes(100_003, 5), "b": randBytes(10, 6)}, partSize: 1000, concurrency: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.putVersion(t, "m/1/", tc.files, tc.manifest)
			st := f.store(t, Options{PartSize: tc.partSize, Concurrency: tc.concurrency})
			m, v := describe(t, st)
			f.reset()
			dir := t.TempDir()
			var progress atomic.Int64
			if err := m.Fetch(context.Background(), v, dir, func(n int64) { progress.Add(n) }); err != nil {
				t.Fatal(err)
			}
			checkDir(t, dir, tc.files)
			if progress.Load() != v.Size() {
				t.Errorf("progress reported %d bytes, want %d", progress.Load(), v.Size())
			}
			if got, want := f.count("get"), parts(tc.files, tc.partSize); got != want {
				t.Errorf("%d GETs, want %d (one per part)", got, want)
			}
			// The fake counts a write once it returns, which can be after
			// the client has read it: wait for the count to settle.
			for deadline := time.Now().Add(2 * time.Second); f.served.Load() < v.Size() && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if f.served.Load() != v.Size() {
				t.Errorf("served %d bytes, want %d", f.served.Load(), v.Size())
			}
		})
	}
}

func TestFetchSizeOnly(t *testing.T) {
	f := newFake(t)
	files := map[string][]byte{"model.onnx": randBytes(9*MiB+7, 1), "c.txt": []byte("c")}
	f.putVersion(t, "m/1/", files, false)
	st := f.store(t, Options{PartSize: 2 * MiB})
	_, v := describe(t, st)
	for i := range v.Files {
		v.Files[i].MD5 = "" // as for multipart ("-N") ETags
	}
	dir := t.TempDir()
	if err := st.FetchFiles(context.Background(), v.Files, dir, nil); err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, files)
}

func TestFetchDigestMismatch(t *testing.T) {
	model := randBytes(10*MiB, 1)
	wrong := sha([]byte("something else"))
	for _, tc := range []struct {
		name     string
		manifest bool
		mutate   func(*source.File)
		corrupt  bool
		want     []string // in the message: expected, actual
	}{
		{name: "wrong manifest sha256", manifest: true, mutate: func(f *source.File) { f.SHA256 = wrong }, want: []string{"expected sha256:" + wrong, "got sha256:" + sha(model)}},
		{name: "corrupted in transit, sha256", manifest: true, corrupt: true, want: []string{"expected sha256:" + sha(model), "got sha256:"}},
		{name: "corrupted in transit, md5", corrupt: true, want: []string{"expected md5:" + md5hex(model), "got md5:"}},
		{name: "md5 not the ETag", mutate: func(f *source.File) { f.MD5 = md5hex([]byte("x")) }, want: []string{"changed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			files := map[string][]byte{"model.onnx": model, "config.pbtxt": []byte("x")}
			f.putVersion(t, "m/1/", files, tc.manifest)
			st := f.store(t, Options{PartSize: 3 * MiB})
			m, v := describe(t, st)
			for i := range v.Files {
				if v.Files[i].Path == "model.onnx" && tc.mutate != nil {
					tc.mutate(&v.Files[i])
				}
			}
			if tc.corrupt {
				f.setFault("m/1/model.onnx", &fault{corrupt: true})
			}
			dir := t.TempDir()
			err := m.Fetch(context.Background(), v, dir, nil)
			if !errors.Is(err, source.ErrDigestMismatch) {
				t.Fatalf("err = %v, want ErrDigestMismatch", err)
			}
			for _, s := range append(tc.want, "s3://models/m/1/model.onnx", "version 1") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %v: does not say %q", err, s)
				}
			}
			for _, name := range []string{"model.onnx", ".model.onnx.tgpart"} {
				if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind after a digest mismatch (%v)", name, err)
				}
			}
		})
	}
}

func TestFetchSSEKMS(t *testing.T) {
	// The ETag of an SSE-KMS object looks like an MD5 but is not one: the
	// file is verified by size (with a warning), not refused.
	const kmsETag = "0123456789abcdef0123456789abcdef"
	for _, sse := range []string{"aws:kms", "AES256"} {
		t.Run(sse, func(t *testing.T) {
			f := newFake(t)
			data := randBytes(3*MiB, 1)
			f.put(t, "m/1/model.onnx", data)
			f.setFault("m/1/model.onnx", &fault{etag: `"` + kmsETag + `"`, sse: sse})
			st := f.store(t, Options{PartSize: MiB})
			files := []source.File{{Path: "model.onnx", Size: int64(len(data)), MD5: kmsETag, Loc: "s3://models/m/1/model.onnx"}}
			dir := t.TempDir()
			err := st.FetchFiles(context.Background(), files, dir, nil)
			if sse == "aws:kms" {
				if err != nil {
					t.Fatal(err)
				}
				checkDir(t, dir, map[string][]byte{"model.onnx": data})
			} else if !errors.Is(err, source.ErrDigestMismatch) {
				// SSE-S3 keeps MD5 ETags: a mismatch is a mismatch.
				t.Fatalf("err = %v, want ErrDigestMismatch", err)
			}
		})
	}
}

func TestFetchObjectChanged(t *testing.T) {
	for _, tc := range []struct {
		name     string
		data     []byte
		sizeOnly bool
		want     string
	}{
		{name: "same size", data: randBytes(6*MiB, 9), want: "overwritten"},
		{name: "other size", data: randBytes(7*MiB, 9), want: "overwritten"},
		{name: "other size, no checksum", data: randBytes(7*MiB, 9), sizeOnly: true, want: "now 7340032 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.putVersion(t, "m/1/", map[string][]byte{"model.onnx": randBytes(6*MiB, 1)}, false)
			st := f.store(t, Options{PartSize: 2 * MiB})
			m, v := describe(t, st)
			if tc.sizeOnly {
				v.Files[0].MD5 = ""
			}
			f.put(t, "m/1/model.onnx", tc.data)
			err := m.Fetch(context.Background(), v, t.TempDir(), nil)
			if !errors.Is(err, source.ErrDigestMismatch) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "describe the version again") {
				t.Errorf("err = %v, want ErrDigestMismatch saying %q", err, tc.want)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *fake)
		is    error
		gets  int    // GETs of the model, not retried
		says  string // in the message
	}{
		{name: "deleted", setup: func(t *testing.T, f *fake) { f.del(t, "m/1/model.onnx") }, is: source.ErrNotFound, gets: 1},
		{name: "403", setup: func(t *testing.T, f *fake) {
			f.setFault("m/1/model.onnx", &fault{status: 403, code: "AccessDenied", times: -1})
		}, is: source.ErrAccessDenied, gets: 1, says: "lack s3:GetObject"},
		{name: "wrong secret", setup: func(t *testing.T, f *fake) {
			f.setFault("m/1/model.onnx", &fault{status: 403, code: "SignatureDoesNotMatch", times: -1})
		}, is: source.ErrAccessDenied, gets: 1, says: "refused the credentials themselves, SignatureDoesNotMatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.putVersion(t, "m/1/", map[string][]byte{"model.onnx": randBytes(1000, 1)}, false)
			st := f.store(t, Options{})
			m, v := describe(t, st)
			tc.setup(t, f)
			f.reset()
			err := m.Fetch(context.Background(), v, t.TempDir(), nil)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), "s3://models/m/1/model.onnx") || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v naming the object and saying %q", err, tc.is, tc.says)
			}
			if n := f.getsOf("m/1/model.onnx"); n != tc.gets {
				t.Errorf("%d GETs, want %d (no retries)", n, tc.gets)
			}
		})
	}
}

func TestFetchRetries(t *testing.T) {
	const key = "m/1/model.onnx"
	for _, tc := range []struct {
		name    string
		size    int
		fault   *fault
		opts    Options
		err     string // "" : success expected
		gets    int    // GETs of key (0: don't check)
		lessCut bool   // a cut part resumes where it broke
	}{
		{name: "500s", size: 1000, fault: &fault{status: 500, code: "InternalError", times: 2}, gets: 3},
		{name: "SlowDown", size: 5 * MiB, fault: &fault{status: 503, code: "SlowDown", times: 3}, opts: Options{PartSize: MiB, Concurrency: 2}},
		{name: "truncated bodies", size: 10 * MiB, fault: &fault{cutAfter: 300 << 10, cuts: 3}, opts: Options{PartSize: 2 * MiB, Concurrency: 2}, gets: 5 + 3, lessCut: true},
		{name: "truncated small file", size: 100 << 10, fault: &fault{cutAfter: 1000, cuts: 2}, gets: 3, lessCut: true},
		{name: "attempt timeout", size: MiB, fault: &fault{delay: 200 * time.Millisecond, delayTimes: 1}, opts: Options{RequestTimeout: time.Second}, gets: 2},
		{name: "gives up", size: 1000, fault: &fault{status: 500, code: "InternalError", times: -1}, opts: Options{Retries: 2}, err: "giving up after 3 attempts", gets: 3},
		{name: "no retries", size: 1000, fault: &fault{status: 503, code: "SlowDown", times: -1}, opts: Options{Retries: -1}, err: "SlowDown", gets: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			files := map[string][]byte{"model.onnx": randBytes(tc.size, 1)}
			f.putVersion(t, "m/1/", files, true)
			var retries atomic.Int64
			tc.opts.OnRetry = func(string) { retries.Add(1) }
			st := f.store(t, tc.opts)
			m, v := describe(t, st)
			f.reset()
			f.setFault(key, tc.fault)
			dir := t.TempDir()
			err := m.Fetch(context.Background(), v, dir, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "s3://models/m/1/model.onnx") {
					t.Fatalf("err = %v, want one saying %q and naming the object", err, tc.err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				checkDir(t, dir, files)
			}
			if n := f.getsOf(key); tc.gets != 0 && n != tc.gets {
				t.Errorf("%d GETs, want %d", n, tc.gets)
			}
			if n := f.getsOf(key); tc.gets != 0 && retries.Load() != int64(n-1) && !tc.lessCut {
				t.Errorf("OnRetry called %d times for %d GETs of one object", retries.Load(), n)
			}
			if tc.lessCut {
				// Had each retry started its part over, the server would
				// have sent size + cuts*cutAfter bytes.
				if max := int64(tc.size) + int64(tc.fault.cuts)*tc.fault.cutAfter; f.served.Load() >= max {
					t.Errorf("served %d bytes: retries did not resume where the body broke", f.served.Load())
				}
			}
		})
	}
}

// interrupt runs a fetch and cancels it once stop bytes have arrived.
func interrupt(t *testing.T, st *Store, files []source.File, dir string, stop int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	err := st.FetchFiles(ctx, files, dir, func(n int64) {
		if got.Add(n) >= stop {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted fetch: %v, want context.Canceled", err)
	}
}

func TestFetchResume(t *testing.T) {
	files := map[string][]byte{"model.onnx": randBytes(40*MiB, 1), "small.txt": []byte("s"), "b/w.bin": randBytes(3*MiB, 2)}
	total := int64(43*MiB + 1)
	for _, tc := range []struct {
		name     string
		manifest bool
		sizeOnly bool
		damage   func(t *testing.T, dir string)
		// full: the second fetch must download everything again.
		full bool
		// redo: model.onnx must be downloaded again in full (after its
		// resumed parts failed verification).
		redo bool
	}{
		{name: "sha256", manifest: true},
		{name: "md5", manifest: false},
		{name: "size only", sizeOnly: true},
		{name: "corrupted part is fetched again", manifest: true, redo: true, damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, ".model.onnx.tgpart")
			fh, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			if _, err := fh.WriteAt([]byte("garbage"), 10); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "garbage journal", manifest: true, full: true, damage: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, journalName), []byte("{not json}\n{}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "temp file gone", manifest: true, damage: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ".model.onnx.tgpart")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.putVersion(t, "m/1/", files, tc.manifest)
			st := f.store(t, Options{PartSize: 4 * MiB, Concurrency: 2})
			st.syncEvery = 8 * MiB
			_, v := describe(t, st)
			if tc.sizeOnly {
				for i := range v.Files {
					v.Files[i].MD5, v.Files[i].SHA256 = "", ""
				}
			}
			dir := t.TempDir()
			f.reset()
			interrupt(t, st, v.Files, dir, 20*MiB)
			first := f.served.Load()
			if _, err := os.Stat(filepath.Join(dir, journalName)); err != nil {
				t.Fatalf("no journal after an interrupted fetch: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "model.onnx")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("model.onnx has its final name before it is complete (%v)", err)
			}
			if tc.damage != nil {
				tc.damage(t, dir)
			}
			f.reset()
			var progress atomic.Int64
			if err := st.FetchFiles(context.Background(), v.Files, dir, func(n int64) { progress.Add(n) }); err != nil {
				t.Fatal(err)
			}
			second := f.served.Load()
			checkDir(t, dir, files)
			t.Logf("first fetch: %d bytes, second: %d bytes, of %d", first, second, total)
			switch {
			case tc.full && second < total:
				t.Errorf("second fetch downloaded %d bytes, want everything (%d): the journal was not trustworthy", second, total)
			case tc.redo && second < 40*MiB+(total-first):
				t.Errorf("second fetch downloaded %d bytes: the corrupted model.onnx was not fetched again", second)
			case !tc.full && !tc.redo && second >= total:
				t.Errorf("second fetch downloaded %d bytes of %d: nothing was resumed", second, total)
			}
			if progress.Load() < total {
				t.Errorf("progress reported %d bytes, want at least %d", progress.Load(), total)
			}
		})
	}
}

func TestFetchResumeChangedDescription(t *testing.T) {
	f := newFake(t)
	files := map[string][]byte{"model.onnx": randBytes(24*MiB, 1)}
	f.putVersion(t, "m/1/", files, true)
	st := f.store(t, Options{PartSize: 4 * MiB, Concurrency: 2})
	_, v := describe(t, st)
	dir := t.TempDir()
	interrupt(t, st, v.Files, dir, 10*MiB)
	// Another part size: the recorded parts mean nothing any more.
	st2 := f.store(t, Options{PartSize: 3 * MiB, Concurrency: 2})
	f.reset()
	if err := st2.FetchFiles(context.Background(), v.Files, dir, nil); err != nil {
		t.Fatal(err)
	}
	if f.served.Load() != 24*MiB {
		t.Errorf("served %d bytes, want a full download after the part size changed", f.served.Load())
	}
	checkDir(t, dir, files)
}

func TestFetchResumeCompleteFiles(t *testing.T) {
	// A fetch that failed after some files were complete: they are verified
	// from disk, not downloaded again.
	f := newFake(t)
	files := map[string][]byte{"a.bin": randBytes(2*MiB, 1), "b.bin": randBytes(3*MiB, 2), "c.bin": randBytes(MiB, 3)}
	f.putVersion(t, "m/1/", files, true)
	st := f.store(t, Options{PartSize: 4 * MiB, Concurrency: 1})
	_, v := describe(t, st)
	f.setFault("m/1/c.bin", &fault{status: 403, code: "AccessDenied", times: 1})
	dir := t.TempDir()
	if err := st.FetchFiles(context.Background(), v.Files, dir, nil); !errors.Is(err, source.ErrAccessDenied) {
		t.Fatalf("err = %v, want ErrAccessDenied", err)
	}
	f.reset()
	if err := st.FetchFiles(context.Background(), v.Files, dir, nil); err != nil {
		t.Fatal(err)
	}
	if f.getsOf("m/1/a.bin") != 0 || f.getsOf("m/1/b.bin") != 0 || f.getsOf("m/1/c.bin") != 1 {
		t.Errorf("GETs a, b, c = %d %d %d; want 0 0 1", f.getsOf("m/1/a.bin"), f.getsOf("m/1/b.bin"), f.getsOf("m/1/c.bin"))
	}
	checkDir(t, dir, files)

	// Complete files are verified again from disk when resuming: one
	// changed on disk between the runs is fetched again.
	dir = t.TempDir()
	f.setFault("m/1/c.bin", &fault{status: 403, code: "AccessDenied", times: 1})
	if err := st.FetchFiles(context.Background(), v.Files, dir, nil); !errors.Is(err, source.ErrAccessDenied) {
		t.Fatalf("err = %v, want ErrAccessDenied", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.bin"), randBytes(2*MiB, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	f.reset()
	if err := st.FetchFiles(context.Background(), v.Files, dir, nil); err != nil {
		t.Fatal(err)
	}
	if f.getsOf("m/1/a.bin") != 1 || f.getsOf("m/1/b.bin") != 0 || f.getsOf("m/1/c.bin") != 1 {
		t.Errorf("GETs a, b, c = %d %d %d; want 1 0 1", f.getsOf("m/1/a.bin"), f.getsOf("m/1/b.bin"), f.getsOf("m/1/c.bin"))
	}
	checkDir(t, dir, files)
}

func TestFetchCancel(t *testing.T) {
	f := newFake(t)
	f.putVersion(t, "m/1/", map[string][]byte{"model.onnx": randBytes(16*MiB, 1), "b.bin": randBytes(MiB, 2)}, false)
	st := f.store(t, Options{PartSize: 2 * MiB, Concurrency: 4})
	m, v := describe(t, st)
	f.setFault("m/1/model.onnx", &fault{delay: 50 * time.Millisecond, delayTimes: -1})
	f.setFault("m/1/b.bin", &fault{delay: 50 * time.Millisecond, delayTimes: -1})
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	var cancelled time.Time
	start := time.Now()
	err := m.Fetch(ctx, v, t.TempDir(), func(int64) { once.Do(func() { cancelled = time.Now(); cancel() }) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	t.Logf("first progress after %v, returned %v after the cancel", cancelled.Sub(start), time.Since(cancelled))
	// A context cancelled before the fetch starts.
	if err := m.Fetch(ctx, v, t.TempDir(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestFetchRefuses(t *testing.T) {
	okFile := source.File{Path: "model.onnx", Size: 1, Loc: "s3://models/m/1/model.onnx"}
	for _, tc := range []struct {
		name  string
		files []source.File
		err   string
	}{
		{name: "traversal", files: []source.File{{Path: "../x", Size: 1, Loc: "s3://models/x"}}, err: "not allowed"},
		{name: "absolute", files: []source.File{{Path: "/etc/passwd", Size: 1, Loc: "s3://models/x"}}, err: "relative"},
		{name: "duplicate", files: []source.File{okFile, okFile}, err: "twice"},
		{name: "nested", files: []source.File{okFile, {Path: "model.onnx/x", Size: 1, Loc: "s3://models/x"}}, err: "both a file and the directory"},
		{name: "bad loc", files: []source.File{{Path: "x", Size: 1, Loc: "/tmp/x"}}, err: "want s3://bucket/key"},
		{name: "negative size", files: []source.File{{Path: "x", Size: -1, Loc: "s3://models/x"}}, err: "out of range"},
		{name: "huge size", files: []source.File{{Path: "x", Size: 1 << 62, Loc: "s3://models/x"}}, err: "out of range"},
		{name: "bad sha", files: []source.File{{Path: "x", Size: 1, SHA256: "abc", Loc: "s3://models/x"}}, err: "64 hex"},
		{name: "bad md5", files: []source.File{{Path: "x", Size: 1, MD5: "abc", Loc: "s3://models/x"}}, err: "32 hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			st := f.store(t, Options{})
			dir := t.TempDir()
			err := st.FetchFiles(context.Background(), tc.files, dir, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("%d entries written into dir", len(ents))
			}
			if f.count("get") != 0 {
				t.Error("GETs were made")
			}
		})
	}
	f := newFake(t)
	st := f.store(t, Options{})
	if err := st.FetchFiles(context.Background(), []source.File{okFile}, filepath.Join(t.TempDir(), "nope"), nil); err == nil {
		t.Error("FetchFiles into a missing directory did not fail")
	}
}

func TestFetchStaysInDir(t *testing.T) {
	// A symlink inside dir pointing outside it is not followed out.
	f := newFake(t)
	f.put(t, "m/1/sub/x.bin", []byte("evil"))
	st := f.store(t, Options{})
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "sub")); err != nil {
		t.Skip(err)
	}
	files := []source.File{{Path: "sub/x.bin", Size: 4, Loc: "s3://models/m/1/sub/x.bin"}}
	if err := st.FetchFiles(context.Background(), files, dir, nil); err == nil {
		t.Error("FetchFiles wrote through a symlink leading out of dir")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("%d files written outside dir", len(ents))
	}
}
