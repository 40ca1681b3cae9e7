package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
)

func loadtestCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunWritesReportsAndChecksSLOs(t *testing.T) {
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "ident", litetest.Identity("ident"))
	s := litetest.Start(t, repo, litetest.Config{TCP: true})
	dir := t.TempDir()
	code, out, errOut := loadtestCmd(t, "run", "--target", s.Addr, "--model", "ident", "--rate", "200", "--duration", "2s",
		"--out", filepath.Join(dir, "rep"), "--json", filepath.Join(dir, "a.json"), "--csv", filepath.Join(dir, "a.csv"), "--html", filepath.Join(dir, "a.html"),
		"--slo", "p99<=1s,errors<=0%", "--header", "x-tenant: team-a")
	if code != 0 || !strings.Contains(out, "all 2 SLOs met") || !strings.Contains(errOut, "sent") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, f := range []string{"rep/report.html", "rep/report.json", "rep/latency-over-time.png", "a.json", "a.csv", "a.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	code, out, _ = loadtestCmd(t, "run", "--target", s.Addr, "--model", "ident", "--concurrency", "2", "--duration", "500ms", "--quiet", "--slo", "rps>=100000000", "--json", filepath.Join(dir, "b.json"))
	if code != exitSLOFailed || !strings.Contains(out, "SLO rps>=100000000 violated: throughput was") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	code, out, _ = loadtestCmd(t, "compare", filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json"))
	if code != 0 || !strings.Contains(out, "throughput") {
		t.Fatalf("compare: exit %d\n%s", code, out)
	}
	code, out, _ = loadtestCmd(t, "report", filepath.Join(dir, "b.json"), "--out", filepath.Join(dir, "again"))
	if code != 0 || !strings.Contains(out, "report.html") {
		t.Fatalf("report: exit %d\n%s", code, out)
	}
}

// TestBadInput: bad flags and unreadable files give one clear line and a
// non-zero exit.
func TestBadInput(t *testing.T) {
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "ident", litetest.Identity("ident"))
	s := litetest.Start(t, repo, litetest.Config{TCP: true})
	garbage := filepath.Join(t.TempDir(), "garbage.json")
	os.WriteFile(garbage, []byte("{not json"), 0o644)
	base := []string{"run", "--target", s.Addr, "--model", "ident", "--duration", "200ms", "--quiet"}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--model", "ident"}, exitUsage, "--target is required"},
		{[]string{"run", "--target", s.Addr}, exitUsage, "at least one --model is required"},
		{append(base, "--rate", "10", "--concurrency", "2"), exitUsage, "choose one schedule"},
		{append(base, "--rate", "lots"), exitUsage, `--rate: rate "lots"`},
		{append(base, "--ramp", "10"), exitUsage, "--ramp \"10\": want FROM:TO"},
		{append(base, "--burst", "1:2:3"), exitUsage, "want BASE:FACTOR:AT:FOR"},
		{append(base, "--sweep", "4:2"), exitUsage, "--sweep: sweep \"4:2\""},
		{append(base, "--arrival", "bursty"), exitUsage, "--arrival must be uniform or poisson"},
		{append(base, "--slo", "p99<=soon"), exitUsage, "--slo: SLO \"p99<=soon\""},
		{append(base, "--duration", "fast"), exitUsage, `invalid argument "fast" for "--duration"`},
		{append(base, "--model", "ident"), exitUsage, "--model ident given twice"},
		{append(base, "--header", "novalue"), exitUsage, "--header \"novalue\": want 'key: value'"},
		{append(base, "--input", "INPUT0=/no/such.pb"), exitError, "open /no/such.pb: no such file or directory"},
		{append(base, "--input", "INPUT0="+garbage), exitError, "garbage.json"},
		{append(base, "--shape", "INPUT0=1,x"), exitUsage, `dimension "x" is not a non-negative integer`},
		{append(base, "--input", "other/INPUT0=x.pb"), exitUsage, `input given for model "other", which is not a --model`},
		{[]string{"run", "--target", s.Addr, "--model", "nope", "--duration", "1s"}, exitError, "model nope: metadata: Request for unknown model: 'nope' is not found"},
		{[]string{"compare", "only.json"}, exitUsage, "compare needs two JSON results"},
		{[]string{"compare", garbage, garbage}, exitError, "not a loadtest JSON result"},
		{[]string{"report", garbage}, exitUsage, "--out is required"},
		{[]string{"run", "extra", "--target", s.Addr, "--model", "ident"}, exitUsage, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		code, _, errOut := loadtestCmd(t, tc.args...)
		line := strings.TrimSpace(errOut)
		if code != tc.code || !strings.Contains(line, tc.want) || strings.Contains(line, "\n") {
			t.Errorf("%v: exit %d, stderr %q; want %d and one line containing %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
