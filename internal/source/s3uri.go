package source

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// S3 URIs are checked here, in the contract package, so that the catalog
// can refuse a bad s3:// source before anything runs.

// ParseS3URI reads an s3:// prefix URI, "s3://bucket/models/resnet/", into
// its bucket and key prefix. The prefix is normalised to end with "/" (or to
// be empty for the whole bucket), so "s3://b/models/resnet" is the same
// model as "s3://b/models/resnet/". Empty, "." and ".." elements are refused.
func ParseS3URI(uri string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", fmt.Errorf("s3 URI %q: want s3://bucket/prefix/", uri)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if err := CheckS3Bucket(bucket); err != nil {
		return "", "", fmt.Errorf("s3 URI %q: %v", uri, err)
	}
	if prefix == "" {
		return bucket, "", nil
	}
	if err := CheckS3Key(prefix); err != nil {
		return "", "", fmt.Errorf("s3 URI %q: prefix: %v", uri, err)
	}
	for _, e := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		switch e {
		case "":
			return "", "", fmt.Errorf("s3 URI %q: prefix %q has an empty element (\"//\" or a leading \"/\")", uri, prefix)
		case ".", "..":
			return "", "", fmt.Errorf("s3 URI %q: prefix %q has a %q element", uri, prefix, e)
		}
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return bucket, prefix, nil
}

// CheckS3Bucket accepts S3 bucket names (3 to 63 letters, digits, '.', '-',
// starting and ending with a letter or digit); uppercase letters and '_' are
// let through for legacy buckets and S3-compatible servers.
func CheckS3Bucket(b string) error {
	if b == "" {
		return fmt.Errorf("no bucket name")
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q: must be 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '-' && c != '_' {
			return fmt.Errorf("bucket name %q: character %q not allowed (letters, digits, '.', '-')", b, c)
		}
		if !alnum && (i == 0 || i == len(b)-1) {
			return fmt.Errorf("bucket name %q: must start and end with a letter or digit", b)
		}
	}
	return nil
}

// CheckS3Key refuses keys S3 would refuse or that could not be what the
// user meant: invalid UTF-8, control characters, more than 1024 bytes.
func CheckS3Key(k string) error {
	if len(k) > 1024 {
		return fmt.Errorf("longer than S3's 1024 bytes")
	}
	if !utf8.ValidString(k) {
		return fmt.Errorf("%q is not valid UTF-8", k)
	}
	for _, r := range k {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", k)
		}
	}
	return nil
}
