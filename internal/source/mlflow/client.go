package mlflow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Defaults for the zero values of Options. The timeout is MLflow's own
// client's (MLFLOW_HTTP_REQUEST_TIMEOUT, 120 s).
const (
	DefaultRetries = 4
	DefaultTimeout = 120 * time.Second
	DefaultBackoff = 500 * time.Millisecond
	// DefaultDownloadRate is the slowest rate at which an artifacts proxy
	// is assumed to copy a file from its store before it answers (see
	// Options.DownloadRate).
	DefaultDownloadRate = 8 << 20
)

const (
	maxBackoff    = 15 * time.Second
	maxRetryAfter = 30 * time.Second
	maxJSONBody   = 64 << 20 // a search page of model versions, an artifact listing
	maxErrorBody  = 64 << 10
	userAgent     = "tritongate-mlflow"
)

// Options configure a Client. OptionsFromEnv fills them from MLflow's
// environment variables.
type Options struct {
	// BaseURL is the tracking server's http(s) URL, with its path prefix if
	// it has one ("https://mlflow.example.com", "https://host/mlflow").
	// REST calls go to BaseURL/api/2.0/mlflow/..., the artifacts proxy is
	// BaseURL/api/2.0/mlflow-artifacts/artifacts.
	BaseURL string
	// RegistryURL is the model registry's server when it is not the
	// tracking server (MLFLOW_REGISTRY_URI): registry calls (model
	// versions, aliases, search) go there; runs, logged models and the
	// artifacts proxy stay on BaseURL. Empty: BaseURL.
	RegistryURL string
	// Token is sent as "Authorization: Bearer" when Username and Password
	// are not set.
	Token string
	// Username and Password are sent as HTTP basic auth, which takes
	// precedence over Token (as in MLflow's own client).
	Username, Password string
	// HTTPClient sends the requests; nil builds one from InsecureTLS,
	// CAFile and ClientCertFile. Its Timeout should be zero: Timeout below
	// bounds attempts.
	HTTPClient *http.Client
	// InsecureTLS skips verification of the server's certificate. Only
	// with a nil HTTPClient.
	InsecureTLS bool
	// CAFile is a PEM bundle of CA certificates to verify the server with
	// instead of the system's. Only with a nil HTTPClient.
	CAFile string
	// ClientCertFile is a PEM file holding the client certificate and its
	// private key, for servers that ask for one (mutual TLS), as
	// MLFLOW_TRACKING_CLIENT_CERT_PATH is for MLflow's client. Only with a
	// nil HTTPClient.
	ClientCertFile string
	// Retries is how many times a request is sent again after a
	// connection error, a timeout, HTTP 408, 429 or a 5xx (except 501, 505
	// and the 503 of an endpoint the server has disabled), as MLflow's
	// client does. 0 means DefaultRetries; negative, never.
	Retries int
	// Timeout bounds each attempt of an API call; for artifact downloads,
	// the wait for each read of the body (an idle timeout, so large files
	// are not cut short). 0 means DefaultTimeout.
	Timeout time.Duration
	// DownloadRate (bytes per second) stretches the wait for a download's
	// response headers: an artifacts proxy in front of S3 or another store
	// copies the whole file to its own disk before it answers, so a file of
	// size N may take Timeout + N/DownloadRate to start. 0 means
	// DefaultDownloadRate.
	DownloadRate int64
	// Backoff is the wait before the first retry, doubled for each next
	// one (with jitter, at most 15 s), or what a 429/503's Retry-After asks
	// (at most 30 s). 0 means DefaultBackoff.
	Backoff time.Duration
	// SearchPageSize is max_results of a model version search page. 0
	// means 1000.
	SearchPageSize int
}

// OptionsFromEnv reads MLflow's client environment: MLFLOW_TRACKING_URI,
// MLFLOW_REGISTRY_URI, MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME,
// MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_INSECURE_TLS,
// MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_CLIENT_CERT_PATH,
// MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT
// (seconds). getenv is os.Getenv when nil. An unset MLFLOW_TRACKING_URI
// leaves BaseURL empty (the caller may have it from elsewhere, such as the
// catalog); New refuses an empty BaseURL.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	o := Options{
		BaseURL:        getenv("MLFLOW_TRACKING_URI"),
		RegistryURL:    getenv("MLFLOW_REGISTRY_URI"),
		Token:          getenv("MLFLOW_TRACKING_TOKEN"),
		Username:       getenv("MLFLOW_TRACKING_USERNAME"),
		Password:       getenv("MLFLOW_TRACKING_PASSWORD"),
		CAFile:         getenv("MLFLOW_TRACKING_SERVER_CERT_PATH"),
		ClientCertFile: getenv("MLFLOW_TRACKING_CLIENT_CERT_PATH"),
	}
	if v := getenv("MLFLOW_TRACKING_INSECURE_TLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Options{}, fmt.Errorf("mlflow: MLFLOW_TRACKING_INSECURE_TLS=%q: want true or false", v)
		}
		o.InsecureTLS = b
	}
	if v := getenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return Options{}, fmt.Errorf("mlflow: MLFLOW_HTTP_REQUEST_MAX_RETRIES=%q: want a number >= 0", v)
		}
		o.Retries = n
		if n == 0 {
			o.Retries = -1
		}
	}
	if v := getenv("MLFLOW_HTTP_REQUEST_TIMEOUT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return Options{}, fmt.Errorf("mlflow: MLFLOW_HTTP_REQUEST_TIMEOUT=%q: want a number of seconds > 0", v)
		}
		o.Timeout = time.Duration(n) * time.Second
	}
	return o, nil
}

