package loadtest

import (
	"math"
	"testing"
	"time"
)

func collect(p Profile, kind Arrival) []time.Duration {
	a := newArrivals(p, kind, 42)
	var out []time.Duration
	for {
		t, ok := a.next()
		if !ok {
			return out
		}
		out = append(out, t)
	}
}

func TestArrivalCounts(t *testing.T) {
	profiles := map[string]Profile{
		"constant": Constant(500, 4*time.Second),
		"ramp":     Ramp(100, 900, 4*time.Second),
		"burst":    Burst(200, 5, time.Second, 1500*time.Millisecond, 4*time.Second),
		"steps":    {{time.Second, 100, 100}, {2 * time.Second, 300, 300}, {500 * time.Millisecond, 1000, 1000}},
		"fraction": Constant(2.5, 4*time.Second),
	}
	for name, p := range profiles {
		for _, kind := range []Arrival{Uniform, Poisson} {
			ts := collect(p, kind)
			want := p.Expected(p.Duration())
			if math.Abs(float64(len(ts))-want) > 1 {
				t.Errorf("%s/%s: %d arrivals, profile calls for %.1f", name, kind, len(ts), want)
			}
			for i := 1; i < len(ts); i++ {
				if ts[i] < ts[i-1] || ts[i] > p.Duration() {
					t.Fatalf("%s/%s: arrival %d at %v out of order or past the end", name, kind, i, ts[i])
				}
			}
			// Every second holds what the profile calls for, within one request.
			for s := time.Duration(0); s < p.Duration(); s += time.Second {
				e := min(s+time.Second, p.Duration())
				n := 0
				for _, x := range ts {
					if x >= s && x < e {
						n++
					}
				}
				if exp := p.Expected(e) - p.Expected(s); math.Abs(float64(n)-exp) > 1.5 {
					t.Errorf("%s/%s: second %v has %d arrivals, want %.1f", name, kind, s, n, exp)
				}
			}
		}
	}
}

func TestUniformSpacing(t *testing.T) {
	ts := collect(Constant(1000, time.Second), Uniform)
	if len(ts) != 1000 || ts[0] != 0 {
		t.Fatalf("%d arrivals, first at %v", len(ts), ts[0])
	}
	for i := 1; i < len(ts); i++ {
		if gap := ts[i] - ts[i-1]; gap < 998*time.Microsecond || gap > 1002*time.Microsecond {
			t.Fatalf("gap %d = %v, want 1ms", i, gap)
		}
	}
}

// TestPoissonGaps: the gaps of Poisson arrivals look exponential (coefficient
// of variation near 1), unlike uniform ones.
func TestPoissonGaps(t *testing.T) {
	ts := collect(Constant(2000, 5*time.Second), Poisson)
	var sum, sq float64
	for i := 1; i < len(ts); i++ {
		g := float64(ts[i] - ts[i-1])
		sum += g
		sq += g * g
	}
	n := float64(len(ts) - 1)
	mean := sum / n
	cv := math.Sqrt(sq/n-mean*mean) / mean
	if cv < 0.9 || cv > 1.1 {
		t.Fatalf("coefficient of variation of gaps %.3f, want about 1", cv)
	}
}

func TestParsers(t *testing.T) {
	for in, want := range map[string]float64{"500": 500, "500/s": 500, "2k": 2000, "1.5k/s": 1500, "0": 0} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "fast", "-5", "1e400"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	p, err := ParseSteps("100:1s, 2k:500ms")
	if err != nil || len(p) != 2 || p[1].From != 2000 || p.Duration() != 1500*time.Millisecond {
		t.Fatalf("ParseSteps: %v %v", p, err)
	}
	for _, bad := range []string{"100", "100:x", "x:1s", "100:-1s"} {
		if _, err := ParseSteps(bad); err == nil {
			t.Errorf("ParseSteps(%q) accepted", bad)
		}
	}
	l, err := ParseLevels("1:16")
	if err != nil || len(l) != 5 || l[4] != 16 {
		t.Fatalf("ParseLevels: %v %v", l, err)
	}
	if l, err := ParseLevels("1, 3,9"); err != nil || l[2] != 9 {
		t.Fatalf("ParseLevels: %v %v", l, err)
	}
	for _, bad := range []string{"0", "4:2", "a", "1,,2"} {
		if _, err := ParseLevels(bad); err == nil {
			t.Errorf("ParseLevels(%q) accepted", bad)
		}
	}
	if err := (Profile{{0, 1, 1}}).Validate(); err == nil {
		t.Error("zero-length segment accepted")
	}
}
