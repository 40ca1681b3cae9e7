// Package loadtest generates load against any Triton-protocol endpoint
// (Triton, tritonlite, the tritongate gateway) and reports honest latency:
// closed loop at fixed concurrency or a concurrency sweep, and open loop at a
// constant, Poisson, ramped, stepped or bursty rate where each request's
// latency runs from its intended send time, so a stalled server cannot hide
// behind a stalled generator. Latencies are recorded in HdrHistograms;
// results export to JSON, CSV and an HTML report with plots, compare with
// each other and check against SLOs. The package imports only proto/ and
// internal/tensor of tritongate, so modelctl can use it as a library.
package loadtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Segment is a stretch of an open-loop rate profile: the rate goes linearly
// from From to To requests per second over Duration.
type Segment struct {
	Duration time.Duration
	From, To float64
}

// Profile is an open-loop rate over time: segments one after another.
type Profile []Segment

// Constant is a constant rate for d.
func Constant(rate float64, d time.Duration) Profile { return Profile{{d, rate, rate}} }

// Ramp goes linearly from one rate to another over d.
func Ramp(from, to float64, d time.Duration) Profile { return Profile{{d, from, to}} }

// Burst is a "market open" profile: base rate for the whole duration, with
// factor times the base rate from at to at+length.
func Burst(base, factor float64, at, length, total time.Duration) Profile {
	var p Profile
	if at > 0 {
		p = append(p, Segment{at, base, base})
	}
	p = append(p, Segment{length, base * factor, base * factor})
	if rest := total - at - length; rest > 0 {
		p = append(p, Segment{rest, base, base})
	}
	return p
}

// Duration is the profile's total length.
func (p Profile) Duration() time.Duration {
	var d time.Duration
	for _, s := range p {
		d += s.Duration
	}
	return d
}

// Rate is the rate at offset t.
func (p Profile) Rate(t time.Duration) float64 {
	for _, s := range p {
		if t < s.Duration {
			f := float64(t) / float64(s.Duration)
			return s.From + (s.To-s.From)*f
		}
		t -= s.Duration
	}
	return 0
}

// Expected is the number of requests the profile calls for in [0, t).
func (p Profile) Expected(t time.Duration) float64 {
	var n float64
	for _, s := range p {
		d := min(t, s.Duration)
		sec := d.Seconds()
		total := s.Duration.Seconds()
		n += s.From*sec + (s.To-s.From)*sec*sec/(2*total)
		t -= d
		if t <= 0 {
			break
		}
	}
	return n
}

// Validate checks the profile has positive durations and non-negative rates.
func (p Profile) Validate() error {
	if len(p) == 0 {
		return errors.New("empty rate profile")
	}
	for i, s := range p {
		if s.Duration <= 0 {
			return fmt.Errorf("rate profile segment %d: duration must be > 0", i+1)
		}
		if s.From < 0 || s.To < 0 || math.IsNaN(s.From) || math.IsNaN(s.To) || math.IsInf(s.From, 0) || math.IsInf(s.To, 0) {
			return fmt.Errorf("rate profile segment %d: rates must be finite and >= 0", i+1)
		}
	}
	return nil
}

// String describes the profile compactly.
func (p Profile) String() string {
	parts := make([]string, len(p))
	for i, s := range p {
		if s.From == s.To {
			parts[i] = fmt.Sprintf("%g/s for %s", s.From, s.Duration)
		} else {
			parts[i] = fmt.Sprintf("%g→%g/s over %s", s.From, s.To, s.Duration)
		}
	}
	return strings.Join(parts, ", ")
}

// Arrival is how open-loop requests are spaced.
type Arrival string

// Arrival processes.
const (
	// Uniform spaces requests evenly at the current rate.
	Uniform Arrival = "uniform"
	// Poisson makes arrivals a Poisson process of the current rate.
	Poisson Arrival = "poisson"
)

// arrivals produces intended send offsets for a profile. Uniform arrivals
// sit where the profile's expected count reaches each integer. Poisson
// arrivals are drawn one second at a time: exactly the count the profile
// calls for (fractions carried over), placed as uniform random order
// statistics of the expected count, i.e. a Poisson process conditioned on its
// count. Either way a run hits its target rate.
type arrivals struct {
	p       Profile
	kind    Arrival
	rng     *rand.Rand
	chunk   time.Duration
	start   time.Duration // of the current chunk
	pending []time.Duration
	carry   float64
	done    bool
}

