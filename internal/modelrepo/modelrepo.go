// Package modelrepo is the on-disk Triton model repository the syncer
// writes and Triton reads: <root>/<model>/config.pbtxt and
// <root>/<model>/<version>/....
//
// Triton must never see half a model. A version is downloaded into a
// staging directory on the same filesystem but outside the root, verified,
// fsynced, and renamed into place in one step; it carries a marker file
// (.tritongate.json) with the digest of what was fetched, so a resync with
// nothing changed downloads nothing, and a version without a marker is not
// ours. config.pbtxt is replaced by an atomic rename too. Removal renames a
// version out of the root first, then deletes it. A lock file keeps two
// syncers off one volume; leftovers of a crash (trash, temporary configs)
// are cleaned at start-up, while partial downloads are kept to be resumed.
package modelrepo

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tritongate/tritongate/internal/source"
)

// MarkerFile is the marker in every version directory the syncer published.
const MarkerFile = ".tritongate.json"

// ConfigFile is Triton's model configuration file.
const ConfigFile = "config.pbtxt"

// Marker records what a published version is.
type Marker struct {
	Model   string `json:"model"`
	Version int64  `json:"version"`
	Digest  string `json:"digest"`
	Origin  string `json:"origin"`
	// Source is the catalog's source of the model when it was published: a
	// version published from another source is fetched again.
	Source    string        `json:"source,omitempty"`
	Files     []source.File `json:"files"`
	Published time.Time     `json:"published"`
}

// Repo is a repository with its staging area, locked for one syncer.
type Repo struct {
	Root    string
	Staging string
	locks   []*os.File
}

// DefaultStaging is the staging directory used when none is given: a hidden
// sibling of the root (the same filesystem when both live on one volume
// mounted above the root, as deploy/ sets it up).
func DefaultStaging(root string) string {
	root = filepath.Clean(root)
	return filepath.Join(filepath.Dir(root), "."+filepath.Base(root)+"-staging")
}

// ErrLocked means another syncer holds the repository.
var ErrLocked = errors.New("another syncer holds the repository lock")

// Open prepares root and staging (created if missing), checks that they are
// on one filesystem and that staging is outside root, takes the lock, and
// cleans up what a crash may have left.
func Open(root, staging string) (*Repo, error) {
	root, staging = filepath.Clean(root), filepath.Clean(staging)
	if staging == "" || staging == "." {
		staging = DefaultStaging(root)
	}
	for _, d := range []string{root, staging, filepath.Join(staging, "work"), filepath.Join(staging, "trash")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, err
	}
	realStaging, err := filepath.EvalSymlinks(staging)
	if err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(realRoot, realStaging); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("staging directory %s is inside the repository %s: Triton would see it", staging, root)
	}
	if a, b, err := devices(root, staging); err != nil {
		return nil, err
	} else if a != b {
		return nil, fmt.Errorf("staging directory %s is not on the filesystem of %s: publishing must be an atomic rename (mount one volume above both)", staging, root)
	}
	// Two locks: the repository's (beside it: two syncers on one
	// repository, whatever their staging) and the staging directory's.
	var locks []*os.File
	release := func() {
		for _, l := range locks {
			l.Close() // closing drops the flock
		}
	}
	for _, path := range []string{filepath.Join(filepath.Dir(realRoot), "."+filepath.Base(realRoot)+".lock"), filepath.Join(staging, "lock")} {
		l, err := lockFile(path, root)
		if err != nil {
			release()
			return nil, err
		}
		locks = append(locks, l)
	}
	r := &Repo{Root: root, Staging: staging, locks: locks}
	if err := r.cleanup(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// lockFile takes an exclusive flock on path and writes who holds it.
func lockFile(path, root string) (*os.File, error) {
	lock, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lock.Name())
		lock.Close()
		return nil, fmt.Errorf("%s: %w (%s: %s)", root, ErrLocked, path, strings.TrimSpace(string(holder)))
	}
	lock.Truncate(0)
	host, _ := os.Hostname()
	fmt.Fprintf(lock, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	return lock, nil
}

func devices(a, b string) (uint64, uint64, error) {
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		return 0, 0, err
	}
	if err := syscall.Stat(b, &sb); err != nil {
		return 0, 0, err
	}
	return uint64(sa.Dev), uint64(sb.Dev), nil
}