// S3Settings are MLflow's own settings for artifacts it keeps in S3, which
// MLflow's client applies to s3:// artifact URIs (and so must the syncer):
// a MinIO- or versitygw-backed MLflow names its endpoint only here.
type S3Settings struct {
	// Endpoint is MLFLOW_S3_ENDPOINT_URL.
	Endpoint string
	// IgnoreTLS is MLFLOW_S3_IGNORE_TLS.
	IgnoreTLS bool
	// PathStyle is MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE=path, or the default
	// ("auto") with an Endpoint: boto3 addresses buckets by path on custom
	// endpoints, as S3-compatible servers need.
	PathStyle bool
}

// S3SettingsFromEnv reads MLFLOW_S3_ENDPOINT_URL, MLFLOW_S3_IGNORE_TLS and
// MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE (getenv is os.Getenv when nil).
func S3SettingsFromEnv(getenv func(string) string) (S3Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := S3Settings{Endpoint: strings.TrimSpace(getenv("MLFLOW_S3_ENDPOINT_URL"))}
	if v := getenv("MLFLOW_S3_IGNORE_TLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return S3Settings{}, fmt.Errorf("mlflow: MLFLOW_S3_IGNORE_TLS=%q: want true or false", v)
		}
		s.IgnoreTLS = b
	}
	switch style := strings.ToLower(getenv("MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE")); style {
	case "", "auto":
		s.PathStyle = s.Endpoint != ""
	case "path":
		s.PathStyle = true
	case "virtual":
	default:
		return S3Settings{}, fmt.Errorf("mlflow: MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE=%q: want auto, path or virtual", style)
	}
	return s, nil
}

// Client calls an MLflow tracking server's model registry REST API and its
// artifacts proxy. It is safe for concurrent use.
type Client struct {
	base, registry    *url.URL
	token, user, pass string
	hc                *http.Client
	retries           int
	timeout, backoff  time.Duration
	rate              int64
	pageSize          int
	unmarshal         protojson.UnmarshalOptions
}

// NewFromEnv is New(OptionsFromEnv(os.Getenv)).
func NewFromEnv() (*Client, error) {
	o, err := OptionsFromEnv(nil)
	if err != nil {
		return nil, err
	}
	return New(o)
}

// New checks the options and returns a client. It does not contact the
// server.
func New(o Options) (*Client, error) {
	if strings.TrimSpace(o.BaseURL) == "" {
		return nil, errors.New("mlflow: no tracking server: set mlflow.tracking_uri in the catalog or MLFLOW_TRACKING_URI (the http(s):// URL of the server)")
	}
	base, err := parseBaseURL(o.BaseURL)
	if err != nil {
		return nil, err
	}
	registry := base
	if o.RegistryURL != "" {
		if registry, err = parseBaseURL(o.RegistryURL); err != nil {
			return nil, fmt.Errorf("registry URI: %w", err)
		}
	}
	if (o.Username == "") != (o.Password == "") {
		return nil, errors.New("mlflow: set both the username and the password for basic auth (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD), or neither")
	}
	c := &Client{
		base:      base,
		registry:  registry,
		token:     o.Token,
		user:      o.Username,
		pass:      o.Password,
		hc:        o.HTTPClient,
		retries:   o.Retries,
		timeout:   o.Timeout,
		backoff:   o.Backoff,
		rate:      o.DownloadRate,
		pageSize:  o.SearchPageSize,
		unmarshal: protojson.UnmarshalOptions{DiscardUnknown: true},
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if c.rate <= 0 {
		c.rate = DefaultDownloadRate
	}
	if c.pageSize <= 0 {
		c.pageSize = searchPageSize
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureTLS} //nolint:gosec // explicit MLFLOW_TRACKING_INSECURE_TLS
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("mlflow: server CA certificates: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("mlflow: server CA certificates: no PEM certificate in %s", o.CAFile)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		if o.ClientCertFile != "" {
			pem, err := os.ReadFile(o.ClientCertFile)
			if err != nil {
				return nil, fmt.Errorf("mlflow: client certificate: %w", err)
			}
			cert, err := tls.X509KeyPair(pem, pem)
			if err != nil {
				return nil, fmt.Errorf("mlflow: client certificate %s: want one PEM file with the certificate and its private key: %w", o.ClientCertFile, err)
			}
			tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
		}
		c.hc = &http.Client{Transport: tr}
	} else if o.InsecureTLS || o.CAFile != "" || o.ClientCertFile != "" {
		return nil, errors.New("mlflow: InsecureTLS, CAFile and ClientCertFile configure the default HTTP client; with Options.HTTPClient, set them on its transport")
	}
	return c, nil
}

