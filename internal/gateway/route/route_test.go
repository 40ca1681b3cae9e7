package route

import (
	"fmt"
	"math"
	"testing"

	"github.com/tritongate/tritongate/internal/gateway/config"
)

func table(t *testing.T, routes string) *Table {
	t.Helper()
	cfg, err := config.Parse([]byte("pools:\n  - {name: cpu, endpoints: [\"a:1\"]}\n  - {name: gpu, endpoints: [\"b:1\"]}\nroutes:\n" + routes))
	if err != nil {
		t.Fatal(err)
	}
	return Build(cfg, nil) // targets carry nil pools: Choose does not use them
}

func headers(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestChoose(t *testing.T) {
	tb := table(t, `
  - model: m
    pool: cpu
    sticky_header: x-user
    versions: [{version: "1", weight: 3}, {version: "2", weight: 1, pool: gpu}, {version: "3", weight: 0}]
  - {model: plain, pool: cpu}
`)
	m, _ := tb.Lookup("m")
	cases := []struct {
		name, reqVersion string
		hdr              func(string) string
		version, how     string
	}{
		{"request version", "2", headers("x-model-version", "1"), "2", ByRequest},
		{"pin", "", headers("x-model-version", "3"), "3", ByPin},
		{"pin outside the split", "", headers("x-model-version", "7"), "7", ByPin},
		{"sticky", "", headers("x-user", "alice"), "", BySticky},
		{"split", "", headers(), "", BySplit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg, how := m.Choose(c.reqVersion, c.hdr)
			if how != c.how || (c.version != "" && tg.Version != c.version) || tg.Model != "m" {
				t.Errorf("got %+v by %s, want version %q by %s", tg, how, c.version, c.how)
			}
		})
	}
	p, _ := tb.Lookup("plain")
	if tg, how := p.Choose("", headers()); how != ByDefault || tg.Version != "" {
		t.Errorf("no split: %+v %s", tg, how)
	}
	if _, ok := tb.Lookup("nope"); ok {
		t.Error("lookup of an unrouted model succeeded")
	}
}

func TestSplitFollowsWeights(t *testing.T) {
	tb := table(t, "  - {model: m, pool: cpu, versions: [{version: \"1\", weight: 3}, {version: \"2\", weight: 1}, {version: \"3\", weight: 0}]}\n")
	m, _ := tb.Lookup("m")
	const n = 100000
	count := map[string]int{}
	for range n {
		tg, _ := m.Choose("", headers())
		count[tg.Version]++
	}
	if count["3"] != 0 {
		t.Errorf("a weight-0 version got %d requests from the split", count["3"])
	}
	if share := float64(count["2"]) / n; math.Abs(share-0.25) > 0.01 {
		t.Errorf("version 2 share %.3f, want 0.25", share)
	}
}

func TestStickyIsStableAndSpread(t *testing.T) {
	tb := table(t, "  - {model: m, pool: cpu, sticky_header: x-user, versions: [{version: \"1\", weight: 1}, {version: \"2\", weight: 1}]}\n")
	m, _ := tb.Lookup("m")
	on2 := 0
	for u := range 1000 {
		h := headers("x-user", fmt.Sprint("user-", u))
		first, _ := m.Choose("", h)
		for range 5 {
			if again, _ := m.Choose("", h); again.Version != first.Version {
				t.Fatalf("user %d moved from version %s to %s", u, first.Version, again.Version)
			}
		}
		if first.Version == "2" {
			on2++
		}
	}
	if on2 < 400 || on2 > 600 {
		t.Errorf("%d of 1000 users on version 2, want about half", on2)
	}
}

func TestShadowSlots(t *testing.T) {
	tb := table(t, "  - {model: m, pool: cpu, shadow: {pool: gpu, fraction: 0.5, max_concurrency: 2}}\n")
	m, _ := tb.Lookup("m")
	s := m.Shadow
	if s == nil || s.Target.Model != "m" || s.Fraction != 0.5 {
		t.Fatalf("shadow %+v", s)
	}
	if !s.TryAcquire() || !s.TryAcquire() || s.TryAcquire() {
		t.Fatal("max_concurrency 2 should give exactly two slots")
	}
	s.Release()
	if !s.TryAcquire() {
		t.Error("a released slot is not reusable")
	}
}
