// Package catalog is the desired state of every pool: which models each
// Triton pool serves, where their versions come from (S3, the MLflow
// registry, a local folder), which versions (numbers, aliases such as
// champion/challenger, or the latest N), the per-pool config overrides and
// the warm-up. It is one YAML document, read from a file or an s3:// object
// and watched for changes; the syncer of each pool and the gateway read the
// same one. The format is documented in docs/catalog.md. Every problem is
// reported with its line and column and names the field.
package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/proto/inference"
)

// Catalog is the whole document.
type Catalog struct {
	// MLflow settings (the environment's MLFLOW_* variables otherwise).
	MLflow MLflowSettings `yaml:"mlflow"`
	// S3 client settings (the AWS SDK's defaults otherwise).
	S3       S3Settings          `yaml:"s3"`
	Defaults Defaults            `yaml:"defaults"`
	Pools    map[string]PoolSpec `yaml:"pools"`
	Models   []Model             `yaml:"models"`

	// Digest identifies the document (sha256 of its bytes).
	Digest string `yaml:"-"`
	// Name is where it was read from (for messages).
	Name string `yaml:"-"`
}

// MLflowSettings locate the registry.
type MLflowSettings struct {
	// TrackingURI is the tracking server (else MLFLOW_TRACKING_URI).
	TrackingURI string `yaml:"tracking_uri"`
	// RegistryURI is the model registry's server when it is not the
	// tracking server (else MLFLOW_REGISTRY_URI).
	RegistryURI string `yaml:"registry_uri"`
}

// S3Settings configure the S3 client.
type S3Settings struct {
	Region    string `yaml:"region"`
	Endpoint  string `yaml:"endpoint"`
	PathStyle bool   `yaml:"path_style"`
}

// Defaults apply to every model that does not set its own.
type Defaults struct {
	Pools    []string    `yaml:"pools"`
	Versions VersionSpec `yaml:"versions"`
	Warmup   *Warmup     `yaml:"warmup"`
}

// PoolSpec is how models are configured on a pool: instance kind and count,
// batching. A model's per-pool config is merged on top.
type PoolSpec struct {
	// Kind is cpu or gpu.
	Kind string `yaml:"kind"`
	// Instances per model (per GPU on gpu pools); 0 keeps Triton's default.
	Instances int32 `yaml:"instances"`
	// GPUs restricts gpu instances to these devices.
	GPUs []int32 `yaml:"gpus"`
	// MaxBatchSize replaces max_batch_size (0 disables batching).
	MaxBatchSize *int32 `yaml:"max_batch_size"`
	// DynamicBatching adds Triton's dynamic batcher.
	DynamicBatching *Batching `yaml:"dynamic_batching"`
}

// Batching configures Triton's dynamic batcher.
type Batching struct {
	MaxQueueDelayMicroseconds uint64  `yaml:"max_queue_delay_microseconds"`
	PreferredBatchSizes       []int32 `yaml:"preferred_batch_sizes"`
}

// Model is one model.
type Model struct {
	Name string `yaml:"name"`
	// Source is s3://bucket/prefix/ (versions under prefix/<N>/),
	// mlflow:<registered model>, or a local folder (file:///path or an
	// absolute path) holding <N>/ directories.
	Source string `yaml:"source"`
	// Pools serving the model (default: defaults.pools).
	Pools    []string    `yaml:"pools"`
	Versions VersionSpec `yaml:"versions"`
	// Config overrides the pool's settings for this model, per pool.
	Config map[string]PoolSpec `yaml:"config"`
	Warmup *Warmup             `yaml:"warmup"`

	// Line and Col locate the model in the document.
	Line, Col int `yaml:"-"`
}

// VersionSpec says which versions to serve: the latest N, explicit
// numbers, MLflow aliases, or numbers and aliases together.
type VersionSpec struct {
	Latest  int      `yaml:"latest"`
	Numbers []int64  `yaml:"numbers"`
	Aliases []string `yaml:"aliases"`
}

// IsZero reports whether nothing was said.
func (v VersionSpec) IsZero() bool {
	return v.Latest == 0 && len(v.Numbers) == 0 && len(v.Aliases) == 0
}

// Warmup is what happens after a version loads and before it is routable.
type Warmup struct {
	// Requests inferences with generated inputs (0: none).
	Requests int `yaml:"requests"`
}

// SourceKind is where a model's versions come from.
type SourceKind string

// Source kinds.
const (
	S3     SourceKind = "s3"
	MLflow SourceKind = "mlflow"
	Local  SourceKind = "local"
)

