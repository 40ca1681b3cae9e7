// Regression tests from a review of the syncer: the comment on each test
// describes the bug it caught; the test checks the behaviour since.

package modelrepo

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/catalog"
)

// The lock lives in the staging directory: two syncers given different
// --staging on one repository both get it.
func TestLockIsPerRepository(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "models")
	a, err := Open(root, filepath.Join(base, "stage-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(root, filepath.Join(base, "stage-b"))
	if err == nil {
		defer b.Close()
		t.Errorf("two syncers hold %s at once (staging stage-a and stage-b)", root)
	}
}

// The "inside the repository" check is lexical on a ".." prefix: a staging
// directory named "..staging" inside the root is taken as outside.
func TestStagingInsideRootRefused(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "models")
	r, err := Open(root, filepath.Join(root, "..staging"))
	if err == nil {
		r.Close()
		t.Errorf("staging %s inside the repository accepted", filepath.Join(root, "..staging"))
	}
}

// The catalog refuses names the staging and trash names would push over
// NAME_MAX; the longest it accepts can be staged, published and removed.
func TestLongModelNames(t *testing.T) {
	if _, err := catalog.Parse("c.yaml", []byte("models:\n  - {name: "+strings.Repeat("m", catalog.MaxModelName+1)+", source: s3://b/p/, pools: [cpu]}\n")); err == nil {
		t.Errorf("the catalog accepts a %d-byte name", catalog.MaxModelName+1)
	}
	name := strings.Repeat("m", catalog.MaxModelName)
	base := t.TempDir()
	r, err := Open(filepath.Join(base, "models"), filepath.Join(base, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := r.Stage(name, 1, "sha256:0123456789abcdef0123456789")
	if err != nil {
		t.Fatalf("a valid catalog name cannot be staged: %v", err)
	}
	if err := r.Publish(st, Marker{}); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveVersion(name, 1); err != nil {
		t.Error(err)
	}
	if err := r.RemoveModel(name); err != nil {
		t.Error(err)
	}
}
