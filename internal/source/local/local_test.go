package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tritongate/tritongate/internal/source"
)

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLocal(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "1", "model.onnx"), "one")
	write(t, filepath.Join(root, "2", "model.onnx"), "two")
	write(t, filepath.Join(root, "2", "data", "w.bin"), "weights")
	write(t, filepath.Join(root, "notes", "x"), "ignored")
	d := New(root)
	ctx := context.Background()
	vs, err := d.List(ctx)
	if err != nil || len(vs) != 2 || vs[0] != 1 || vs[1] != 2 {
		t.Fatalf("List = %v %v", vs, err)
	}
	v, err := d.Describe(ctx, 2)
	if err != nil || len(v.Files) != 2 || v.Files[0].Path != "data/w.bin" || v.Size() != 10 {
		t.Fatalf("Describe = %+v %v", v, err)
	}
	dst := t.TempDir()
	var got int64
	if err := d.Fetch(ctx, v, dst, func(n int64) { got += n }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "data", "w.bin")); string(b) != "weights" || got != 10 {
		t.Errorf("fetched %q, progress %d", b, got)
	}
	// Changed since described: refused.
	write(t, filepath.Join(root, "2", "model.onnx"), "TWO")
	if err := d.Fetch(ctx, v, t.TempDir(), nil); !errors.Is(err, source.ErrDigestMismatch) {
		t.Errorf("changed file: %v", err)
	}
	if _, err := d.Describe(ctx, 9); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("missing version: %v", err)
	}
	if _, err := d.Alias(ctx, "champion"); !errors.Is(err, source.ErrNoAliases) {
		t.Errorf("alias: %v", err)
	}
	write(t, filepath.Join(root, "3", ".hidden"), "x")
	if _, err := d.Describe(ctx, 3); err == nil {
		t.Error("a dot-file was accepted")
	}
}
