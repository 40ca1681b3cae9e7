// Package local is a model source in a local folder: versions are the
// folder's numbered subdirectories (<dir>/<N>/...), as in a Triton
// repository. Useful for development, tests and models baked into an image.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/tritongate/tritongate/internal/source"
)

// Dir is a folder of versions.
type Dir struct{ Path string }

// New returns the source for a folder.
func New(path string) *Dir { return &Dir{Path: path} }

// List returns the numbered subdirectories.
func (d *Dir) List(ctx context.Context) ([]int64, error) {
	ents, err := os.ReadDir(d.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", d.Path, source.ErrNotFound)
		}
		return nil, err
	}
	var out []int64
	for _, e := range ents {
		if n, ok := source.ParseVersion(e.Name()); ok && e.IsDir() {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Alias: folders have none.
func (d *Dir) Alias(context.Context, string) (int64, error) { return 0, source.ErrNoAliases }

// Describe lists a version's files with their SHA-256.
func (d *Dir) Describe(ctx context.Context, n int64) (source.Version, error) {
	root := filepath.Join(d.Path, strconv.FormatInt(n, 10))
	files, err := Files(ctx, root, nil)
	if errors.Is(err, source.ErrNotFound) {
		return source.Version{}, fmt.Errorf("version %d: %w", n, err)
	}
	if err != nil {
		return source.Version{}, err
	}
	return source.Version{Number: n, Origin: root + "/", Files: files, Digest: source.DigestOf(files)}, nil
}

// Files describes every regular file below root (a directory): paths
// relative to it, checked by source.CheckPath, with their size and
// SHA-256, sorted by path. Paths skip (if not nil) accepts are left out
// before any check. A missing or empty directory is source.ErrNotFound.
func Files(ctx context.Context, root string, skip func(rel string) bool) ([]source.File, error) {
	var files []source.File
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && skip != nil && skip(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		if err := source.CheckPath(rel); err != nil {
			return fmt.Errorf("%s: %w", root, err)
		}
		sum, size, err := hashFile(p)
		if err != nil {
			return err
		}
		files = append(files, source.File{Path: rel, Size: size, SHA256: sum, Loc: p})
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", root, source.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s has no files: %w", root, source.ErrNotFound)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Fetch copies the version's files into dir, verifying each.
func (d *Dir) Fetch(ctx context.Context, v source.Version, dir string, progress func(int64)) error {
	return FetchFiles(ctx, v.Files, dir, progress)
}

// FetchFiles copies files (as Files described them) into dir, creating
// subdirectories, and verifies each one's size and SHA-256.
func FetchFiles(ctx context.Context, files []source.File, dir string, progress func(int64)) error {
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := source.CheckPath(f.Path); err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(f, dst, progress); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(f source.File, dst string, progress func(int64)) error {
	in, err := os.Open(f.Loc)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", f.Loc, source.ErrNotFound)
		}
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h, progressWriter(progress)), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", f.Loc, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || (f.SHA256 != "" && sum != f.SHA256) {
		os.Remove(dst)
		return fmt.Errorf("%s changed since it was described (%d bytes, sha256 %s; expected %d, %s): %w", f.Loc, n, sum, f.Size, f.SHA256, source.ErrDigestMismatch)
	}
	return nil
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) {
	if p != nil {
		p(int64(len(b)))
	}
	return len(b), nil
}
