package catalog

import (
	"strings"
	"testing"

	"github.com/tritongate/tritongate/proto/inference"
)

func TestExample(t *testing.T) {
	c, err := Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Models) != 3 || c.MLflow.TrackingURI == "" || c.S3.Region != "eu-west-1" || !strings.HasPrefix(c.Digest, "sha256:") {
		t.Fatalf("parsed %+v", c)
	}
	r, _ := c.Model("resnet50")
	if r.Line != 15 || r.Warmup.Requests != 2 {
		t.Errorf("resnet50 at line %d with warm-up %+v", r.Line, r.Warmup)
	}
	tok, _ := c.Model("tokenizer")
	if len(tok.Pools) != 1 || tok.Pools[0] != "cpu" || tok.Versions.Latest != 2 {
		t.Errorf("defaults not applied: %+v", tok)
	}
	if got := names(c.ForPool("cpu")); got != "resnet50 tokenizer" {
		t.Errorf("cpu pool serves %s", got)
	}
	if got := names(c.ForPool("gpu-large")); got != "ranker" {
		t.Errorf("gpu-large pool serves %s", got)
	}
	// Per-pool config: pool settings, then the model's override.
	ov := c.Override(r, "gpu")
	if ov.Kind != inference.ModelInstanceGroup_KIND_GPU || ov.Count != 2 || *ov.MaxBatchSize != 64 || ov.BatchingIfSupported {
		t.Errorf("gpu override %+v (the model's own max_batch_size is strict)", ov)
	}
	ov = c.Override(r, "cpu")
	if ov.Kind != inference.ModelInstanceGroup_KIND_CPU || ov.Count != 2 || *ov.MaxBatchSize != 8 || ov.DynamicBatching.GetMaxQueueDelayMicroseconds() != 100 || !ov.BatchingIfSupported {
		t.Errorf("cpu override %+v", ov)
	}
	for _, s := range []struct {
		src  string
		kind SourceKind
	}{{"s3://b/p/", S3}, {"mlflow:ranker", MLflow}, {"file:///x", Local}, {"/abs", Local}} {
		if k, _, err := SourceOf(s.src); err != nil || k != s.kind {
			t.Errorf("SourceOf(%q) = %v %v", s.src, k, err)
		}
	}
}

func names(ms []*Model) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, " ")
}

func TestErrorsNameLineAndField(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"syntax", "models: [\n", "x.yaml:1: did not find expected node content"},
		{"unknown field", "models:\n  - name: a\n    source: s3://b/a/\n    verisons: {latest: 1}\n", "x.yaml:4:5: models[0].verisons: unknown field"},
		{"wrong kind", "models: {name: a}\n", "x.yaml:1:9: models: want a list"},
		{"no source", "models:\n  - name: a\n", "x.yaml:2:5: models[0]: source: required"},
		{"bad source", "models:\n  - name: a\n    source: ftp://x\n", "x.yaml:3:13: models[0].source: \"ftp://x\""},
		{"traversal name", "models:\n  - name: ../etc\n    source: s3://b/a/\n", "x.yaml:2:11: models[0].name"},
		{"name twice", "models:\n  - {name: a, source: \"s3://b/a/\"}\n  - {name: a, source: \"s3://b/a/\"}\n", "x.yaml:3:12: models[1].name: model \"a\" is listed twice"},
		{"alias without mlflow", "models:\n  - name: a\n    source: s3://b/a/\n    versions: {aliases: [champion]}\n", "x.yaml:4:26: models[0].versions.aliases[0]: aliases need an MLflow source"},
		{"latest and numbers", "models:\n  - name: a\n    source: s3://b/a/\n    versions: {latest: 1, numbers: [2]}\n", "models[0].versions: latest cannot be combined"},
		{"undeclared pool", "models:\n  - name: a\n    source: s3://b/a/\n    pools: [tpu]\n", "x.yaml:4:13: models[0].pools[0]: pool \"tpu\" is not declared"},
		{"override for another pool", "models:\n  - name: a\n    source: s3://b/a/\n    pools: [cpu]\n    config: {gpu: {instances: 2}}\n", "models[0].config.gpu: pool \"gpu\" does not serve this model"},
		{"bad kind", "pools:\n  edge: {kind: tpu}\n", "x.yaml:2:16: pools.edge.kind: \"tpu\": cpu or gpu"},
		{"negative version", "models:\n  - name: a\n    source: s3://b/a/\n    versions: {numbers: [0]}\n", "versions.numbers[0]: 0: versions are positive numbers"},
		{"empty", "", "empty catalog"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := Parse("x.yaml", []byte("defaults: {pools: [cpu]}\nmodels:\n  - name: a\n  - name: b\n    source: nope\n"))
	es, ok := err.(Errors)
	if !ok || len(es) != 2 || es[0].Line != 3 || es[1].Line != 5 {
		t.Errorf("got %v", err)
	}
}

// FuzzParse: any document parses to a catalog that is valid, or to located
// errors; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("models:\n  - {name: a, source: \"s3://b/a/\"}\n"))
	f.Add([]byte("pools: {cpu: {instances: 2}}\nmodels:\n  - name: r\n    source: mlflow:r\n    versions: {aliases: [champion]}\n    config: {cpu: {max_batch_size: 4}}\n"))
	f.Add([]byte("models: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, m := range c.Models {
			if m.Name == "" || len(m.Pools) == 0 || m.Versions.IsZero() {
				t.Fatalf("accepted an incomplete model %+v", m)
			}
		}
	})
}