func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mlflow: tracking URI %q: want the http(s):// URL of an MLflow tracking server (local paths, databricks and database URIs are not supported)", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("mlflow: tracking URI %q: put credentials in MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD, not in the URL", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mlflow: tracking URI %q: no query or fragment allowed", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// BaseURL is the tracking server's URL.
func (c *Client) BaseURL() string { return c.base.String() }

// api is the URL of a tracking REST path under /api/2.0/ ("mlflow/runs/get").
func (c *Client) api(path string, q url.Values) *url.URL {
	u := c.base.JoinPath("api/2.0", path)
	u.RawQuery = q.Encode()
	return u
}

// registryAPI is the URL of a model registry REST path under /api/2.0/
// ("mlflow/model-versions/get"), on the registry server.
func (c *Client) registryAPI(path string, q url.Values) *url.URL {
	u := c.registry.JoinPath("api/2.0", path)
	u.RawQuery = q.Encode()
	return u
}

// getJSON sends a GET and decodes the JSON answer into resp, retrying
// transient failures. Each attempt, body included, is bounded by c.timeout.
func (c *Client) getJSON(ctx context.Context, op, subject string, u *url.URL, resp proto.Message) error {
	return c.retry(ctx, func() error {
		body, err := c.getBody(ctx, op, subject, u)
		if err != nil {
			return err
		}
		if err := c.unmarshal.Unmarshal(body, resp); err != nil {
			return permanent(fmt.Errorf("mlflow: %s (%s): response is not the expected JSON: %w", op, subject, err))
		}
		return nil
	})
}

// getBody makes one bounded attempt of a GET and returns its body.
func (c *Client) getBody(ctx context.Context, op, subject string, u *url.URL) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.send(actx, op, subject, u)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJSONBody+1))
	if err != nil {
		return nil, fmt.Errorf("mlflow: %s (%s): reading the response: %w", op, subject, err)
	}
	if len(body) > maxJSONBody {
		return nil, permanent(fmt.Errorf("mlflow: %s (%s): response larger than %d bytes", op, subject, maxJSONBody))
	}
	return body, nil
}

// send makes one GET and returns the response if its status is 2xx, else
// an *APIError built from the body. Credentials go only to the tracking
// server's origin.
func (c *Client) send(ctx context.Context, op, subject string, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, permanent(fmt.Errorf("mlflow: %s (%s): %w", op, subject, err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if sameOrigin(u, c.base) || sameOrigin(u, c.registry) {
		switch {
		case c.user != "":
			req.SetBasicAuth(c.user, c.pass)
		case c.token != "":
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mlflow: %s (%s): %w", op, subject, err)
	}
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		return res, nil
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	res.Body.Close()
	code, msg := parseErrorBody(body)
	if msg == "" {
		msg = http.StatusText(res.StatusCode)
	}
	return nil, &APIError{
		Op: op, Subject: subject, StatusCode: res.StatusCode, Code: code, Message: msg,
		retryAfter: parseRetryAfter(res.Header.Get("Retry-After")),
	}
}

// retry calls f until it succeeds, fails for good, the retries are spent
// or ctx ends.
func (c *Client) retry(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if attempt > c.retries || !retryable(ctx, err) {
			return gaveUp(err, attempt)
		}
		if sleep(ctx, c.wait(attempt, err)) != nil {
			return gaveUp(err, attempt)
		}
	}
}

func gaveUp(err error, attempts int) error {
	if attempts == 1 {
		return err
	}
	return fmt.Errorf("%w (gave up after %d attempts)", err, attempts)
}

func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var p *permanentError
	if errors.As(err, &p) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return true // connection errors, timeouts, truncated bodies
}

// wait is the pause before retry number attempt (1 = first retry).
func (c *Client) wait(attempt int, err error) time.Duration {
	d := c.backoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	d = d/2 + rand.N(d/2+1) // jitter
	var ae *APIError
	if errors.As(err, &ae) && ae.retryAfter > d {
		d = min(ae.retryAfter, maxRetryAfter)
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func parseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}

// permanentError marks a failure that sending the request again would not
// cure (a malformed answer, a digest mismatch).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(hostPort(a), hostPort(b))
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return u.Hostname() + ":443"
	case "http":
		return u.Hostname() + ":80"
	}
	return u.Host
}
