package s3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// journalName is the resume journal kept in a fetch's directory (a dot-file:
// the syncer ignores and removes dot-files when it publishes).
const journalName = ".tritongate-s3-fetch.journal"

// maxJournalSize bounds the journal we read back; a larger one is not
// trusted (it would mean millions of parts).
const maxJournalSize = 64 << 20

// header is what a file's recorded parts are only valid for: the same
// object, checksum and size, cut in parts of the same size.
type header struct {
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256,omitempty"`
	MD5      string `json:"md5,omitempty"`
	ETag     string `json:"etag,omitempty"`
	Loc      string `json:"loc"`
	PartSize int64  `json:"part_size"`
}

// jrec is one journal line. Op "file" starts (or restarts) a file and
// carries its header; "part" records a part written (and, for files without
// a checksum, synced); "done" records the file verified and renamed to its
// final name.
type jrec struct {
	Op   string  `json:"op"`
	Path string  `json:"path"`
	Part int     `json:"part,omitempty"`
	File *header `json:"file,omitempty"`
}

// resumeInfo is what the journal says about one file.
type resumeInfo struct {
	hdr   header
	parts map[int]bool
	done  bool
}

type journal struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

// openJournal opens (or creates) the journal in root and reads what it
// records. A torn last line (the process died mid-write) is dropped; any
// other damage makes the whole journal untrusted: it is emptied and every
// file starts over.
func openJournal(root *os.Root, log *slog.Logger) (*journal, map[string]*resumeInfo, error) {
	f, err := root.OpenFile(journalName, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the fetch journal: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxJournalSize+1))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading the fetch journal: %w", err)
	}
	prior, keep, err := parseJournal(data)
	if err != nil {
		log.Warn("s3: fetch journal not trusted: starting every file over", "dir", root.Name(), "err", err)
		prior, keep = nil, 0
	}
	if keep != len(data) {
		if err := f.Truncate(int64(keep)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("truncating the fetch journal: %w", err)
		}
	}
	if _, err := f.Seek(int64(keep), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("seeking in the fetch journal: %w", err)
	}
	return &journal{f: f}, prior, nil
}

// parseJournal reads journal lines; keep is the length of the complete
// lines (what follows the last newline is a torn write).
func parseJournal(data []byte) (prior map[string]*resumeInfo, keep int, err error) {
	if len(data) > maxJournalSize {
		return nil, 0, fmt.Errorf("larger than %d bytes", maxJournalSize)
	}
	prior = map[string]*resumeInfo{}
	keep = bytes.LastIndexByte(data, '\n') + 1
	for n, line := range bytes.Split(data[:keep], []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r jrec
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, 0, fmt.Errorf("line %d: %v", n+1, err)
		}
		info := prior[r.Path]
		switch {
		case r.Op == "file" && r.File != nil:
			prior[r.Path] = &resumeInfo{hdr: *r.File, parts: map[int]bool{}}
		case r.Op == "part" && info != nil && r.Part >= 0 && !info.done:
			info.parts[r.Part] = true
		case r.Op == "done" && info != nil:
			info.done = true
		default:
			return nil, 0, fmt.Errorf("line %d: unexpected record %q for %q", n+1, r.Op, r.Path)
		}
	}
	return prior, keep, nil
}

func (j *journal) write(r jrec) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	j.buf = append(append(j.buf[:0], b...), '\n')
	if _, err := j.f.Write(j.buf); err != nil {
		return fmt.Errorf("writing the fetch journal: %w", err)
	}
	return nil
}

func (j *journal) start(path string, h header) error {
	return j.write(jrec{Op: "file", Path: path, File: &h})
}
func (j *journal) part(path string, i int) error {
	return j.write(jrec{Op: "part", Path: path, Part: i})
}
func (j *journal) done(path string) error { return j.write(jrec{Op: "done", Path: path}) }

func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}
