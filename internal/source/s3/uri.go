package s3

import (
	"fmt"
	"strings"

	"github.com/tritongate/tritongate/internal/source"
)

// ParseURI reads an s3:// prefix URI into its bucket and key prefix (see
// source.ParseS3URI).
func ParseURI(uri string) (bucket, prefix string, err error) { return source.ParseS3URI(uri) }

// parseLoc reads a file's Loc, "s3://bucket/key", as written by Describe.
func parseLoc(loc string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(loc, "s3://")
	if !ok {
		return "", "", fmt.Errorf("location %q: want s3://bucket/key", loc)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if err := source.CheckS3Bucket(bucket); err != nil {
		return "", "", fmt.Errorf("location %q: %v", loc, err)
	}
	if key == "" || strings.HasSuffix(key, "/") {
		return "", "", fmt.Errorf("location %q: no object key", loc)
	}
	if err := source.CheckS3Key(key); err != nil {
		return "", "", fmt.Errorf("location %q: %v", loc, err)
	}
	return bucket, key, nil
}
