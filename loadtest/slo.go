package loadtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SLO is one assertion on a run's summary, such as p99<=20ms or errors<=0.1%.
type SLO struct {
	Metric string  // p50 p90 p95 p99 p99.9 max mean, errors, rps, inferences
	Op     string  // <= < >= >
	Value  float64 // milliseconds for latencies, a fraction for errors given in %, else as written
	// Percent is set when errors were given as a percentage (a rate).
	Percent bool
	text    string
}

func (s SLO) String() string { return s.text }

var latencyMetrics = map[string]func(Latency) float64{
	"p50": func(l Latency) float64 { return l.P50 }, "p90": func(l Latency) float64 { return l.P90 },
	"p95": func(l Latency) float64 { return l.P95 }, "p99": func(l Latency) float64 { return l.P99 },
	"p99.9": func(l Latency) float64 { return l.P999 }, "max": func(l Latency) float64 { return l.Max },
	"mean": func(l Latency) float64 { return l.Mean },
}

// ParseSLOs parses a comma-separated list of assertions:
// p50|p90|p95|p99|p99.9|max|mean <op> <duration>, errors <op> <count or N%>,
// rps <op> <rate>, inferences <op> <rate>; op is <=, <, >= or >.
func ParseSLOs(s string) ([]SLO, error) {
	var out []SLO
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var slo SLO
		slo.text = part
		i := strings.IndexAny(part, "<>")
		if i <= 0 {
			return nil, fmt.Errorf("SLO %q: want METRIC<=VALUE, e.g. p99<=20ms or errors<=0.1%%", part)
		}
		slo.Metric = strings.ToLower(strings.TrimSpace(part[:i]))
		rest := part[i:]
		for _, op := range []string{"<=", ">=", "<", ">"} {
			if strings.HasPrefix(rest, op) {
				slo.Op, rest = op, strings.TrimSpace(rest[len(op):])
				break
			}
		}
		switch {
		case latencyMetrics[slo.Metric] != nil:
			d, err := time.ParseDuration(rest)
			if err != nil {
				return nil, fmt.Errorf("SLO %q: %q is not a duration such as 20ms", part, rest)
			}
			slo.Value = float64(d) / float64(time.Millisecond)
		case slo.Metric == "errors":
			if p, ok := strings.CutSuffix(rest, "%"); ok {
				v, err := strconv.ParseFloat(p, 64)
				if err != nil || v < 0 {
					return nil, fmt.Errorf("SLO %q: %q is not a percentage", part, rest)
				}
				slo.Value, slo.Percent = v/100, true
			} else {
				v, err := strconv.ParseFloat(rest, 64)
				if err != nil || v < 0 {
					return nil, fmt.Errorf("SLO %q: %q is not an error count or percentage", part, rest)
				}
				slo.Value = v
			}
		case slo.Metric == "rps" || slo.Metric == "inferences":
			v, err := ParseRate(rest)
			if err != nil {
				return nil, fmt.Errorf("SLO %q: %v", part, err)
			}
			slo.Value = v
		default:
			return nil, fmt.Errorf("SLO %q: unknown metric %q (p50, p90, p95, p99, p99.9, max, mean, errors, rps, inferences)", part, slo.Metric)
		}
		out = append(out, slo)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no SLO in %q", s)
	}
	return out, nil
}

// Violation is an SLO a run missed.
type Violation struct {
	SLO    SLO
	Actual string
}

func (v Violation) String() string { return fmt.Sprintf("SLO %s violated: %s", v.SLO, v.Actual) }

// Check returns the SLOs the run's summary violates.
func Check(s Stats, slos []SLO) []Violation {
	var out []Violation
	for _, slo := range slos {
		var actual float64
		var shown string
		switch {
		case latencyMetrics[slo.Metric] != nil:
			actual = latencyMetrics[slo.Metric](s.Latency)
			shown = fmt.Sprintf("%s was %s", slo.Metric, fmtMS(actual))
		case slo.Metric == "errors" && slo.Percent:
			actual = s.ErrorRate
			shown = fmt.Sprintf("error rate was %.3g%% (%d of %d)", actual*100, s.Errors, s.Requests)
		case slo.Metric == "errors":
			actual = float64(s.Errors)
			shown = fmt.Sprintf("%d errors", s.Errors)
		case slo.Metric == "rps":
			actual = s.Throughput
			shown = fmt.Sprintf("throughput was %.1f req/s", actual)
		case slo.Metric == "inferences":
			actual = s.Inferences
			shown = fmt.Sprintf("%.1f inferences/s", actual)
		}
		ok := false
		switch slo.Op {
		case "<=":
			ok = actual <= slo.Value
		case "<":
			ok = actual < slo.Value
		case ">=":
			ok = actual >= slo.Value
		case ">":
			ok = actual > slo.Value
		}
		if !ok {
			out = append(out, Violation{SLO: slo, Actual: shown})
		}
	}
	return out
}

// fmtMS renders milliseconds readably: 850µs, 12.3ms, 1.25s.
func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 1000:
		return fmt.Sprintf("%.3gms", ms)
	default:
		return fmt.Sprintf("%.3gs", ms/1000)
	}
}
