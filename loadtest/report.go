package loadtest

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteSummary prints a human summary of a run.
func WriteSummary(w io.Writer, r *Result) {
	s := r.Summary
	fmt.Fprintf(w, "target %s, %s\n", r.Target, r.Description)
	fmt.Fprintf(w, "requests %d, ok %d, errors %d (%.3g%%) in %.1fs\n", s.Requests, s.OK, s.Errors, s.ErrorRate*100, s.Seconds)
	fmt.Fprintf(w, "throughput %.1f req/s (%.1f inferences/s), sent %.1f req/s", s.Throughput, s.Inferences, r.SendRate)
	if strings.HasPrefix(r.Description, "open") {
		fmt.Fprintf(w, ", late sends %d (max lag %s)", r.LateSends, fmtMS(r.MaxSendLag))
	}
	fmt.Fprintln(w)
	l := s.Latency
	fmt.Fprintf(w, "latency p50 %s  p90 %s  p95 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n",
		fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P95), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max), fmtMS(l.Mean))
	for _, c := range sortedCodes(s.Codes) {
		fmt.Fprintf(w, "  %s: %d\n", c, s.Codes[c])
	}
	if len(r.PerModel) > 1 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "model\trequests\terrors\treq/s\tp50\tp99\tmax")
		for _, m := range r.Models {
			ms := r.PerModel[m]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%s\t%s\t%s\n", m, ms.Requests, ms.Errors, ms.Throughput, fmtMS(ms.Latency.P50), fmtMS(ms.Latency.P99), fmtMS(ms.Latency.Max))
		}
		tw.Flush()
	}
	if len(r.Steps) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "concurrency\treq/s\tp50\tp90\tp99\tmax\terrors")
		for _, st := range r.Steps {
			fmt.Fprintf(tw, "%d\t%.1f\t%s\t%s\t%s\t%s\t%d\n", st.Concurrency, st.Throughput, fmtMS(st.Latency.P50), fmtMS(st.Latency.P90), fmtMS(st.Latency.P99), fmtMS(st.Latency.Max), st.Errors)
		}
		tw.Flush()
	}
}

// WriteJSON writes the full result.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a result written by WriteJSON.
func ReadJSON(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: not a loadtest JSON result: %v", path, err)
	}
	if r.Target == "" && r.Summary.Requests == 0 {
		return nil, fmt.Errorf("%s: not a loadtest JSON result (no target, no requests)", path)
	}
	return &r, nil
}

// WriteCSV writes one row per window.
func WriteCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	header := []string{"window_start_s", "requests", "ok", "errors", "throughput_rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms"}
	if err := cw.Write(header); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, win := range r.Windows {
		l := win.Latency
		row := []string{f(win.Start), strconv.FormatInt(win.Requests, 10), strconv.FormatInt(win.OK, 10), strconv.FormatInt(win.Errors, 10),
			f(win.Throughput), f(l.P50), f(l.P90), f(l.P95), f(l.P99), f(l.P999), f(l.Max)}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteComparison prints two runs side by side with the change from a to b.
func WriteComparison(w io.Writer, a, b *Result) {
	fmt.Fprintf(w, "A: %s, %s\nB: %s, %s\n", a.Target, a.Description, b.Target, b.Description)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tA\tB\tchange\t")
	row := func(name string, x, y float64, format func(float64) string, lowerIsBetter bool) {
		change := "-"
		if x != 0 {
			pct := (y - x) / x * 100
			better := (pct < 0) == lowerIsBetter
			mark := ""
			if math.Abs(pct) >= 5 {
				if better {
					mark = " better"
				} else {
					mark = " worse"
				}
			}
			change = fmt.Sprintf("%+.1f%%%s", pct, mark)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, format(x), format(y), change)
	}
	rate := func(v float64) string { return fmt.Sprintf("%.1f/s", v) }
	pct := func(v float64) string { return fmt.Sprintf("%.3g%%", v*100) }
	as, bs := a.Summary, b.Summary
	row("throughput", as.Throughput, bs.Throughput, rate, false)
	row("inferences", as.Inferences, bs.Inferences, rate, false)
	row("p50", as.Latency.P50, bs.Latency.P50, fmtMS, true)
	row("p90", as.Latency.P90, bs.Latency.P90, fmtMS, true)
	row("p95", as.Latency.P95, bs.Latency.P95, fmtMS, true)
	row("p99", as.Latency.P99, bs.Latency.P99, fmtMS, true)
	row("p99.9", as.Latency.P999, bs.Latency.P999, fmtMS, true)
	row("max", as.Latency.Max, bs.Latency.Max, fmtMS, true)
	row("mean", as.Latency.Mean, bs.Latency.Mean, fmtMS, true)
	row("error rate", as.ErrorRate, bs.ErrorRate, pct, true)
	tw.Flush()
}