// SourceOf parses a model's source.
func SourceOf(s string) (kind SourceKind, where string, err error) {
	switch {
	case strings.HasPrefix(s, "s3://"):
		rest := strings.TrimPrefix(s, "s3://")
		bucket, _, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return "", "", fmt.Errorf("%q: want s3://bucket/prefix/", s)
		}
		return S3, s, nil
	case strings.HasPrefix(s, "mlflow:"):
		name := strings.TrimPrefix(strings.TrimPrefix(s, "mlflow:"), "//")
		if name == "" || strings.ContainsAny(name, "/?#") {
			return "", "", fmt.Errorf("%q: want mlflow:<registered model name>", s)
		}
		return MLflow, name, nil
	case strings.HasPrefix(s, "file://"):
		p := strings.TrimPrefix(s, "file://")
		if !strings.HasPrefix(p, "/") {
			return "", "", fmt.Errorf("%q: want file:///absolute/path", s)
		}
		return Local, p, nil
	case strings.HasPrefix(s, "/"):
		return Local, s, nil
	}
	return "", "", fmt.Errorf("%q: want s3://bucket/prefix/, mlflow:<registered model> or file:///path", s)
}

// Kind is the pool's instance kind as a config enum.
func (p PoolSpec) kind() inference.ModelInstanceGroup_Kind {
	switch p.Kind {
	case "gpu":
		return inference.ModelInstanceGroup_KIND_GPU
	case "cpu":
		return inference.ModelInstanceGroup_KIND_CPU
	}
	return inference.ModelInstanceGroup_KIND_AUTO
}

// merge lays o over p.
func (p PoolSpec) merge(o PoolSpec) PoolSpec {
	if o.Kind != "" {
		p.Kind = o.Kind
	}
	if o.Instances != 0 {
		p.Instances = o.Instances
	}
	if o.GPUs != nil {
		p.GPUs = o.GPUs
	}
	if o.MaxBatchSize != nil {
		p.MaxBatchSize = o.MaxBatchSize
	}
	if o.DynamicBatching != nil {
		p.DynamicBatching = o.DynamicBatching
	}
	return p
}

// Override is the pbtxt pool override for a model on a pool.
func (c *Catalog) Override(m *Model, pool string) pbtxt.PoolOverride {
	spec := c.pool(pool)
	// The pool's batching settings apply to the models that batch; the
	// model's own are checked against it.
	ifSupported := true
	if o, ok := m.Config[pool]; ok {
		spec = spec.merge(o)
		ifSupported = o.MaxBatchSize == nil && o.DynamicBatching == nil
	}
	ov := pbtxt.PoolOverride{Kind: spec.kind(), Count: spec.Instances, GPUs: spec.GPUs, MaxBatchSize: spec.MaxBatchSize, BatchingIfSupported: ifSupported}
	if b := spec.DynamicBatching; b != nil {
		ov.DynamicBatching = &inference.ModelDynamicBatching{MaxQueueDelayMicroseconds: b.MaxQueueDelayMicroseconds, PreferredBatchSize: b.PreferredBatchSizes}
	}
	return ov
}

// pool is a pool's spec; cpu and gpu need no declaration.
func (c *Catalog) pool(name string) PoolSpec {
	if p, ok := c.Pools[name]; ok {
		if p.Kind == "" {
			p.Kind = implicitKind(name)
		}
		return p
	}
	return PoolSpec{Kind: implicitKind(name)}
}

func implicitKind(name string) string {
	switch name {
	case "cpu", "gpu":
		return name
	}
	return ""
}

