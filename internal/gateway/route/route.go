// Package route is the gateway's routing table: for each model, the pool (or
// pools) serving it, how traffic splits between versions, which header pins a
// version, which header makes a split sticky, and the shadow target. A Table
// is immutable; reloads build a new one and swap it in atomically.
package route

import (
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/tritongate/tritongate/internal/gateway/config"
	"github.com/tritongate/tritongate/internal/gateway/pool"
)

// Target is where one request goes.
type Target struct {
	Pool    *pool.Pool
	Model   string
	Version string // "" = the backend's latest
}

// Why a target was chosen (a metric label).
const (
	ByRequest = "request" // model_version set in the request
	ByPin     = "pin"     // the pin header
	BySticky  = "sticky"  // the sticky header's hash
	BySplit   = "split"   // weighted random
	ByDefault = "default" // no split configured
)

type split struct {
	target Target
	upTo   int // cumulative weight
}

// Shadow is a route's shadow traffic settings.
type Shadow struct {
	Target   Target
	Fraction float64
	MaxBytes int
	Abs, Rel float64
	// slots bounds concurrent shadow calls. A reload builds fresh slots: for
	// as long as the old table's calls last, both together may exceed it.
	slots chan struct{}
}

// TryAcquire takes a shadow slot if one is free.
func (s *Shadow) TryAcquire() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release returns a shadow slot.
func (s *Shadow) Release() { <-s.slots }

// Route is one model's routing.
type Route struct {
	Model        string
	Pool         *pool.Pool
	PinHeader    string
	StickyHeader string
	Timeout      time.Duration
	Shadow       *Shadow
	splits       []split
	total        int
}

// Table maps model names to routes.
type Table struct {
	routes map[string]*Route
}

// Lookup returns the route of a model.
func (t *Table) Lookup(model string) (*Route, bool) {
	r, ok := t.routes[model]
	return r, ok
}

// Routes lists every route.
func (t *Table) Routes() []*Route {
	out := make([]*Route, 0, len(t.routes))
	for _, r := range t.routes {
		out = append(out, r)
	}
	return out
}

// Build makes a table from a validated configuration and its pools by name.
func Build(cfg *config.Config, pools map[string]*pool.Pool) *Table {
	t := &Table{routes: map[string]*Route{}}
	for _, rc := range cfg.Routes {
		r := &Route{Model: rc.Model, Pool: pools[rc.Pool], PinHeader: rc.PinHeader, StickyHeader: rc.StickyHeader, Timeout: rc.Timeout.Duration}
		for _, s := range rc.Versions {
			if s.Weight == 0 {
				// Reachable by pin only.
				r.splits = append(r.splits, split{target: Target{Pool: pools[s.Pool], Model: rc.Model, Version: s.Version}, upTo: r.total})
				continue
			}
			r.total += s.Weight
			r.splits = append(r.splits, split{target: Target{Pool: pools[s.Pool], Model: rc.Model, Version: s.Version}, upTo: r.total})
		}
		if sc := rc.Shadow; sc != nil {
			r.Shadow = &Shadow{
				Target:   Target{Pool: pools[sc.Pool], Model: sc.Model, Version: sc.Version},
				Fraction: sc.Fraction, MaxBytes: sc.MaxBytes, Abs: sc.AbsTolerance, Rel: sc.RelTolerance,
				slots: make(chan struct{}, sc.MaxConcurrency),
			}
		}
		t.routes[rc.Model] = r
	}
	return t
}

// Choose picks the target of a request: the version the request names (in
// model_version, or in the pin header), else a sticky or random draw from
// the split. headers is how the request's metadata is read.
func (r *Route) Choose(requestVersion string, header func(string) string) (Target, string) {
	how := ByRequest
	v := requestVersion
	if v == "" {
		if v = header(r.PinHeader); v != "" {
			how = ByPin
		}
	}
	if v != "" {
		for _, s := range r.splits {
			if s.target.Version == v {
				return s.target, how
			}
		}
		return Target{Pool: r.Pool, Model: r.Model, Version: v}, how
	}
	if r.total == 0 {
		return Target{Pool: r.Pool, Model: r.Model}, ByDefault
	}
	var n int
	how = BySplit
	if r.StickyHeader != "" {
		if key := header(r.StickyHeader); key != "" {
			h := fnv.New64a()
			h.Write([]byte(key))
			n = int(h.Sum64() % uint64(r.total))
			how = BySticky
		} else {
			n = rand.IntN(r.total)
		}
	} else {
		n = rand.IntN(r.total)
	}
	for _, s := range r.splits {
		if n < s.upTo {
			return s.target, how
		}
	}
	return r.splits[len(r.splits)-1].target, how
}

// Targets lists every target of the route (each split, or the pool), for
// readiness answers.
func (r *Route) Targets() []Target {
	if len(r.splits) == 0 {
		return []Target{{Pool: r.Pool, Model: r.Model}}
	}
	out := make([]Target, len(r.splits))
	for i, s := range r.splits {
		out[i] = s.target
	}
	return out
}
