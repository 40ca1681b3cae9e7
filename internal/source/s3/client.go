package s3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Region of the bucket. Empty: from the environment (AWS_REGION, the
	// shared config); when that is empty too and an endpoint is set (an
	// S3-compatible server), "us-east-1".
	Region string
	// Endpoint is the base URL of an S3-compatible server
	// ("http://versitygw:7070"). Empty: AWS S3, or AWS_ENDPOINT_URL_S3 /
	// AWS_ENDPOINT_URL when set (the SDK reads them).
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket/key rather than
	// bucket.endpoint/key: needed by most S3-compatible servers.
	PathStyle bool
	// MaxConns is how many connections to the endpoint are kept open for
	// reuse (default 64). Keep it at least the Store's Concurrency, or
	// parallel GETs keep opening new connections (and TLS handshakes).
	MaxConns int
	// Credentials overrides the SDK's default chain (environment, shared
	// files, web identity / IRSA on EKS, ECS and EC2 roles). Nil: the default
	// chain. aws.AnonymousCredentials{} reads public buckets.
	Credentials aws.CredentialsProvider
	// InsecureTLS skips verification of the endpoint's certificate (MLflow's
	// MLFLOW_S3_IGNORE_TLS).
	InsecureTLS bool
}

// NewClient builds an S3 client with the SDK's default configuration chain
// (so IRSA works on EKS) and an HTTP transport tuned for many parallel GETs
// to one endpoint: enough idle connections per host to reuse one per worker,
// larger socket buffers, HTTP/1.1 only (S3 throughput comes from parallel
// connections; HTTP/2 would multiplex every GET onto one connection and one
// flow-control window), no transparent decompression. Response checksum
// validation by the SDK is off (WhenRequired): the Store verifies whole
// files itself, and ranged GETs cannot be checked against whole-object
// checksums anyway.
func NewClient(ctx context.Context, o ClientOptions) (*awss3.Client, error) {
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 endpoint %q: want an http:// or https:// URL such as http://versitygw:7070", o.Endpoint)
		}
	}
	maxConns := o.MaxConns
	if maxConns <= 0 {
		maxConns = 64
	}
	hc := awshttp.NewBuildableClient().
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = 2 * maxConns
			tr.MaxIdleConnsPerHost = maxConns
			tr.IdleConnTimeout = 90 * time.Second
			tr.ReadBufferSize = 256 << 10
			tr.WriteBufferSize = 64 << 10
			tr.DisableCompression = true
			tr.ForceAttemptHTTP2 = false
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			if o.InsecureTLS {
				if tr.TLSClientConfig == nil {
					tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
				}
				tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // explicit MLFLOW_S3_IGNORE_TLS
			}
			tr.ExpectContinueTimeout = time.Second
		}).
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = 10 * time.Second
			d.KeepAlive = 30 * time.Second
		})
	lo := []func(*config.LoadOptions) error{config.WithHTTPClient(hc)}
	if o.Region != "" {
		lo = append(lo, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		lo = append(lo, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration (environment, shared config, credentials): %w", err)
	}
	if cfg.Region == "" {
		if o.Endpoint == "" && cfg.BaseEndpoint == nil && os.Getenv("AWS_ENDPOINT_URL_S3") == "" && os.Getenv("AWS_ENDPOINT_URL") == "" {
			return nil, errors.New("no AWS region: set the S3 region in the configuration or AWS_REGION")
		}
		cfg.Region = "us-east-1"
	}
	cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	return awss3.NewFromConfig(cfg, func(so *awss3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
	}), nil
}
