package modelrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/source"
)

func open(t *testing.T) *Repo {
	t.Helper()
	base := t.TempDir()
	r, err := Open(filepath.Join(base, "models"), filepath.Join(base, ".staging"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func stageFiles(t *testing.T, st *Stage, files map[string]string) {
	t.Helper()
	for p, s := range files {
		full := filepath.Join(st.VersionDir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPublishAndInventory(t *testing.T) {
	r := open(t)
	st, err := r.Stage("resnet", 3, "sha256:abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.VersionDir, r.Staging) {
		t.Fatalf("stage %s not in staging", st.VersionDir)
	}
	stageFiles(t, st, map[string]string{"model.onnx": "bytes", ".journal": "resume state", "sub/.x": "y"})
	// Nothing is visible in the repository before publishing.
	inv, _ := r.Inventory()
	if len(inv) != 0 {
		t.Fatalf("inventory before publish: %v", inv)
	}
	if err := r.Publish(st, Marker{Origin: "s3://b/resnet/3/", Files: []source.File{{Path: "model.onnx", Size: 5}}}); err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(r.Root, "resnet", "3")
	if b, _ := os.ReadFile(filepath.Join(vdir, "model.onnx")); string(b) != "bytes" {
		t.Errorf("published file %q", b)
	}
	if _, err := os.Stat(filepath.Join(vdir, ".journal")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a resume journal was published")
	}
	if _, err := os.Stat(filepath.Dir(st.ModelDir)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the stage is left over")
	}
	mk, err := r.Marker("resnet", 3)
	if err != nil || mk == nil || mk.Digest != "sha256:abcdef0123456789abcdef" || mk.Origin != "s3://b/resnet/3/" {
		t.Fatalf("marker %+v %v", mk, err)
	}
	changed, err := r.WriteConfig("resnet", []byte("name: \"resnet\"\n"))
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if changed, _ := r.WriteConfig("resnet", []byte("name: \"resnet\"\n")); changed {
		t.Error("the same config was rewritten")
	}
	os.MkdirAll(filepath.Join(r.Root, "resnet", "7"), 0o755) // a version not ours
	inv, err = r.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	m := inv["resnet"]
	if m == nil || !m.HasConfig || len(m.Versions) != 2 || m.Versions[0].Marker == nil || m.Versions[1].Marker != nil {
		t.Fatalf("inventory %+v", m)
	}
	if err := r.RemoveVersion("resnet", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(vdir); !errors.Is(err, os.ErrNotExist) {
		t.Error("removed version still there")
	}
	if err := r.RemoveModel("resnet"); err != nil {
		t.Fatal(err)
	}
	// Version 7 is not ours: it stays, and so does the directory.
	if inv, _ := r.Inventory(); len(inv) != 1 || inv["resnet"].HasConfig || len(inv["resnet"].Versions) != 1 || inv["resnet"].Versions[0].Number != 7 {
		t.Errorf("after RemoveModel: %+v", inv["resnet"])
	}
	os.Remove(filepath.Join(r.Root, "resnet", "7"))
	if err := r.RemoveModel("resnet"); err != nil {
		t.Fatal(err)
	}
	if inv, _ := r.Inventory(); len(inv) != 0 {
		t.Errorf("after RemoveModel: %v", inv)
	}
}

func TestRepublishReplaces(t *testing.T) {
	r := open(t)
	for _, content := range []string{"one", "two"} {
		st, _ := r.Stage("m", 1, "sha256:"+content)
		stageFiles(t, st, map[string]string{"model.onnx": content})
		if err := r.Publish(st, Marker{}); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(r.Root, "m", "1", "model.onnx")); string(b) != "two" {
		t.Errorf("got %q", b)
	}
}

func TestStageResumesInPlace(t *testing.T) {
	r := open(t)
	a, _ := r.Stage("m", 2, "sha256:1111")
	stageFiles(t, a, map[string]string{"part": "half"})
	b, _ := r.Stage("m", 2, "sha256:1111")
	if a.VersionDir != b.VersionDir {
		t.Fatal("the same version and digest got another stage")
	}
	if _, err := os.Stat(filepath.Join(b.VersionDir, "part")); err != nil {
		t.Error("the partial download is gone")
	}
	c, _ := r.Stage("m", 2, "sha256:2222")
	if c.VersionDir == a.VersionDir {
		t.Error("another digest shares the stage")
	}
	stages, _ := r.Stages()
	if len(stages) != 2 {
		t.Errorf("stages %v", stages)
	}
	r.Discard(a)
	if stages, _ := r.Stages(); len(stages) != 1 {
		t.Errorf("after discard %v", stages)
	}
}

func TestOpenChecks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "models")
	if _, err := Open(root, filepath.Join(root, ".staging")); err == nil || !strings.Contains(err.Error(), "inside the repository") {
		t.Errorf("staging inside root: %v", err)
	}
	r, err := Open(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Staging != filepath.Join(base, ".models-staging") {
		t.Errorf("default staging %s", r.Staging)
	}
	// A second syncer on the same volume is refused.
	if _, err := Open(root, ""); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Errorf("second open: %v", err)
	}
	r.Close()
	r2, err := Open(root, "")
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	r2.Close()
}

func TestCleanupAtStart(t *testing.T) {
	base := t.TempDir()
	root, staging := filepath.Join(base, "models"), filepath.Join(base, "st")
	r, _ := Open(root, staging)
	os.MkdirAll(filepath.Join(root, "m"), 0o755)
	os.WriteFile(filepath.Join(root, "m", ".config.pbtxt.123"), []byte("half"), 0o644)
	os.MkdirAll(filepath.Join(staging, "trash", "m.1.abc"), 0o755)
	st, _ := r.Stage("m", 1, "sha256:aa")
	stageFiles(t, st, map[string]string{"part": "kept"})
	r.Close()
	r, err := Open(root, staging)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ents, _ := os.ReadDir(filepath.Join(staging, "trash")); len(ents) != 0 {
		t.Error("trash not emptied")
	}
	if _, err := os.Stat(filepath.Join(root, "m", ".config.pbtxt.123")); !errors.Is(err, os.ErrNotExist) {
		t.Error("temporary config left")
	}
	if _, err := os.Stat(filepath.Join(st.VersionDir, "part")); err != nil {
		t.Error("partial download removed: it should be resumed")
	}
}
