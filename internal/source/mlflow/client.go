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

// Defaults for the zero values of Options.
const (
	DefaultRetries = 4
	DefaultTimeout = 60 * time.Second
	DefaultBackoff = 500 * time.Millisecond
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
	// Token is sent as "Authorization: Bearer" when Username and Password
	// are not set.
	Token string
	// Username and Password are sent as HTTP basic auth, which takes
	// precedence over Token (as in MLflow's own client).
	Username, Password string
	// HTTPClient sends the requests; nil builds one from InsecureTLS and
	// CAFile. Its Timeout should be zero: Timeout below bounds attempts.
	HTTPClient *http.Client
	// InsecureTLS skips verification of the server's certificate. Only
	// with a nil HTTPClient.
	InsecureTLS bool
	// CAFile is a PEM bundle of CA certificates to verify the server with
	// instead of the system's. Only with a nil HTTPClient.
	CAFile string
	// Retries is how many times a request is sent again after a
	// connection error, a timeout, HTTP 429 or a 5xx (except 501). 0 means
	// DefaultRetries; negative, never.
	Retries int
	// Timeout bounds each attempt of an API call; for artifact downloads,
	// the wait for the response headers and then for each read of the body
	// (an idle timeout, so large files are not cut short). 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Backoff is the wait before the first retry, doubled for each next
	// one (with jitter, at most 15 s), or what a 429/503's Retry-After asks
	// (at most 30 s). 0 means DefaultBackoff.
	Backoff time.Duration
}

// OptionsFromEnv reads MLflow's client environment: MLFLOW_TRACKING_URI,
// MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME,
// MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_INSECURE_TLS,
// MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_HTTP_REQUEST_MAX_RETRIES and
// MLFLOW_HTTP_REQUEST_TIMEOUT (seconds). getenv is os.Getenv when nil.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	o := Options{
		BaseURL:  getenv("MLFLOW_TRACKING_URI"),
		Token:    getenv("MLFLOW_TRACKING_TOKEN"),
		Username: getenv("MLFLOW_TRACKING_USERNAME"),
		Password: getenv("MLFLOW_TRACKING_PASSWORD"),
		CAFile:   getenv("MLFLOW_TRACKING_SERVER_CERT_PATH"),
	}
	if o.BaseURL == "" {
		return Options{}, errors.New("mlflow: MLFLOW_TRACKING_URI is not set (the http(s):// URL of the tracking server)")
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

// Client calls an MLflow tracking server's model registry REST API and its
// artifacts proxy. It is safe for concurrent use.
type Client struct {
	base              *url.URL
	token, user, pass string
	hc                *http.Client
	retries           int
	timeout, backoff  time.Duration
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
	base, err := parseBaseURL(o.BaseURL)
	if err != nil {
		return nil, err
	}
	if (o.Username == "") != (o.Password == "") {
		return nil, errors.New("mlflow: set both the username and the password for basic auth (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD), or neither")
	}
	c := &Client{
		base:      base,
		token:     o.Token,
		user:      o.Username,
		pass:      o.Password,
		hc:        o.HTTPClient,
		retries:   o.Retries,
		timeout:   o.Timeout,
		backoff:   o.Backoff,
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
		c.hc = &http.Client{Transport: tr}
	} else if o.InsecureTLS || o.CAFile != "" {
		return nil, errors.New("mlflow: InsecureTLS and CAFile configure the default HTTP client; with Options.HTTPClient, set them on its transport")
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

// api is the URL of a REST path under /api/2.0/ ("mlflow/model-versions/get").
func (c *Client) api(path string, q url.Values) *url.URL {
	u := c.base.JoinPath("api/2.0", path)
	u.RawQuery = q.Encode()
	return u
}

// getJSON sends a GET and decodes the JSON answer into resp, retrying
// transient failures. Each attempt, body included, is bounded by c.timeout.
func (c *Client) getJSON(ctx context.Context, op, subject string, u *url.URL, resp proto.Message) error {
	return c.retry(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		res, err := c.send(actx, op, subject, u)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(io.LimitReader(res.Body, maxJSONBody+1))
		if err != nil {
			return fmt.Errorf("mlflow: %s (%s): reading the response: %w", op, subject, err)
		}
		if len(body) > maxJSONBody {
			return permanent(fmt.Errorf("mlflow: %s (%s): response larger than %d bytes", op, subject, maxJSONBody))
		}
		if err := c.unmarshal.Unmarshal(body, resp); err != nil {
			return permanent(fmt.Errorf("mlflow: %s (%s): response is not the expected JSON: %w", op, subject, err))
		}
		return nil
	})
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
	if sameOrigin(u, c.base) {
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