// Close releases the locks.
func (r *Repo) Close() error {
	var err error
	for _, l := range r.locks {
		if cerr := l.Close(); cerr != nil && err == nil { // closing drops the flock
			err = cerr
		}
	}
	r.locks = nil
	return err
}

// cleanup removes the trash and temporary configs a crash left behind.
func (r *Repo) cleanup() error {
	if err := emptyDir(filepath.Join(r.Staging, "trash")); err != nil {
		return err
	}
	models, err := os.ReadDir(r.Root)
	if err != nil {
		return err
	}
	for _, m := range models {
		if !m.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(r.Root, m.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "."+ConfigFile+".") {
				os.Remove(filepath.Join(r.Root, m.Name(), e.Name()))
			}
		}
	}
	return nil
}

func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Stage is where one version is downloaded and checked before publishing:
// ModelDir holds the candidate config.pbtxt and the version's directory
// (VersionDir), laid out as in the repository so that it can be validated
// as Triton would load it. The same version with the same digest always gets
// the same place, so an interrupted download resumes there.
type Stage struct {
	ModelDir, VersionDir string
	Model                string
	Version              int64
	Digest               string
}

// Stage returns (creating it) the staging place of a version.
func (r *Repo) Stage(model string, version int64, digest string) (*Stage, error) {
	if err := checkName(model); err != nil {
		return nil, err
	}
	short := strings.TrimPrefix(digest, "sha256:")
	if len(short) > 16 {
		short = short[:16]
	}
	base := filepath.Join(r.Staging, "work", fmt.Sprintf("%s.%d.%s", model, version, short))
	st := &Stage{ModelDir: filepath.Join(base, model), Model: model, Version: version, Digest: digest}
	st.VersionDir = filepath.Join(st.ModelDir, strconv.FormatInt(version, 10))
	if err := os.MkdirAll(st.VersionDir, 0o755); err != nil {
		return nil, err
	}
	return st, nil
}

// Discard removes a stage (a failed verification: start over next time).
func (r *Repo) Discard(st *Stage) error {
	return os.RemoveAll(filepath.Dir(st.ModelDir))
}

// Stages lists the stages present (to remove those no longer wanted).
func (r *Repo) Stages() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(r.Staging, "work"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(r.Staging, "work", e.Name()))
	}
	return out, nil
}

// Publish moves a verified stage into the repository: dot-files (resume
// journals) are removed, the marker written, everything fsynced, and the
// version directory renamed into <root>/<model>/<version> in one step. A
// version already there (another digest) is moved out first.
func (r *Repo) Publish(st *Stage, m Marker) error {
	if err := removeDotFiles(st.VersionDir); err != nil {
		return err
	}
	m.Model, m.Version, m.Digest, m.Published = st.Model, st.Version, st.Digest, time.Now().UTC()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(st.VersionDir, MarkerFile), b); err != nil {
		return err
	}
	if err := syncTree(st.VersionDir); err != nil {
		return err
	}
	modelDir := filepath.Join(r.Root, st.Model)
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return err
	}
	if err := syncDir(r.Root); err != nil {
		return err
	}
	dst := filepath.Join(modelDir, strconv.FormatInt(st.Version, 10))
	if _, err := os.Lstat(dst); err == nil {
		if err := r.trash(dst); err != nil {
			return err
		}
	}
	if err := os.Rename(st.VersionDir, dst); err != nil {
		return err
	}
	if err := syncDir(modelDir); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Dir(st.ModelDir))
}

