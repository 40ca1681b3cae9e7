package s3

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/tritongate/tritongate/internal/source"
)

// minBuf is the smallest buffer allocated for a part (buffers are reused
// for parts of other files).
const minBuf = 1 << 20

// getBuf returns a buffer for n bytes: a full-size one left by an earlier
// fetch when n calls for it (the pool lets the GC reclaim them when fetches
// stop), else a new one.
func (st *Store) getBuf(n int64) []byte {
	if n > minBuf || n > st.partSize/2 {
		if p, ok := st.bufPool.Get().(*[]byte); ok {
			return *p
		}
		return make([]byte, st.partSize)
	}
	return make([]byte, n, min(st.partSize, minBuf))
}

// tmpSuffix names a file being fetched: "a/.model.onnx.tgpart" for
// "a/model.onnx". CheckPath refuses dot-elements, so it cannot be a file of
// the version.
const tmpSuffix = ".tgpart"

func tmpName(p string) string {
	dir, base := path.Split(p)
	return dir + "." + base + tmpSuffix
}

// maxObjectSize is S3's largest object, 5 TiB.
const maxObjectSize = 5 << 40

// plan is one file to fetch, checked.
type plan struct {
	file        source.File
	bucket, key string
	algo, want  string // "sha256" or "md5" and the hex digest; "" for size only
}

// FetchFiles downloads files (as Describe or Files return them) into dir, an
// existing directory, creating subdirectories as needed, and verifies each
// one: SHA-256 when known, else MD5, else size. It writes nothing outside
// dir. progress, if not nil, is called from several goroutines with the
// bytes received as they arrive, and with the bytes of parts found complete
// on disk when resuming, so that the calls add up to the files' total size.
//
// A file appears under its final name only once verified. Only one fetch
// may run in a directory at a time. If FetchFiles
// fails or is interrupted, it leaves dot-files in dir (a journal and
// ".*.tgpart" files) so that running it again on the same dir resumes rather
// than starts over; the caller removes them (or the whole dir) if it gives
// up.
func (st *Store) FetchFiles(ctx context.Context, files []source.File, dir string, progress func(int64)) error {
	if err := st.ready(); err != nil {
		return err
	}
	plans, err := makePlans(files)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("fetch destination: %w", err)
	}
	defer root.Close()
	j, prior, err := openJournal(root, st.log)
	if err != nil {
		return fmt.Errorf("fetch into %s: %w", dir, err)
	}
	defer j.close()
	start := time.Now()
	var stats fetchStats
	redo, err := st.run(ctx, root, j, plans, prior, progress, &stats)
	if err == nil && len(redo) > 0 {
		_, err = st.run(ctx, root, j, redo, nil, progress, &stats)
	}
	if err != nil {
		return err
	}
	j.close()
	if err := root.Remove(journalName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the fetch journal in %s: %w", dir, err)
	}
	el := time.Since(start)
	st.log.Debug("s3: fetched", "files", len(plans), "dir", dir, "downloaded", stats.downloaded.Load(),
		"resumed", stats.resumed.Load(), "elapsed", el.Round(time.Millisecond).String(),
		"MBps", float64(stats.downloaded.Load())/1e6/max(el.Seconds(), 1e-9))
	return nil
}

// makePlans checks the files given to FetchFiles: paths (CheckPath, no
// duplicates, no file that is another's directory), locations, sizes and
// checksum formats.
func makePlans(files []source.File) ([]plan, error) {
	plans := make([]plan, 0, len(files))
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := source.CheckPath(f.Path); err != nil {
			return nil, fmt.Errorf("refusing to fetch %s: %v", f.Loc, err)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("refusing to fetch: %q listed twice", f.Path)
		}
		seen[f.Path] = true
		bucket, key, err := parseLoc(f.Loc)
		if err != nil {
			return nil, fmt.Errorf("refusing to fetch %q: %v", f.Path, err)
		}
		if f.Size < 0 || f.Size > maxObjectSize {
			return nil, fmt.Errorf("refusing to fetch %s: size %d out of range (0 to 5 TiB)", f.Loc, f.Size)
		}
		p := plan{file: f, bucket: bucket, key: key}
		p.file.SHA256 = strings.ToLower(f.SHA256)
		p.file.MD5 = strings.ToLower(f.MD5)
		switch {
		case p.file.SHA256 != "":
			if len(p.file.SHA256) != 64 || !isHex(p.file.SHA256) {
				return nil, fmt.Errorf("refusing to fetch %s: SHA-256 %q is not 64 hex digits", f.Loc, f.SHA256)
			}
			p.algo, p.want = "sha256", p.file.SHA256
		case p.file.MD5 != "":
			if len(p.file.MD5) != 32 || !isHex(p.file.MD5) {
				return nil, fmt.Errorf("refusing to fetch %s: MD5 %q is not 32 hex digits", f.Loc, f.MD5)
			}
			p.algo, p.want = "md5", p.file.MD5
		}
		plans = append(plans, p)
	}
	if err := checkNesting(files); err != nil {
		return nil, fmt.Errorf("refusing to fetch: %v", err)
	}
	return plans, nil
}

