// Regression tests from a review of the syncer: the comment on each test
// describes the bug it caught; the test checks the behaviour since.

package catalog

import (
	"strings"
	"testing"
)

// s3:// sources were only checked at run time, per model: the catalog
// accepted ".." elements, empty elements and invalid bucket names.
func TestS3SourcesCheckedByTheCatalog(t *testing.T) {
	for src, want := range map[string]string{
		"s3://models/a/../b/": `has a ".." element`,
		"s3://models//x/":     "empty element",
		"s3://ab/x/":          "3 to 63 characters",
		"s3://bad_bucket-/x/": "start and end with a letter or digit",
	} {
		_, err := Parse("c.yaml", []byte("models:\n  - {name: a, source: \""+src+"\", pools: [cpu]}\n"))
		if err == nil || !strings.Contains(err.Error(), "c.yaml:2:") || !strings.Contains(err.Error(), want) {
			t.Errorf("source %q: %v, want a located error saying %q", src, err, want)
		}
	}
}