// WriteConfig replaces <root>/<model>/config.pbtxt atomically; it reports
// whether anything changed.
func (r *Repo) WriteConfig(model string, data []byte) (bool, error) {
	if err := checkName(model); err != nil {
		return false, err
	}
	dir := filepath.Join(r.Root, model)
	path := filepath.Join(dir, ConfigFile)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	tmp := filepath.Join(dir, "."+ConfigFile+"."+randomSuffix())
	if err := writeFileSync(tmp, data); err != nil {
		os.Remove(tmp)
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, syncDir(dir)
}

// loadedFile records, in a model's directory, the digest of the
// config.pbtxt Triton last loaded successfully: a config written but not
// loaded (a crash in between, a failed load) is told apart from one in force.
const loadedFile = ".tritongate-loaded"

// LoadedConfig returns the digest recorded by SetLoadedConfig ("" if none).
func (r *Repo) LoadedConfig(model string) string {
	b, err := os.ReadFile(filepath.Join(r.Root, model, loadedFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetLoadedConfig records that Triton loaded the config with this digest.
func (r *Repo) SetLoadedConfig(model, digest string) error {
	if err := checkName(model); err != nil {
		return err
	}
	dir := filepath.Join(r.Root, model)
	tmp := filepath.Join(dir, "."+ConfigFile+"."+randomSuffix()) // cleaned at start-up like a config
	if err := writeFileSync(tmp, []byte(digest+"\n")); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, loadedFile)); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// ReadConfig returns a model's config.pbtxt (nil if none).
func (r *Repo) ReadConfig(model string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(r.Root, model, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// RemoveVersion takes a version out of the repository (Triton must have
// unloaded it): renamed out first, then deleted.
func (r *Repo) RemoveVersion(model string, version int64) error {
	if err := checkName(model); err != nil {
		return err
	}
	dir := filepath.Join(r.Root, model, strconv.FormatInt(version, 10))
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := r.trash(dir); err != nil {
		return err
	}
	return emptyDir(filepath.Join(r.Staging, "trash"))
}

// RemoveModel takes a model out of the repository: the versions the
// syncer published (with a marker), the config and the syncer's records.
// Versions without a marker were put there by someone else and stay (with
// the directory).
func (r *Repo) RemoveModel(model string) error {
	if err := checkName(model); err != nil {
		return err
	}
	dir := filepath.Join(r.Root, model)
	m, err := r.model(model)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	foreign := false
	for _, v := range m.Versions {
		if v.Marker == nil {
			foreign = true
		}
	}
	if !foreign {
		if err := r.trash(dir); err != nil {
			return err
		}
		return emptyDir(filepath.Join(r.Staging, "trash"))
	}
	for _, v := range m.Versions {
		if v.Marker != nil {
			if err := r.trash(filepath.Join(dir, strconv.FormatInt(v.Number, 10))); err != nil {
				return err
			}
		}
	}
	for _, name := range []string{ConfigFile, loadedFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return emptyDir(filepath.Join(r.Staging, "trash"))
}

func (r *Repo) trash(path string) error {
	to := filepath.Join(r.Staging, "trash", filepath.Base(filepath.Dir(path))+"."+filepath.Base(path)+"."+randomSuffix())
	if err := os.Rename(path, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Version is a version directory found in the repository.
type Version struct {
	Number int64
	// Marker is nil for a version the syncer did not publish.
	Marker *Marker
}

// Model is a model directory found in the repository.
type Model struct {
	Name      string
	HasConfig bool
	Versions  []Version // ascending
}

// Inventory lists what is in the repository.
func (r *Repo) Inventory() (map[string]*Model, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		return nil, err
	}
	out := map[string]*Model{}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		m, err := r.model(e.Name())
		if err != nil {
			return nil, err
		}
		out[m.Name] = m
	}
	return out, nil
}

func (r *Repo) model(name string) (*Model, error) {
	m := &Model{Name: name}
	dir := filepath.Join(r.Root, name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name() == ConfigFile {
			m.HasConfig = true
			continue
		}
		n, ok := source.ParseVersion(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		v := Version{Number: n}
		if mk, err := readMarker(filepath.Join(dir, e.Name(), MarkerFile)); err == nil {
			v.Marker = mk
		}
		m.Versions = append(m.Versions, v)
	}
	sort.Slice(m.Versions, func(i, j int) bool { return m.Versions[i].Number < m.Versions[j].Number })
	return m, nil
}

// Marker reads a published version's marker (nil, nil if there is none).
func (r *Repo) Marker(model string, version int64) (*Marker, error) {
	mk, err := readMarker(filepath.Join(r.Root, model, strconv.FormatInt(version, 10), MarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return mk, err
}

func readMarker(path string) (*Marker, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

func checkName(model string) error {
	if err := source.CheckPath(model); err != nil || strings.Contains(model, "/") {
		return fmt.Errorf("model name %q cannot be a directory name", model)
	}
	return nil
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func removeDotFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(e.Name(), ".") {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			if e.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncTree fsyncs every file and directory under dir (files first).
func syncTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		return err
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syncDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
