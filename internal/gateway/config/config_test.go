package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
pools:
  - name: cpu
    endpoints: ["triton-cpu-0:8001"]
routes:
  - {model: resnet, pool: cpu}
`

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	p, r := c.Pools[0], c.Routes[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, ":8001"},
		{"metrics_listen", c.MetricsListen, ":8002"},
		{"max_message_bytes", c.MaxMessageBytes, 64 << 20},
		{"drain_timeout", c.DrainTimeout.Duration, 30 * time.Second},
		{"timeout", r.Timeout.Duration, 30 * time.Second},
		{"pin_header", r.PinHeader, "x-model-version"},
		{"max_attempts", c.Defaults.Retry.MaxAttempts, 2},
		{"budget_ratio", c.Defaults.Retry.BudgetRatio, 0.1},
		{"health.interval", p.Health.Interval.Duration, 2 * time.Second},
		{"breaker.consecutive_failures", p.Breaker.ConsecutiveFailures, uint32(5)},
		{"outlier.max_ejected_percent", p.Outlier.MaxEjectedPercent, 50},
		{"tracing.exporter", c.Tracing.Exporter, "none"},
	}
	for _, k := range checks {
		if k.got != k.want {
			t.Errorf("%s = %v, want %v", k.name, k.got, k.want)
		}
	}
	c, err = Parse([]byte("metrics_listen: none\n" + minimal))
	if err != nil || c.MetricsListen != "" {
		t.Errorf("metrics_listen none: %q %v", c.MetricsListen, err)
	}
}

func TestShadowAndSplitDefaults(t *testing.T) {
	c, err := Parse([]byte(`
pools:
  - {name: cpu, endpoints: ["a:1"]}
  - {name: gpu, dns: "dns:///triton-gpu:8001"}
routes:
  - model: m
    pool: cpu
    timeout: 250ms
    versions: [{version: "1", weight: 9}, {version: "2", weight: 1, pool: gpu}]
    shadow: {version: "3", fraction: 0.05}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Routes[0]
	if r.Versions[0].Pool != "cpu" || r.Versions[1].Pool != "gpu" || r.Timeout.Duration != 250*time.Millisecond {
		t.Errorf("route %+v", r)
	}
	if s := r.Shadow; s.Pool != "cpu" || s.Model != "m" || s.MaxConcurrency != 4 || s.MaxBytes != 1<<20 {
		t.Errorf("shadow %+v", s)
	}
}

func TestValidationNamesTheField(t *testing.T) {
	pools := "pools:\n  - {name: cpu, endpoints: [\"a:1\"]}\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "pools: []\nroute: []\n", `unknown field "route"`},
		{"bad duration", "drain_timeout: soon\n" + pools, `"soon" is not a duration`},
		{"no endpoints", "pools:\n  - {name: cpu}\n", "pools[0] (cpu): give endpoints or dns"},
		{"both", "pools:\n  - {name: cpu, endpoints: [\"a:1\"], dns: \"dns:///x:1\"}\n", "give endpoints or dns, not both"},
		{"endpoint without port", "pools:\n  - {name: cpu, endpoints: [\"a\"]}\n", `pools[0] (cpu).endpoints[0] "a": want host:port`},
		{"bad dns", "pools:\n  - {name: cpu, dns: \"triton:8001\"}\n", `pools[0] (cpu).dns: "triton:8001": want dns:///host:port`},
		{"pool twice", "pools:\n  - {name: cpu, endpoints: [\"a:1\"]}\n  - {name: cpu, endpoints: [\"b:1\"]}\n", `pool name "cpu" used twice`},
		{"no pool", pools + "routes:\n  - {model: m, pool: gpu}\n", `routes[0] (m).pool "gpu": no such pool`},
		{"model twice", pools + "routes:\n  - {model: m, pool: cpu}\n  - {model: m, pool: cpu}\n", `model "m" routed twice`},
		{"bad model", pools + "routes:\n  - {model: \"a/b\", pool: cpu}\n", `routes[0] (a/b).model "a/b"`},
		{"bad version", pools + "routes:\n  - {model: m, pool: cpu, versions: [{version: latest, weight: 1}]}\n", `routes[0] (m).versions[0].version "latest": a positive version number`},
		{"zero weights", pools + "routes:\n  - {model: m, pool: cpu, versions: [{version: \"1\", weight: 0}]}\n", "routes[0] (m).versions: weights add up to 0"},
		{"negative weight", pools + "routes:\n  - {model: m, pool: cpu, versions: [{version: \"1\", weight: -1}, {version: \"2\", weight: 2}]}\n", "versions[0].weight -1"},
		{"header case", pools + "routes:\n  - {model: m, pool: cpu, sticky_header: X-User}\n", `sticky_header "X-User"`},
		{"shadow fraction", pools + "routes:\n  - {model: m, pool: cpu, shadow: {version: \"2\", fraction: 2}}\n", "routes[0] (m).shadow.fraction 2"},
		{"shadow itself", pools + "routes:\n  - {model: m, pool: cpu, shadow: {fraction: 0.5}}\n", "shadows the primary itself"},
		{"attempts", "defaults: {retry: {max_attempts: 9}}\n" + pools, "defaults.retry.max_attempts 9"},
		{"budget", "defaults: {retry: {budget_ratio: 2}}\n" + pools, "defaults.retry.budget_ratio 2"},
		{"tls pair", "pools:\n  - {name: cpu, endpoints: [\"a:1\"], tls: {cert: c.pem}}\n", "tls: cert and key go together"},
		{"otlp endpoint", "tracing: {exporter: otlp}\n" + pools, "tracing.endpoint: required"},
		{"exporter", "tracing: {exporter: jaeger}\n" + pools, `tracing.exporter "jaeger"`},
		{"listen", "listen: 8001\n" + pools, `listen "8001": want host:port`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(p, []byte("pools:\n  - {name: cpu}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("got %v, want it to start with the path", err)
	}
}

func TestSplitDNS(t *testing.T) {
	for in, want := range map[string]string{
		"dns:///triton.models.svc:8001": "triton.models.svc 8001",
		"dns:triton:9000":               "triton 9000",
		"dns:///triton":                 "error",
		"triton:8001":                   "error",
		"dns:///:8001":                  "error",
	} {
		h, p, err := SplitDNS(in)
		got := h + " " + p
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("SplitDNS(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse: any input gives a configuration that validates, or an error;
// never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("pools:\n  - {name: gpu, dns: \"dns:///t:1\", refresh: 1s}\nroutes:\n  - {model: m, pool: gpu, versions: [{version: \"1\", weight: 1}], shadow: {version: \"2\", fraction: 0.1}}\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned a configuration that does not validate: %v", err)
		}
	})
}
