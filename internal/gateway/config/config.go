// Package config is the gateway's configuration: pools of Triton backends,
// routes from models to pools (with version splits, pins, sticky splits and
// shadow traffic), timeouts and the retry budget. It is YAML, documented in
// docs/gateway.md; Load validates it completely and names the offending field.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tritongate/tritongate/internal/catalog"
)

// Duration is a time.Duration written as "250ms", "2s".
type Duration struct{ time.Duration }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 250ms or 2s", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Config is the whole gateway configuration.
type Config struct {
	// Listen is the gRPC address (default ":8001"); MetricsListen serves
	// /metrics, /readyz and /livez (default ":8002", "none" to disable).
	Listen        string `json:"listen"`
	MetricsListen string `json:"metrics_listen"`
	// MaxMessageBytes caps request and response messages (default 64 MiB).
	MaxMessageBytes int `json:"max_message_bytes"`
	// DrainTimeout bounds how long SIGTERM waits for requests in flight;
	// DrainDelay is how long readiness reports false before the listener
	// stops (so load balancers stop sending first).
	DrainTimeout Duration `json:"drain_timeout"`
	DrainDelay   Duration `json:"drain_delay"`
	Defaults     Defaults `json:"defaults"`
	Pools        []Pool   `json:"pools"`
	Routes       []Route  `json:"routes"`
	Tracing      Tracing  `json:"tracing"`
	// Catalog is the catalog file the syncers read (docs/catalog.md), for
	// one source of truth: each of its models without a route here gets one
	// to the first of its pools. Relative paths are from the configuration
	// file's directory; a change to it reloads the gateway like a change to
	// the configuration.
	Catalog string `json:"catalog"`
}

// Defaults apply to every route unless it sets its own.
type Defaults struct {
	// Timeout bounds a request that carries no deadline of its own.
	Timeout Duration `json:"timeout"`
	// DeadlineMargin is kept back from the client's deadline for the
	// gateway's own work when calling a backend (default 2ms).
	DeadlineMargin Duration `json:"deadline_margin"`
	// NoBackendWait is how long a request that finds no backend able to
	// take it (all down, restarting, still connecting) waits for one,
	// within its deadline, before UNAVAILABLE (default 2s; negative: not
	// at all).
	NoBackendWait Duration `json:"no_backend_wait"`
	// PinHeader is the request header that pins a version (default x-model-version).
	PinHeader string `json:"pin_header"`
	Retry     Retry  `json:"retry"`
}

// Retry configures retries and their budget.
type Retry struct {
	// MaxAttempts counts the first try (default 2; 1 disables retries).
	MaxAttempts int `json:"max_attempts"`
	// BudgetRatio is the share of extra load retries may add (default 0.1).
	BudgetRatio float64 `json:"budget_ratio"`
	// MinPerSecond retries are always allowed, for low traffic (default 5).
	MinPerSecond float64 `json:"min_per_second"`
	// Backoff before a retry: jittered in [0, min(base*2^n, max)).
	BackoffBase Duration `json:"backoff_base"`
	BackoffMax  Duration `json:"backoff_max"`
}

// Pool is a set of Triton backends serving the same models.
type Pool struct {
	Name string `json:"name"`
	// Endpoints is a static list of host:port; DNS is "dns:///name:port",
	// re-resolved every Refresh (headless Services in Kubernetes).
	Endpoints []string `json:"endpoints"`
	DNS       string   `json:"dns"`
	Refresh   Duration `json:"refresh"`
	TLS       *TLS     `json:"tls"`
	Health    Health   `json:"health"`
	Breaker   Breaker  `json:"breaker"`
	Outlier   Outlier  `json:"outlier"`
	// PendingMetricsPort, when set, makes the picker add each backend's
	// nv_inference_pending_request_count (scraped from this port's /metrics)
	// to its in-flight count.
	PendingMetricsPort int `json:"pending_metrics_port"`
}