func newArrivals(p Profile, kind Arrival, seed uint64) *arrivals {
	return &arrivals{p: p, kind: kind, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), chunk: time.Second}
}

// next returns the next intended offset, or false when the profile is over.
func (a *arrivals) next() (time.Duration, bool) {
	for len(a.pending) == 0 {
		if a.done {
			return 0, false
		}
		a.fill()
	}
	t := a.pending[0]
	a.pending = a.pending[1:]
	return t, true
}

func (a *arrivals) fill() {
	total := a.p.Duration()
	if a.start >= total {
		a.done = true
		return
	}
	end := min(a.start+a.chunk, total)
	lo, hi := a.p.Expected(a.start), a.p.Expected(end)
	a.pending = a.pending[:0]
	if a.kind == Poisson {
		want := hi - lo + a.carry
		n := int(math.Floor(want + 1e-9))
		a.carry = want - float64(n)
		marks := make([]float64, n)
		for i := range marks {
			marks[i] = lo + a.rng.Float64()*(hi-lo)
		}
		sort.Float64s(marks)
		for _, m := range marks {
			a.pending = append(a.pending, a.p.Invert(m))
		}
	} else {
		// Request k goes where the expected count reaches k: evenly spaced
		// at the current rate, the first at t = 0.
		for k := math.Ceil(lo - 1e-9); k < hi-1e-9; k++ {
			a.pending = append(a.pending, a.p.Invert(k))
		}
	}
	a.start = end
}

// Invert returns the offset at which the expected count reaches m, solving
// each segment's linear-rate integral exactly (the profile's end if it never
// does).
func (p Profile) Invert(m float64) time.Duration {
	var base time.Duration
	for _, s := range p {
		total := s.Duration.Seconds()
		n := (s.From + s.To) / 2 * total
		if m <= n {
			var tau float64
			if s.To == s.From {
				if s.From == 0 {
					return base
				}
				tau = m / s.From
			} else {
				a := (s.To - s.From) / (2 * total)
				tau = (-s.From + math.Sqrt(s.From*s.From+4*a*m)) / (2 * a)
			}
			return base + time.Duration(math.Max(0, math.Min(tau, total))*float64(time.Second))
		}
		m -= n
		base += s.Duration
	}
	return base
}

// ParseRate parses "500", "500/s", "2k", "2k/s" into requests per second.
func ParseRate(s string) (float64, error) {
	orig := s
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	mult := 1.0
	if strings.HasSuffix(s, "k") {
		mult, s = 1000, strings.TrimSuffix(s, "k")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("rate %q: want a number of requests per second such as 500 or 2k", orig)
	}
	return v * mult, nil
}

// ParseSteps parses "100:10s,200:10s,400:5s" (rate:duration, ...).
func ParseSteps(s string) (Profile, error) {
	var p Profile
	for _, part := range strings.Split(s, ",") {
		r, d, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("step %q: want RATE:DURATION such as 200:10s", part)
		}
		rate, err := ParseRate(r)
		if err != nil {
			return nil, err
		}
		dur, err := time.ParseDuration(d)
		if err != nil || dur <= 0 {
			return nil, fmt.Errorf("step %q: duration %q is not a positive duration", part, d)
		}
		p = append(p, Segment{dur, rate, rate})
	}
	return p, nil
}

// ParseLevels parses a concurrency sweep "1,2,4,8" or "1:64" (powers of two).
func ParseLevels(s string) ([]int, error) {
	if a, b, ok := strings.Cut(s, ":"); ok {
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo < 1 || hi < lo {
			return nil, fmt.Errorf("sweep %q: want LOW:HIGH with 1 <= LOW <= HIGH", s)
		}
		var out []int
		for c := lo; c <= hi; c *= 2 {
			out = append(out, c)
		}
		return out, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || c < 1 {
			return nil, fmt.Errorf("sweep %q: %q is not a concurrency >= 1", s, part)
		}
		out = append(out, c)
	}
	return out, nil
}
