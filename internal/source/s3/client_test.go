package s3

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestNewClient(t *testing.T) {
	// No shared config or credentials from the machine running the tests.
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	ctx := context.Background()

	for _, ep := range []string{"versitygw:7070", "ftp://x", "http://"} {
		if _, err := NewClient(ctx, ClientOptions{Endpoint: ep}); err == nil || !strings.Contains(err.Error(), "http:// or https://") {
			t.Errorf("NewClient(Endpoint %q): %v, want a clear error", ep, err)
		}
	}
	if _, err := NewClient(ctx, ClientOptions{}); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("NewClient without a region or endpoint: %v, want a region error", err)
	}
	c, err := NewClient(ctx, ClientOptions{Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options().Region != "eu-west-1" || c.Options().ResponseChecksumValidation != aws.ResponseChecksumValidationWhenRequired {
		t.Errorf("options: region %q, response checksums %v", c.Options().Region, c.Options().ResponseChecksumValidation)
	}

	// The environment's endpoint (as the SDK reads it) and credentials.
	f := newFake(t)
	f.put(t, "m/1/model.onnx", []byte("x"))
	t.Setenv("AWS_ENDPOINT_URL_S3", f.srv.URL)
	c, err = NewClient(ctx, ClientOptions{PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewStore(Options{Client: c}).Model("s3://models/m/")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := m.List(ctx)
	if err != nil || !slices.Equal(vs, []int64{1}) {
		t.Errorf("List through AWS_ENDPOINT_URL_S3 = %v, %v", vs, err)
	}
}
