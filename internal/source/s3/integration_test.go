package s3

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tritongate/tritongate/internal/source"
)

// TestServer runs against a real S3 or S3-compatible server when
// TRITONGATE_S3_TEST_URI names a writable prefix (s3://bucket/prefix/), with
// the endpoint, region and credentials from the environment
// (AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID...) and path-style
// addressing if TRITONGATE_S3_TEST_PATH_STYLE=1. For example, with versitygw:
//
//	versitygw --access A --secret S --port 127.0.0.1:7070 posix /tmp/vgw &
//	AWS_ACCESS_KEY_ID=A AWS_SECRET_ACCESS_KEY=S AWS_REGION=us-east-1 \
//	AWS_ENDPOINT_URL_S3=http://127.0.0.1:7070 TRITONGATE_S3_TEST_PATH_STYLE=1 \
//	TRITONGATE_S3_TEST_URI=s3://models/it/ go test -run TestServer ./internal/source/s3/
//
// It uploads a version with a multipart object (a "-N" ETag: verified by
// size) and a single-part one (MD5 ETag), describes and fetches it, then
// adds a manifest and does it again, interrupting and resuming the fetch.
func TestServer(t *testing.T) {
	uri := os.Getenv("TRITONGATE_S3_TEST_URI")
	if uri == "" {
		t.Skip("TRITONGATE_S3_TEST_URI not set")
	}
	ctx := context.Background()
	bucket, prefix, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(ctx, ClientOptions{PathStyle: os.Getenv("TRITONGATE_S3_TEST_PATH_STYLE") == "1"})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"model.onnx": randBytes(23*MiB+5, 1), "config.pbtxt": []byte("name: \"m\"\n")}
	vprefix := prefix + "7/"
	putMultipart(t, c, bucket, vprefix+"model.onnx", files["model.onnx"], 5*MiB)
	put := func(key string, b []byte) {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	put(vprefix+"config.pbtxt", files["config.pbtxt"])
	t.Cleanup(func() {
		for _, k := range []string{"model.onnx", "config.pbtxt", source.ManifestFile} {
			c.DeleteObject(context.Background(), &awss3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(vprefix + k)})
		}
	})

	st := NewStore(Options{Client: c, PartSize: 4 * MiB, Concurrency: 4})
	m, err := st.Model(uri)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := m.List(ctx)
	if err != nil || !containsVersion(vs, 7) {
		t.Fatalf("List = %v, %v; want 7 among them", vs, err)
	}
	v, err := m.Describe(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range v.Files {
		t.Logf("%s: %d bytes, md5 %q, sha256 %q", f.Path, f.Size, f.MD5, f.SHA256)
	}
	dir := t.TempDir()
	if err := m.Fetch(ctx, v, dir, nil); err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, files)

	// With a manifest: SHA-256 for both; interrupted, then resumed.
	var mf bytes.Buffer
	mf.WriteString(`{"files":[`)
	mf.WriteString(`{"path":"config.pbtxt","size":10,"sha256":"` + sha(files["config.pbtxt"]) + `"},`)
	mf.WriteString(`{"path":"model.onnx","size":24117253,"sha256":"` + sha(files["model.onnx"]) + `"}]}`)
	put(vprefix+source.ManifestFile, mf.Bytes())
	v, err = m.Describe(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	interrupt(t, st, v.Files, dir, 10*MiB)
	if err := m.Fetch(ctx, v, dir, nil); err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, files)

	// Errors from the real server.
	m2, _ := st.Model("s3://" + bucket + "/" + prefix + "nosuchmodel/")
	if _, err := m2.Describe(ctx, 1); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Describe of a missing version: %v", err)
	}
	gone := []source.File{{Path: "x", Size: 1, Loc: "s3://" + bucket + "/" + prefix + "nosuchkey"}}
	if err := st.FetchFiles(ctx, gone, t.TempDir(), nil); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("fetching a missing object: %v", err)
	}
}

func containsVersion(vs []int64, n int64) bool {
	for _, v := range vs {
		if v == n {
			return true
		}
	}
	return false
}

func putMultipart(t *testing.T, c *awss3.Client, bucket, key string, data []byte, partSize int) {
	t.Helper()
	ctx := context.Background()
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, off := int32(1), 0; off < len(data); i, off = i+1, off+partSize {
		end := min(off+partSize, len(data))
		out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId,
			PartNumber: aws.Int32(i), Body: bytes.NewReader(data[off:end])})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(i)})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	if h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &bucket, Key: &key}); err == nil && !strings.Contains(aws.ToString(h.ETag), "-") {
		t.Logf("note: the server gives multipart object %s a plain ETag %s", key, aws.ToString(h.ETag))
	}
}