type fetchStats struct {
	downloaded, resumed atomic.Int64
}

// run is one pass of the worker pool over plans. It returns the resumed
// files that failed verification, to be fetched again from scratch.
type run struct {
	st       *Store
	ctx      context.Context
	root     *os.Root
	j        *journal
	progress func(int64)
	stats    *fetchStats
	jobs     chan job
	bufs     chan []byte

	mu     sync.Mutex
	opened []*fileState
	redo   []plan
}

type job struct {
	fs  *fileState
	idx int
	buf []byte
}

func (st *Store) run(ctx context.Context, root *os.Root, j *journal, plans []plan, prior map[string]*resumeInfo, progress func(int64), stats *fetchStats) ([]plan, error) {
	g, gctx := errgroup.WithContext(ctx)
	nbuf := st.concurrency + 2
	r := &run{st: st, ctx: gctx, root: root, j: j, progress: progress, stats: stats,
		jobs: make(chan job), bufs: make(chan []byte, nbuf)}
	for range nbuf {
		r.bufs <- nil // allocated on first use, at the size needed
	}
	g.Go(func() error { return r.dispatch(plans, prior) })
	for range st.concurrency {
		g.Go(r.work)
	}
	err := g.Wait()
	r.closeAll()
	for range nbuf {
		select {
		case b := <-r.bufs:
			if int64(cap(b)) == st.partSize {
				st.bufPool.Put(&b)
			}
		default:
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("fetch interrupted (%w): run it again on the same directory to resume", ctxErr(ctx))
	}
	if err != nil {
		return nil, err
	}
	return r.redo, nil
}

// dispatch opens files in order and hands out their parts, each with a
// buffer: buffers are taken in dispatch order, so a part waiting for its
// predecessors to be hashed never holds the buffer one of them needs.
func (r *run) dispatch(plans []plan, prior map[string]*resumeInfo) error {
	defer close(r.jobs)
	for _, p := range plans {
		fs, err := r.open(p, prior[p.file.Path])
		if err != nil {
			return err
		}
		for i := range fs.nparts {
			var buf []byte
			select {
			case buf = <-r.bufs:
			case <-r.ctx.Done():
				return r.ctx.Err()
			}
			select {
			case r.jobs <- job{fs: fs, idx: i, buf: buf}:
			case <-r.ctx.Done():
				return r.ctx.Err()
			}
		}
	}
	return nil
}

func (r *run) work() error {
	for jb := range r.jobs {
		data, err := r.part(jb)
		if err != nil {
			return err
		}
		if err := jb.fs.submit(r, jb.idx, data); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) report(n int) {
	if n > 0 && r.progress != nil {
		r.progress(int64(n))
	}
}

func (r *run) putBuf(b []byte) { r.bufs <- b[:0] }

func (r *run) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fs := range r.opened {
		fs.closeFile()
	}
}

// fileState is one file being fetched.
type fileState struct {
	plan
	final, tmp string // paths in the root; tmp == final when verifying a file already in place
	f          *os.File
	closeOnce  sync.Once
	closeErr   error
	nparts     int
	partSize   int64
	onDisk     map[int]bool // parts found complete on disk (resume)
	resumed    bool
	h          hash.Hash // nil: size only
	sse        atomic.Bool

	mu            sync.Mutex
	unsynced      []int // parts written but not synced (no checksum)
	unsyncedBytes int64
	etag          string // the ETag every response must carry
	pending       map[int][]byte
	next          int
	hashing       bool
}

func (fs *fileState) closeFile() error {
	fs.closeOnce.Do(func() { fs.closeErr = fs.f.Close() })
	return fs.closeErr
}

// open prepares a file: its directory, and either what the journal says is
// already on disk or a fresh, preallocated temporary file.
func (r *run) open(p plan, info *resumeInfo) (*fileState, error) {
	ps := r.st.partSize
	fs := &fileState{plan: p, final: p.file.Path, tmp: tmpName(p.file.Path), partSize: ps,
		nparts: max(1, int((p.file.Size+ps-1)/ps)), pending: map[int][]byte{}}
	switch {
	case p.file.MD5 != "":
		fs.etag = p.file.MD5 // a single-part object's ETag is its MD5
	case p.file.ETag != "":
		fs.etag = p.file.ETag // the object described, not one uploaded since
	}
	switch p.algo {
	case "sha256":
		fs.h = sha256.New()
	case "md5":
		fs.h = md5.New()
	}
	if d := path.Dir(p.file.Path); d != "." {
		if err := r.root.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("fetching %s: creating directory %q: %w", p.file.Loc, d, err)
		}
	}
	hdr := header{Size: p.file.Size, SHA256: p.file.SHA256, MD5: p.file.MD5, ETag: p.file.ETag, Loc: p.file.Loc, PartSize: ps}
	if info != nil && info.hdr == hdr {
		if info.done && r.sized(fs.final, p.file.Size) {
			if f, err := r.root.OpenFile(fs.final, os.O_RDONLY, 0); err == nil {
				fs.f, fs.tmp = f, fs.final
				fs.onDisk = map[int]bool{}
				for i := range fs.nparts {
					fs.onDisk[i] = true
				}
			}
		} else if !info.done && len(info.parts) > 0 && r.sized(fs.tmp, p.file.Size) {
			if f, err := r.root.OpenFile(fs.tmp, os.O_RDWR, 0); err == nil {
				fs.f, fs.onDisk = f, info.parts
			}
		}
	}
	if fs.f != nil {
		for i := range fs.nparts {
			if fs.onDisk[i] {
				fs.resumed = true
			}
		}
	} else {
		fs.onDisk = nil
		f, err := r.root.OpenFile(fs.tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", p.file.Loc, err)
		}
		if err := preallocate(f, p.file.Size); err != nil {
			f.Close()
			return nil, fmt.Errorf("fetching %s: allocating %d bytes for %s: %w (is the disk full?)", p.file.Loc, p.file.Size, fs.tmp, err)
		}
		fs.f = f
		if err := r.j.start(p.file.Path, hdr); err != nil {
			f.Close()
			return nil, err
		}
	}
	r.mu.Lock()
	r.opened = append(r.opened, fs)
	r.mu.Unlock()
	return fs, nil
}

