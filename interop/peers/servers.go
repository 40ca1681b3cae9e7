package peers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	s3src "github.com/tritongate/tritongate/internal/source/s3"
)

// S3 is a versitygw server (posix backend) on loopback.
type S3 struct {
	Endpoint          string // http://127.0.0.1:port
	AccessKey, Secret string
	Region            string
	Dir               string // the posix backend's root
	Proc              *Proc
	Client            *awss3.Client
}

// StartS3 starts versitygw on a temporary directory.
func (e *Env) StartS3(t testing.TB) *S3 {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		if b := filepath.Join(os.Getenv("HOME"), "go", "bin", "versitygw"); fileExists(b) {
			bin = b
		} else {
			t.Fatal("interop: versitygw not found on PATH: run interop/setup.sh")
		}
	}
	s := &S3{AccessKey: "tritongate", Secret: "tritongate-secret", Region: "us-east-1", Dir: t.TempDir()}
	port := FreePort(t)
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.Proc = e.Start(t, "versitygw", nil, "", bin, "--access", s.AccessKey, "--secret", s.Secret,
		"--port", Addr(port), "--region", s.Region, "posix", s.Dir)
	WaitTCP(t, s.Proc, Addr(port), 30*time.Second)
	c, err := s3src.NewClient(context.Background(), s3src.ClientOptions{Endpoint: s.Endpoint, Region: s.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.Secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	s.Client = c
	return s
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Env is the AWS environment a client of this server needs (keys, region,
// endpoint for tools reading AWS_ENDPOINT_URL).
func (s *S3) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.Secret,
		"AWS_REGION=" + s.Region, "AWS_DEFAULT_REGION=" + s.Region}
}

// MakeBucket creates a bucket.
func (s *S3) MakeBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client.CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
}

// Put writes one object.
func (s *S3) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if _, err := s.Client.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("putting s3://%s/%s: %v", bucket, key, err)
	}
}

// MLflowOptions choose how a tracking server stores artifacts.
type MLflowOptions struct {
	// S3 holds the artifacts; nil: on the server's local disk.
	S3 *S3
	// Bucket on S3 (created if missing).
	Bucket string
	// Direct makes the server hand out s3:// artifact URIs
	// (--no-serve-artifacts --default-artifact-root s3://bucket/); otherwise
	// it proxies them (--serve-artifacts --artifacts-destination
	// s3://bucket/, clients see mlflow-artifacts:/ URIs).
	Direct bool
	// BasicAuth runs the server with --app-name basic-auth; the admin's
	// password is AdminPassword.
	BasicAuth bool
	// Dir is the server's working directory (its SQLite store): another
	// server's, to restart it with other options. Empty: a new one.
	Dir string
}

// AdminPassword is the basic-auth admin's password.
const AdminPassword = "tritongate-admin-pw"

// MLflow is a tracking server on loopback.
type MLflow struct {
	URL  string
	Dir  string // the server's working directory (mlflow.db)
	Proc *Proc
	// Env is what a client (a script, the syncer) needs besides the
	// tracking URI: the S3 keys and endpoint when the artifacts are in S3.
	Env  []string
	opts MLflowOptions
}

// StartMLflow starts `mlflow server` with a SQLite store and waits for
// /health.
func (e *Env) StartMLflow(t testing.TB, o MLflowOptions) *MLflow {
	t.Helper()
	m := &MLflow{Dir: o.Dir, opts: o}
	if m.Dir == "" {
		m.Dir = t.TempDir()
	}
	port := FreePort(t)
	m.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"server", "--backend-store-uri", "sqlite:///" + filepath.Join(m.Dir, "mlflow.db"),
		"--host", "127.0.0.1", "--port", fmt.Sprint(port), "--workers", "1"}
	env := e.BaseEnv()
	if o.S3 != nil {
		if o.Bucket == "" {
			o.Bucket = "mlflow"
		}
		if _, err := o.S3.Client.HeadBucket(context.Background(), &awss3.HeadBucketInput{Bucket: aws.String(o.Bucket)}); err != nil {
			o.S3.MakeBucket(t, o.Bucket)
		}
		m.Env = append(o.S3.Env(), "MLFLOW_S3_ENDPOINT_URL="+o.S3.Endpoint)
		env = append(env, m.Env...)
		if o.Direct {
			args = append(args, "--no-serve-artifacts", "--default-artifact-root", "s3://"+o.Bucket+"/direct")
		} else {
			args = append(args, "--serve-artifacts", "--artifacts-destination", "s3://"+o.Bucket+"/proxied")
		}
	} else {
		args = append(args, "--serve-artifacts", "--artifacts-destination", filepath.Join(m.Dir, "artifacts"))
	}
	if o.BasicAuth {
		ini := filepath.Join(m.Dir, "basic_auth.ini")
		conf := strings.Join([]string{"[mlflow]", "default_permission = NO_PERMISSIONS",
			"database_uri = sqlite:///" + filepath.Join(m.Dir, "basic_auth.db"),
			"admin_username = admin", "admin_password = " + AdminPassword,
			"authorization_function = mlflow.server.auth:authenticate_request_basic_auth", ""}, "\n")
		if err := os.WriteFile(ini, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--app-name", "basic-auth")
		env = append(env, "MLFLOW_AUTH_CONFIG_PATH="+ini, "MLFLOW_FLASK_SERVER_SECRET_KEY=tritongate-interop")
	}
	m.Proc = e.Start(t, "mlflow", env, m.Dir, e.Tool("mlflow"), args...)
	WaitHTTP(t, m.Proc, m.URL+"/health", 90*time.Second)
	return m
}

// ClientEnv is the environment of an MLflow client of this server (a
// script): BaseEnv, the tracking URI and the S3 settings.
func (e *Env) ClientEnv(m *MLflow, extra ...string) []string {
	env := append(e.BaseEnv(), "MLFLOW_TRACKING_URI="+m.URL)
	env = append(env, m.Env...)
	return append(env, extra...)
}
