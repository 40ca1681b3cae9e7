package s3

import (
	"github.com/tritongate/tritongate/internal/source"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		uri, bucket, prefix, err string
	}{
		{uri: "s3://models/resnet/", bucket: "models", prefix: "resnet/"},
		{uri: "s3://models/resnet", bucket: "models", prefix: "resnet/"},
		{uri: "s3://models/team/a/resnet50/", bucket: "models", prefix: "team/a/resnet50/"},
		{uri: "s3://models", bucket: "models", prefix: ""},
		{uri: "s3://models/", bucket: "models", prefix: ""},
		{uri: "s3://my.bucket-1/x", bucket: "my.bucket-1", prefix: "x/"},
		{uri: "s3://Legacy_Bucket/x", bucket: "Legacy_Bucket", prefix: "x/"},
		{uri: "https://models/resnet", err: "want s3://bucket/prefix/"},
		{uri: "S3://models/resnet", err: "want s3://bucket/prefix/"},
		{uri: "", err: "want s3://bucket/prefix/"},
		{uri: "s3://", err: "no bucket name"},
		{uri: "s3:///resnet", err: "no bucket name"},
		{uri: "s3://ab/x", err: "3 to 63"},
		{uri: "s3://" + strings.Repeat("a", 64) + "/x", err: "3 to 63"},
		{uri: "s3://bad~name/x", err: "not allowed"},
		{uri: "s3://-models/x", err: "start and end"},
		{uri: "s3://models//x", err: "empty element"},
		{uri: "s3://models/a//b/", err: "empty element"},
		{uri: "s3://models/a/../b", err: `".." element`},
		{uri: "s3://models/./b", err: `"." element`},
		{uri: "s3://models/a\x00b", err: "control character"},
		{uri: "s3://models/\xff", err: "UTF-8"},
		{uri: "s3://models/" + strings.Repeat("a", 1025), err: "1024"},
	} {
		b, p, err := ParseURI(tc.uri)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURI(%q) = %q, %q, %v; want an error containing %q", tc.uri, b, p, err, tc.err)
			}
			continue
		}
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURI(%q) = %q, %q, %v; want %q, %q", tc.uri, b, p, err, tc.bucket, tc.prefix)
		}
	}
}

func TestParseLoc(t *testing.T) {
	for loc, ok := range map[string]bool{
		"s3://models/resnet/1/model.onnx": true, "s3://models/k": true,
		"s3://models/": false, "s3://models": false, "s3://models/dir/": false, "http://models/k": false, "s3://m/k": false,
	} {
		if _, _, err := parseLoc(loc); (err == nil) != ok {
			t.Errorf("parseLoc(%q) = %v, want ok=%v", loc, err, ok)
		}
	}
}

func TestEtagMD5(t *testing.T) {
	for etag, want := range map[string]string{
		`"9e107d9d372bb6826bd81d3542a419d6"`:   "9e107d9d372bb6826bd81d3542a419d6",
		`"9E107D9D372BB6826BD81D3542A419D6"`:   "9e107d9d372bb6826bd81d3542a419d6",
		"9e107d9d372bb6826bd81d3542a419d6":     "9e107d9d372bb6826bd81d3542a419d6",
		`"9e107d9d372bb6826bd81d3542a419d6-3"`: "",
		`"abc"`:                                "",
		"":                                     "",
		`"zz107d9d372bb6826bd81d3542a419d6"`:   "",
	} {
		if got := etagMD5(etag); got != want {
			t.Errorf("etagMD5(%s) = %q, want %q", etag, got, want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	for s, want := range map[string][3]int64{
		"bytes 0-9/10": {0, 9, 10}, "bytes 5-5/6": {5, 5, 6},
		"bytes 0-9/9": {-1}, "bytes 9-0/10": {-1}, "bytes */10": {-1}, "": {-1}, "bytes 0-9": {-1}, "items 0-9/10": {-1},
	} {
		a, b, c, ok := parseContentRange(s)
		if ok != (want[0] >= 0) || ok && (a != want[0] || b != want[1] || c != want[2]) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v, want %v", s, a, b, c, ok, want)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"s3://models/resnet/", "s3://models", "s3://a/b//c", "s3://models/../x", "s3://m\x00/x", "http://x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		b, p, err := ParseURI(uri)
		if err != nil {
			return
		}
		if source.CheckS3Bucket(b) != nil {
			t.Fatalf("ParseURI(%q) accepted bucket %q", uri, b)
		}
		if p != "" && !strings.HasSuffix(p, "/") {
			t.Fatalf("ParseURI(%q): prefix %q does not end with /", uri, p)
		}
		for _, e := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
			if p != "" && (e == "" || e == "." || e == "..") {
				t.Fatalf("ParseURI(%q): prefix %q has element %q", uri, p, e)
			}
		}
		// Normalised: parsing the canonical form gives the same result.
		b2, p2, err := ParseURI("s3://" + b + "/" + p)
		if err != nil || b2 != b || p2 != p {
			t.Fatalf("ParseURI is not stable on %q: %q %q %v", uri, b2, p2, err)
		}
	})
}