// ForPool lists the models a pool serves, in catalog order.
func (c *Catalog) ForPool(pool string) []*Model {
	var out []*Model
	for i := range c.Models {
		m := &c.Models[i]
		for _, p := range m.Pools {
			if p == pool {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// MaxModelName is the longest model name: staging and trash directory
// names add up to ~40 bytes to it, under the filesystem's 255.
const MaxModelName = 200

// PoolNames lists the pools the catalog knows: declared under pools: or
// serving a model, sorted.
func (c *Catalog) PoolNames() []string {
	set := map[string]bool{}
	for name := range c.Pools {
		set[name] = true
	}
	for _, m := range c.Models {
		for _, p := range m.Pools {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// CheckPool refuses a pool the catalog does not know (a typo in a syncer's
// --pool would otherwise read as "this pool serves nothing" and remove
// everything). A pool that serves nothing on purpose is declared under
// pools:.
func (c *Catalog) CheckPool(pool string) error {
	names := c.PoolNames()
	if slices.Contains(names, pool) {
		return nil
	}
	return fmt.Errorf("pool %q is not in the catalog %s (its pools: %s; declare an empty pool under pools:)", pool, c.Name, strings.Join(names, ", "))
}

// Model returns a model by name.
func (c *Catalog) Model(name string) (*Model, bool) {
	for i := range c.Models {
		if c.Models[i].Name == name {
			return &c.Models[i], true
		}
	}
	return nil, false
}

// Error is one problem in a catalog, located.
type Error struct {
	File      string
	Line, Col int
	Field     string
	Msg       string
}

func (e *Error) Error() string {
	loc := e.File
	switch {
	case e.Line > 0 && e.Col > 0:
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	case e.Line > 0:
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Errors are all the problems found, in document order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Parse reads and validates a catalog. name is used in messages.
func Parse(name string, data []byte) (*Catalog, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{{File: name, Line: yamlErrLine(err), Msg: lineRe.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")}}
	}
	c := &Catalog{Name: name}
	sum := sha256.Sum256(data)
	c.Digest = "sha256:" + hex.EncodeToString(sum[:])
	if len(doc.Content) == 0 {
		return nil, Errors{{File: name, Msg: "empty catalog: want a document with models:"}}
	}
	p := &parser{file: name, pos: map[string]yaml.Node{}}
	root := doc.Content[0]
	p.check(root, reflect.TypeOf(Catalog{}), "")
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if err := root.Decode(c); err != nil {
		return nil, Errors{{File: name, Line: yamlErrLine(err), Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	for i := range c.Models {
		if n, ok := p.pos[fmt.Sprintf("models[%d]", i)]; ok {
			c.Models[i].Line, c.Models[i].Col = n.Line, n.Column
		}
	}
	c.applyDefaults()
	p.validate(c)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	return c, nil
}

var lineRe = regexp.MustCompile(`line (\d+): `)

func yamlErrLine(err error) int {
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

type parser struct {
	file string
	pos  map[string]yaml.Node // field path → its value node
	errs Errors
}

func (p *parser) errAt(field, format string, args ...any) {
	n := p.near(field)
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Col: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// near is the position of a field, or of the closest enclosing one written
// in the document (a default has no position of its own).
func (p *parser) near(field string) yaml.Node {
	for f := field; f != ""; {
		if n, ok := p.pos[f]; ok {
			return n
		}
		i := strings.LastIndexAny(f, ".[")
		if i <= 0 {
			break
		}
		f = f[:i]
	}
	return yaml.Node{}
}

// check walks the document against the Go types: unknown fields and wrong
// node kinds are errors with their position; every field's node is recorded.
func (p *parser) check(n *yaml.Node, t reflect.Type, path string) {
	if path != "" {
		p.pos[path] = *n
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return
			}
			p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Col: n.Column, Field: path, Msg: "want a mapping"})
			return
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = f
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			sub := join(path, k.Value)
			if !ok {
				p.errs = append(p.errs, &Error{File: p.file, Line: k.Line, Col: k.Column, Field: sub, Msg: fmt.Sprintf("unknown field (known: %s)", known(fields))})
				continue
			}
			p.check(v, f.Type, sub)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				return
			}
			p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Col: n.Column, Field: path, Msg: "want a list"})
			return
		}
		for i, e := range n.Content {
			p.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return
			}
			p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Col: n.Column, Field: path, Msg: "want a mapping"})
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.check(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Col: n.Column, Field: path, Msg: "want a single value"})
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func known(fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func (c *Catalog) applyDefaults() {
	for i := range c.Models {
		m := &c.Models[i]
		if len(m.Pools) == 0 {
			m.Pools = c.Defaults.Pools
		}
		if m.Versions.IsZero() {
			m.Versions = c.Defaults.Versions
		}
		if m.Versions.IsZero() {
			m.Versions = VersionSpec{Latest: 1}
		}
		if m.Warmup == nil {
			m.Warmup = c.Defaults.Warmup
		}
		if m.Warmup == nil {
			m.Warmup = &Warmup{Requests: 1}
		}
	}
}

var aliasRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

func (p *parser) validate(c *Catalog) {
	for name, ps := range c.Pools {
		at := "pools." + name
		if err := checkPoolName(name); err != nil {
			p.errAt(at, "%v", err)
		}
		if ps.Kind == "" && implicitKind(name) == "" {
			p.errAt(at, "kind: required (cpu or gpu)")
		}
		p.checkSpec(at, ps)
	}
	for i, pool := range c.Defaults.Pools {
		p.checkPoolRef(c, fmt.Sprintf("defaults.pools[%d]", i), pool)
	}
	seen := map[string]int{}
	for i := range c.Models {
		m := &c.Models[i]
		at := fmt.Sprintf("models[%d]", i)
		if m.Name == "" {
			p.errAt(at, "name: required")
		} else if err := pbtxt.ValidateModelName(m.Name); err != nil {
			p.errAt(at+".name", "%v", err)
		} else if err := source.CheckPath(m.Name); err != nil || strings.Contains(m.Name, "/") {
			p.errAt(at+".name", "%q: letters, digits and ._+=@,- only (it is a directory name)", m.Name)
		} else if len(m.Name) > MaxModelName {
			p.errAt(at+".name", "%d bytes: at most %d (the syncer's staging names add to it, under the filesystem's 255)", len(m.Name), MaxModelName)
		} else if j, dup := seen[m.Name]; dup {
			p.errAt(at+".name", "model %q is listed twice (also models[%d])", m.Name, j)
		}
		seen[m.Name] = i
		kind, _, err := SourceOf(m.Source)
		switch {
		case m.Source == "":
			p.errAt(at, "source: required (s3://bucket/prefix/, mlflow:<model> or file:///path)")
		case err != nil:
			p.errAt(at+".source", "%v", err)
		case kind == S3:
			if _, _, err := source.ParseS3URI(m.Source); err != nil {
				p.errAt(at+".source", "%v", err)
			}
		}
		if len(m.Pools) == 0 {
			p.errAt(at, "pools: no pool serves it (set pools, or defaults.pools)")
		}
		pools := map[string]bool{}
		for j, pool := range m.Pools {
			f := fmt.Sprintf("%s.pools[%d]", at, j)
			p.checkPoolRef(c, f, pool)
			if pools[pool] {
				p.errAt(f, "pool %q listed twice", pool)
			}
			pools[pool] = true
		}
		v := m.Versions
		vat := at + ".versions"
		switch {
		case v.Latest < 0 || v.Latest > 100:
			p.errAt(vat+".latest", "%d: between 1 and 100", v.Latest)
		case v.Latest > 0 && (len(v.Numbers) > 0 || len(v.Aliases) > 0):
			p.errAt(vat, "latest cannot be combined with numbers or aliases")
		}
		nums := map[int64]bool{}
		for j, n := range v.Numbers {
			if n <= 0 {
				p.errAt(fmt.Sprintf("%s.numbers[%d]", vat, j), "%d: versions are positive numbers", n)
			}
			if nums[n] {
				p.errAt(fmt.Sprintf("%s.numbers[%d]", vat, j), "version %d listed twice", n)
			}
			nums[n] = true
		}
		for j, a := range v.Aliases {
			f := fmt.Sprintf("%s.aliases[%d]", vat, j)
			if !aliasRe.MatchString(a) {
				p.errAt(f, "%q: an alias is letters, digits, '_' and '-'", a)
			}
			if kind != "" && kind != MLflow {
				p.errAt(f, "aliases need an MLflow source (this one is %s)", kind)
			}
		}
		for pool, spec := range m.Config {
			f := at + ".config." + pool
			if !pools[pool] {
				p.errAt(f, "pool %q does not serve this model (pools: %s)", pool, strings.Join(m.Pools, ", "))
			}
			p.checkSpec(f, spec)
		}
		if m.Warmup != nil && (m.Warmup.Requests < 0 || m.Warmup.Requests > 1000) {
			p.errAt(at+".warmup.requests", "%d: between 0 and 1000", m.Warmup.Requests)
		}
	}
}

var poolNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func checkPoolName(name string) error {
	if !poolNameRe.MatchString(name) {
		return fmt.Errorf("pool name %q: lower-case letters, digits and '-' (a Kubernetes name)", name)
	}
	return nil
}

func (p *parser) checkPoolRef(c *Catalog, at, pool string) {
	if _, ok := c.Pools[pool]; !ok && implicitKind(pool) == "" {
		p.errAt(at, "pool %q is not declared under pools: (only cpu and gpu need no declaration)", pool)
	}
}

func (p *parser) checkSpec(at string, s PoolSpec) {
	if s.Kind != "" && s.Kind != "cpu" && s.Kind != "gpu" {
		p.errAt(at+".kind", "%q: cpu or gpu", s.Kind)
	}
	if s.Instances < 0 {
		p.errAt(at+".instances", "%d: must be >= 0", s.Instances)
	}
	if s.Kind == "cpu" && len(s.GPUs) > 0 {
		p.errAt(at+".gpus", "a cpu pool has no GPUs")
	}
	if s.MaxBatchSize != nil && *s.MaxBatchSize < 0 {
		p.errAt(at+".max_batch_size", "%d: must be >= 0", *s.MaxBatchSize)
	}
	if b := s.DynamicBatching; b != nil {
		for i, n := range b.PreferredBatchSizes {
			if n <= 0 {
				p.errAt(fmt.Sprintf("%s.dynamic_batching.preferred_batch_sizes[%d]", at, i), "%d: must be > 0", n)
			}
		}
	}
}

// Load reads and validates a catalog file.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}