// sized says whether name is a regular file of size bytes.
func (r *run) sized(name string, size int64) bool {
	fi, err := r.root.Lstat(name)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// part gets one part into its buffer and writes it to the file (or, when
// resuming, reads it back from the file for the hasher).
func (r *run) part(jb job) ([]byte, error) {
	fs := jb.fs
	off := int64(jb.idx) * fs.partSize
	n := min(fs.partSize, fs.file.Size-off)
	buf := jb.buf
	if int64(cap(buf)) < n {
		buf = r.st.getBuf(n)
	}
	buf = buf[:n]
	if fs.onDisk[jb.idx] {
		if fs.h != nil {
			if _, err := fs.f.ReadAt(buf, off); err != nil {
				r.putBuf(buf)
				return nil, fmt.Errorf("resuming %s: reading back %s: %w", fs.file.Loc, fs.tmp, err)
			}
		}
		r.stats.resumed.Add(n)
		r.report(int(n))
		return buf, nil
	}
	if err := r.get(fs, off, buf); err != nil {
		r.putBuf(buf)
		if errors.Is(err, errChanged) && fs.tmp != fs.final {
			// Its parts so far are of another object: useless to resume.
			_ = r.root.Remove(fs.tmp)
		}
		return nil, err
	}
	if fs.h == nil {
		if err := r.recordSynced(fs, jb.idx, n); err != nil {
			r.putBuf(buf)
			return nil, err
		}
	} else if err := r.j.part(fs.file.Path, jb.idx); err != nil {
		r.putBuf(buf)
		return nil, err
	}
	return buf, nil
}

// recordSynced journals parts of a file without a checksum only once they
// are on disk for good: nothing would detect a part lost in a crash when
// resuming. Parts are synced in batches (64 MiB) to keep fsyncs rare.
func (r *run) recordSynced(fs *fileState, idx int, n int64) error {
	fs.mu.Lock()
	fs.unsynced = append(fs.unsynced, idx)
	fs.unsyncedBytes += n
	if fs.unsyncedBytes < r.st.syncEvery {
		fs.mu.Unlock()
		return nil
	}
	batch := fs.unsynced
	fs.unsynced, fs.unsyncedBytes = nil, 0
	fs.mu.Unlock()
	if err := fs.f.Sync(); err != nil {
		return fmt.Errorf("fetching %s: syncing %s: %w", fs.file.Loc, fs.tmp, err)
	}
	for _, i := range batch {
		if err := r.j.part(fs.file.Path, i); err != nil {
			return err
		}
	}
	return nil
}

// writeChunk is how many received bytes are written to the file at once.
const writeChunk = 1 << 20

// get reads bytes [off, off+len(buf)) of the object into buf and writes
// them at the same offset of the stage file as they arrive, retrying
// transient failures; a retry asks only for the bytes not received yet.
func (r *run) get(fs *fileState, off int64, buf []byte) error {
	n := int64(len(buf))
	var got, written int64
	write := func() error {
		if _, err := fs.f.WriteAt(buf[written:got], off+written); err != nil {
			return fmt.Errorf("writing %s: %w: %w", fs.tmp, errLocal, err)
		}
		written = got
		return nil
	}
	return r.st.attempt(r.ctx, fs.file.Loc, "fetching", func(ctx context.Context) error {
		in := &awss3.GetObjectInput{Bucket: aws.String(fs.bucket), Key: aws.String(fs.key)}
		ranged := fs.nparts > 1 || got > 0
		if ranged {
			in.Range = aws.String("bytes=" + strconv.FormatInt(off+got, 10) + "-" + strconv.FormatInt(off+n-1, 10))
		}
		out, err := r.st.api.GetObject(ctx, in, opts)
		if err != nil {
			if isInvalidRange(err) {
				return fmt.Errorf("%w: it is now shorter than %d bytes: describe the version again: %w", errChanged, fs.file.Size, err)
			}
			return err
		}
		defer out.Body.Close()
		if err := fs.check(out, ranged, off+got, n-got); err != nil {
			return err
		}
		for got < n {
			m, err := out.Body.Read(buf[got:])
			got += int64(m)
			r.stats.downloaded.Add(int64(m))
			r.report(m)
			// Written as it arrives, while it is still in the CPU's
			// cache: one write of a whole part from memory cost this
			// machine's kernel 2.5 times the CPU (bench/sync.sh).
			if got-written >= writeChunk || (got == n && written < n) {
				if werr := write(); werr != nil {
					return werr
				}
			}
			if err == io.EOF && got < n {
				err = io.ErrUnexpectedEOF
			}
			if err != nil && err != io.EOF {
				return fmt.Errorf("%w after %d of %d bytes at offset %d: %w", errTruncated, got, n, off, err)
			}
		}
		var one [1]byte
		if m, _ := out.Body.Read(one[:]); m > 0 {
			return fmt.Errorf("%w: the response for bytes %d-%d is longer than %d bytes", errChanged, off, off+n-1, n)
		}
		return nil
	})
}

// check compares a response with what the file and the request expect.
func (fs *fileState) check(out *awss3.GetObjectOutput, ranged bool, start, length int64) error {
	if err := fs.sameETag(aws.ToString(out.ETag)); err != nil {
		return err
	}
	if etagNotMD5(out) {
		fs.sse.Store(true)
	}
	if ranged {
		cr := aws.ToString(out.ContentRange)
		s, e, total, ok := parseContentRange(cr)
		if !ok {
			return fmt.Errorf("asked for bytes %d-%d, got Content-Range %q: does the server support ranged GETs?", start, start+length-1, cr)
		}
		if total != fs.file.Size {
			return fmt.Errorf("%w: it is now %d bytes, %d when described: describe the version again", errChanged, total, fs.file.Size)
		}
		if s != start || e != start+length-1 {
			return fmt.Errorf("asked for bytes %d-%d, got Content-Range %q", start, start+length-1, cr)
		}
	}
	if cl := out.ContentLength; cl != nil && *cl != length {
		if !ranged {
			return fmt.Errorf("%w: it is now %d bytes, %d when described: describe the version again", errChanged, *cl, fs.file.Size)
		}
		return fmt.Errorf("asked for %d bytes, Content-Length is %d", length, *cl)
	}
	return nil
}

// sameETag checks that every response for the file comes from the same
// object: the one described (single-part ETag = MD5) or the first response.
func (fs *fileState) sameETag(etag string) error {
	e := strings.ToLower(strings.Trim(etag, `"`))
	if e == "" {
		return nil
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.etag == "" {
		fs.etag = e
		return nil
	}
	if fs.etag != e {
		return fmt.Errorf("%w while it was being fetched (ETag %q, now %q): it was overwritten; describe the version again", errChanged, fs.etag, e)
	}
	return nil
}

// parseContentRange reads "bytes start-end/total".
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || total <= end {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

// submit hands a written part to the file's in-order hasher. Whichever
// worker completes the contiguous prefix hashes it, then every waiting part
// that follows; the others leave their buffer waiting and move on.
func (fs *fileState) submit(r *run, idx int, data []byte) error {
	if fs.h == nil {
		// Nothing to hash: no order to keep.
		r.putBuf(data)
		fs.mu.Lock()
		fs.next++
		last := fs.next == fs.nparts
		fs.mu.Unlock()
		if last {
			return r.finish(fs)
		}
		return nil
	}
	fs.mu.Lock()
	fs.pending[idx] = data
	if fs.hashing {
		fs.mu.Unlock()
		return nil
	}
	fs.hashing = true
	for {
		d, ok := fs.pending[fs.next]
		if !ok {
			fs.hashing = false
			fs.mu.Unlock()
			return nil
		}
		delete(fs.pending, fs.next)
		fs.mu.Unlock()
		if fs.h != nil {
			fs.h.Write(d)
		}
		r.putBuf(d)
		fs.mu.Lock()
		fs.next++
		if fs.next == fs.nparts {
			fs.hashing = false
			fs.mu.Unlock()
			return r.finish(fs)
		}
	}
}

// finish verifies a complete file and gives it its final name.
func (r *run) finish(fs *fileState) error {
	if fs.h == nil && fs.tmp != fs.final {
		// The "done" record below must not outlive a crash the data does
		// not survive.
		if err := fs.f.Sync(); err != nil {
			return fmt.Errorf("fetching %s: syncing %s: %w", fs.file.Loc, fs.tmp, err)
		}
	}
	if err := fs.closeFile(); err != nil {
		return fmt.Errorf("fetching %s: closing %s: %w", fs.file.Loc, fs.tmp, err)
	}
	if fs.h != nil {
		got := hex.EncodeToString(fs.h.Sum(nil))
		switch {
		case got == fs.want:
		case fs.algo == "md5" && fs.sse.Load():
			r.st.log.Warn("s3: the ETag of an SSE-KMS/SSE-C object is not its MD5: verified by size only (add a tritongate-manifest.json for full verification)",
				"object", fs.file.Loc)
		default:
			rmErr := r.root.Remove(fs.tmp)
			if fs.resumed {
				r.st.log.Warn("s3: a resumed file does not verify: fetching it again from scratch",
					"object", fs.file.Loc, "want", fs.algo+":"+fs.want, "got", fs.algo+":"+got)
				r.mu.Lock()
				r.redo = append(r.redo, fs.plan)
				r.mu.Unlock()
				return nil
			}
			if rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
				r.st.log.Warn("s3: removing a file that failed verification", "file", fs.tmp, "err", rmErr)
			}
			return fmt.Errorf("fetching %s (%s): %w: expected %s:%s, got %s:%s; the object is not what the version's manifest or ETag says (modified after registration, or corrupted): describe the version again, re-register it if this persists",
				fs.file.Loc, fs.file.Path, source.ErrDigestMismatch, fs.algo, fs.want, fs.algo, got)
		}
	}
	if fs.tmp != fs.final {
		if err := r.root.Rename(fs.tmp, fs.final); err != nil {
			return fmt.Errorf("fetching %s: renaming %s to %s: %w", fs.file.Loc, fs.tmp, fs.final, err)
		}
	}
	return r.j.done(fs.file.Path)
}