// TLS to a pool's backends.
type TLS struct {
	CA                 string `json:"ca"`
	ServerName         string `json:"server_name"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
	Cert               string `json:"cert"`
	Key                string `json:"key"`
}

// Health checking of each backend: ServerReady and which model versions are
// READY (RepositoryIndex).
type Health struct {
	Interval Duration `json:"interval"` // default 2s
	Timeout  Duration `json:"timeout"`  // default 1s
}

// Breaker is the circuit breaker of each backend (gobreaker).
type Breaker struct {
	// ConsecutiveFailures opens the circuit (default 5).
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
	// OpenFor is how long it stays open before half-open (default 10s).
	OpenFor Duration `json:"open_for"`
	// HalfOpenRequests are let through to probe (default 1).
	HalfOpenRequests uint32 `json:"half_open_requests"`
}

// Outlier ejection: a backend whose error rate over Interval is above
// ErrorRate (with at least MinRequests) is ejected for EjectionTime (longer
// each time), keeping at most MaxEjectedPercent of the pool out.
type Outlier struct {
	Interval          Duration `json:"interval"`            // default 10s
	ErrorRate         float64  `json:"error_rate"`          // default 0.5
	MinRequests       int      `json:"min_requests"`        // default 20
	EjectionTime      Duration `json:"ejection_time"`       // default 30s
	MaxEjectedPercent int      `json:"max_ejected_percent"` // default 50
}

// Route sends a model's requests to a pool.
type Route struct {
	Model string `json:"model"`
	Pool  string `json:"pool"`
	// Versions split traffic by weight; a version may live in another pool.
	// Empty: the backend's latest version.
	Versions []Split `json:"versions"`
	// PinHeader overrides the default pin header for this route.
	PinHeader string `json:"pin_header"`
	// StickyHeader: requests with the same value of this header always get
	// the same version of the split.
	StickyHeader string   `json:"sticky_header"`
	Shadow       *Shadow  `json:"shadow"`
	Timeout      Duration `json:"timeout"`
	// FromCatalog marks a route taken from the catalog.
	FromCatalog bool `json:"-"`
}

// Split is one version's share of a route.
type Split struct {
	Version string `json:"version"`
	Weight  int    `json:"weight"`
	Pool    string `json:"pool"` // default: the route's pool
}

// Shadow mirrors a sample of a route's requests to another version or pool
// and compares the answers; it never delays or fails the primary request.
type Shadow struct {
	Pool     string  `json:"pool"`    // default: the route's pool
	Model    string  `json:"model"`   // default: the route's model
	Version  string  `json:"version"` // default: latest
	Fraction float64 `json:"fraction"`
	// MaxConcurrency shadow calls at once (default 4); MaxBytes skips larger
	// requests (default 1 MiB). Beyond either, the copy is dropped.
	MaxConcurrency int `json:"max_concurrency"`
	MaxBytes       int `json:"max_bytes"`
	// Tolerances under which outputs count as matching.
	AbsTolerance float64 `json:"abs_tolerance"`
	RelTolerance float64 `json:"rel_tolerance"`
}

// Tracing sends OpenTelemetry spans. W3C trace context is propagated to
// backends whatever the exporter.
type Tracing struct {
	Exporter    string  `json:"exporter"` // none (default), otlp, stdout
	Endpoint    string  `json:"endpoint"` // OTLP gRPC endpoint
	SampleRatio float64 `json:"sample_ratio"`
	Insecure    bool    `json:"insecure"`
}

// Load reads and validates a configuration file, and the catalog it names.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if strings.Contains(c.Catalog, "://") {
		return nil, fmt.Errorf("%s: catalog %q: the gateway reads a catalog file (mount the ConfigMap the syncers read); s3:// catalogs are for the syncers", path, c.Catalog)
	}
	if c.Catalog != "" {
		if !filepath.IsAbs(c.Catalog) {
			c.Catalog = filepath.Join(filepath.Dir(path), c.Catalog)
		}
		data, err := os.ReadFile(c.Catalog)
		if err != nil {
			return nil, fmt.Errorf("%s: catalog: %w", path, err)
		}
		cat, err := catalog.Parse(c.Catalog, data)
		if err != nil {
			return nil, err // located in the catalog: file:line:col
		}
		if err := c.AddCatalogRoutes(cat); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := c.finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Parse parses YAML (or JSON), applies defaults and validates. A catalog
// is only read by Load (its path is relative to the file).
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, err
	}
	if c.Catalog != "" {
		return nil, errors.New("catalog: only read from a configuration file (Load)")
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) finish() error {
	c.applyDefaults()
	return c.Validate()
}

// AddCatalogRoutes gives every catalog model that has no route a route to
// the first of its pools (the gateway's routes are settings on top of the
// catalog). A pool the gateway does not know is an error naming the model.
func (c *Config) AddCatalogRoutes(cat *catalog.Catalog) error {
	have := map[string]bool{}
	for _, r := range c.Routes {
		have[r.Model] = true
	}
	pools := map[string]bool{}
	var names []string
	for _, p := range c.Pools {
		pools[p.Name] = true
		names = append(names, p.Name)
	}
	var errs []error
	for _, m := range cat.Models {
		if have[m.Name] || len(m.Pools) == 0 {
			continue
		}
		if !pools[m.Pools[0]] {
			errs = append(errs, fmt.Errorf("catalog %s: model %s: pool %q is not one of the gateway's pools (%s)", cat.Name, m.Name, m.Pools[0], strings.Join(names, ", ")))
			continue
		}
		c.Routes = append(c.Routes, Route{Model: m.Name, Pool: m.Pools[0], FromCatalog: true})
	}
	return errors.Join(errs...)
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = ":8001"
	}
	switch c.MetricsListen {
	case "":
		c.MetricsListen = ":8002"
	case "none":
		c.MetricsListen = ""
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 20
	}
	if c.DrainTimeout.Duration == 0 {
		c.DrainTimeout.Duration = 30 * time.Second
	}
	d := &c.Defaults
	if d.Timeout.Duration == 0 {
		d.Timeout.Duration = 30 * time.Second
	}
	if d.NoBackendWait.Duration == 0 {
		d.NoBackendWait.Duration = 2 * time.Second
	}
	if d.DeadlineMargin.Duration == 0 {
		d.DeadlineMargin.Duration = 2 * time.Millisecond
	}
	if d.PinHeader == "" {
		d.PinHeader = "x-model-version"
	}
	r := &d.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 2
	}
	if r.BudgetRatio == 0 {
		r.BudgetRatio = 0.1
	}
	if r.MinPerSecond == 0 {
		r.MinPerSecond = 5
	}
	if r.BackoffBase.Duration == 0 {
		r.BackoffBase.Duration = 5 * time.Millisecond
	}
	if r.BackoffMax.Duration == 0 {
		r.BackoffMax.Duration = 100 * time.Millisecond
	}
	for i := range c.Pools {
		p := &c.Pools[i]
		if p.Refresh.Duration == 0 {
			p.Refresh.Duration = 15 * time.Second
		}
		if p.Health.Interval.Duration == 0 {
			p.Health.Interval.Duration = 2 * time.Second
		}
		if p.Health.Timeout.Duration == 0 {
			p.Health.Timeout.Duration = time.Second
		}
		if p.Breaker.ConsecutiveFailures == 0 {
			p.Breaker.ConsecutiveFailures = 5
		}
		if p.Breaker.OpenFor.Duration == 0 {
			p.Breaker.OpenFor.Duration = 10 * time.Second
		}
		if p.Breaker.HalfOpenRequests == 0 {
			p.Breaker.HalfOpenRequests = 1
		}
		o := &p.Outlier
		if o.Interval.Duration == 0 {
			o.Interval.Duration = 10 * time.Second
		}
		if o.ErrorRate == 0 {
			o.ErrorRate = 0.5
		}
		if o.MinRequests == 0 {
			o.MinRequests = 20
		}
		if o.EjectionTime.Duration == 0 {
			o.EjectionTime.Duration = 30 * time.Second
		}
		if o.MaxEjectedPercent == 0 {
			o.MaxEjectedPercent = 50
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.PinHeader == "" {
			r.PinHeader = d.PinHeader
		}
		if r.Timeout.Duration == 0 {
			r.Timeout = d.Timeout
		}
		if s := r.Shadow; s != nil {
			if s.Pool == "" {
				s.Pool = r.Pool
			}
			if s.Model == "" {
				s.Model = r.Model
			}
			if s.MaxConcurrency == 0 {
				s.MaxConcurrency = 4
			}
			if s.MaxBytes == 0 {
				s.MaxBytes = 1 << 20
			}
		}
		for j := range r.Versions {
			if r.Versions[j].Pool == "" {
				r.Versions[j].Pool = r.Pool
			}
		}
	}
	if c.Tracing.Exporter == "" {
		c.Tracing.Exporter = "none"
	}
	if c.Tracing.SampleRatio == 0 {
		c.Tracing.SampleRatio = 1
	}
}

var (
	headerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-_.]*$`)
	modelName  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Validate checks the whole configuration; every problem names its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: want host:port", c.Listen)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			bad("metrics_listen %q: want host:port", c.MetricsListen)
		}
	}
	if c.MaxMessageBytes < 1024 {
		bad("max_message_bytes %d: must be at least 1024", c.MaxMessageBytes)
	}
	r := c.Defaults.Retry
	if r.MaxAttempts < 1 || r.MaxAttempts > 5 {
		bad("defaults.retry.max_attempts %d: must be between 1 and 5", r.MaxAttempts)
	}
	if r.BudgetRatio < 0 || r.BudgetRatio > 1 {
		bad("defaults.retry.budget_ratio %g: must be between 0 and 1", r.BudgetRatio)
	}
	if r.BackoffBase.Duration < 0 || r.BackoffMax.Duration < r.BackoffBase.Duration {
		bad("defaults.retry: backoff_max must be >= backoff_base >= 0")
	}
	if !headerName.MatchString(c.Defaults.PinHeader) {
		bad("defaults.pin_header %q: not a lower-case header name", c.Defaults.PinHeader)
	}
	pools := map[string]bool{}
	for i, p := range c.Pools {
		at := fmt.Sprintf("pools[%d] (%s)", i, p.Name)
		switch {
		case p.Name == "":
			bad("pools[%d].name: required", i)
		case pools[p.Name]:
			bad("%s: pool name %q used twice", at, p.Name)
		}
		pools[p.Name] = true
		switch {
		case len(p.Endpoints) == 0 && p.DNS == "":
			bad("%s: give endpoints or dns", at)
		case len(p.Endpoints) > 0 && p.DNS != "":
			bad("%s: give endpoints or dns, not both", at)
		}
		for j, e := range p.Endpoints {
			if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
				bad("%s.endpoints[%d] %q: want host:port", at, j, e)
			}
		}
		if p.DNS != "" {
			if _, _, err := SplitDNS(p.DNS); err != nil {
				bad("%s.dns: %v", at, err)
			}
		}
		if p.Outlier.ErrorRate <= 0 || p.Outlier.ErrorRate > 1 {
			bad("%s.outlier.error_rate %g: must be in (0, 1]", at, p.Outlier.ErrorRate)
		}
		if p.Outlier.MaxEjectedPercent < 0 || p.Outlier.MaxEjectedPercent > 100 {
			bad("%s.outlier.max_ejected_percent %d: must be in [0, 100]", at, p.Outlier.MaxEjectedPercent)
		}
		if p.TLS != nil && (p.TLS.Cert == "") != (p.TLS.Key == "") {
			bad("%s.tls: cert and key go together", at)
		}
	}
	models := map[string]bool{}
	for i, rt := range c.Routes {
		at := fmt.Sprintf("routes[%d] (%s)", i, rt.Model)
		switch {
		case rt.Model == "":
			bad("routes[%d].model: required", i)
		case !modelName.MatchString(rt.Model):
			bad("%s.model %q: letters, digits, '_', '-' and '.' only", at, rt.Model)
		case models[rt.Model]:
			bad("%s: model %q routed twice", at, rt.Model)
		}
		models[rt.Model] = true
		if !pools[rt.Pool] {
			bad("%s.pool %q: no such pool", at, rt.Pool)
		}
		total := 0
		seen := map[string]bool{}
		for j, s := range rt.Versions {
			if s.Version == "" || strings.Trim(s.Version, "0123456789") != "" || s.Version[0] == '0' {
				bad("%s.versions[%d].version %q: a positive version number", at, j, s.Version)
			}
			if seen[s.Version+"@"+s.Pool] {
				bad("%s.versions[%d]: version %s in pool %s listed twice", at, j, s.Version, s.Pool)
			}
			seen[s.Version+"@"+s.Pool] = true
			if s.Weight < 0 {
				bad("%s.versions[%d].weight %d: must be >= 0", at, j, s.Weight)
			}
			total += s.Weight
			if !pools[s.Pool] {
				bad("%s.versions[%d].pool %q: no such pool", at, j, s.Pool)
			}
		}
		if len(rt.Versions) > 0 && total == 0 {
			bad("%s.versions: weights add up to 0", at)
		}
		if !headerName.MatchString(rt.PinHeader) {
			bad("%s.pin_header %q: not a lower-case header name", at, rt.PinHeader)
		}
		if rt.StickyHeader != "" && !headerName.MatchString(rt.StickyHeader) {
			bad("%s.sticky_header %q: not a lower-case header name", at, rt.StickyHeader)
		}
		if s := rt.Shadow; s != nil {
			if !pools[s.Pool] {
				bad("%s.shadow.pool %q: no such pool", at, s.Pool)
			}
			if s.Fraction <= 0 || s.Fraction > 1 {
				bad("%s.shadow.fraction %g: must be in (0, 1]", at, s.Fraction)
			}
			if s.MaxConcurrency < 1 || s.MaxBytes < 1 {
				bad("%s.shadow: max_concurrency and max_bytes must be >= 1", at)
			}
			if s.AbsTolerance < 0 || s.RelTolerance < 0 {
				bad("%s.shadow: tolerances must be >= 0", at)
			}
			if s.Pool == rt.Pool && s.Model == rt.Model && s.Version == "" && len(rt.Versions) == 0 {
				bad("%s.shadow: shadows the primary itself; set a version, model or pool", at)
			}
		}
		if rt.Timeout.Duration <= 0 {
			bad("%s.timeout: must be > 0", at)
		}
	}
	switch c.Tracing.Exporter {
	case "none", "stdout":
	case "otlp":
		if c.Tracing.Endpoint == "" {
			bad("tracing.endpoint: required for the otlp exporter")
		}
	default:
		bad("tracing.exporter %q: none, otlp or stdout", c.Tracing.Exporter)
	}
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		bad("tracing.sample_ratio %g: must be in [0, 1]", c.Tracing.SampleRatio)
	}
	return errors.Join(errs...)
}

// SplitDNS parses "dns:///host:port" (also "dns:host:port").
func SplitDNS(s string) (host, port string, err error) {
	rest, ok := strings.CutPrefix(s, "dns:///")
	if !ok {
		rest, ok = strings.CutPrefix(s, "dns:")
	}
	if !ok {
		return "", "", fmt.Errorf("%q: want dns:///host:port", s)
	}
	host, port, err = net.SplitHostPort(rest)
	if err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("%q: want dns:///host:port", s)
	}
	return host, port, nil
}
