package loadtest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/loadtest"
	"github.com/tritongate/tritongate/proto/inference"
)

func server(t *testing.T, models map[string]string, opts ...grpc.ServerOption) *litetest.Server {
	t.Helper()
	repo := t.TempDir()
	for name, cfg := range models {
		litetest.WriteModel(t, repo, name, cfg)
	}
	return litetest.Start(t, repo, litetest.Config{TCP: true, ServerOptions: opts})
}

func workload(t *testing.T, s *litetest.Server, model string, weight int, spec loadtest.InputSpec) loadtest.Workload {
	t.Helper()
	reqs, err := loadtest.BuildRequests(context.Background(), s.Client, model, spec)
	if err != nil {
		t.Fatal(err)
	}
	return loadtest.Workload{Model: model, Weight: weight, Requests: reqs}
}

func TestOpenLoopHitsRate(t *testing.T) {
	s := server(t, map[string]string{"ident": litetest.Identity("ident")})
	w := workload(t, s, "ident", 1, loadtest.InputSpec{})
	profiles := map[string]loadtest.Profile{
		"constant": loadtest.Constant(400, 2*time.Second),
		"ramp":     loadtest.Ramp(100, 700, 2*time.Second),
		"steps":    {{Duration: time.Second, From: 200, To: 200}, {Duration: time.Second, From: 500, To: 500}},
		"burst":    loadtest.Burst(200, 4, 500*time.Millisecond, time.Second, 2*time.Second),
	}
	for name, p := range profiles {
		for _, arrival := range []loadtest.Arrival{loadtest.Uniform, loadtest.Poisson} {
			t.Run(name+"/"+string(arrival), func(t *testing.T) {
				start := time.Now()
				res, err := loadtest.Run(context.Background(), loadtest.Config{
					Target: loadtest.Target{Address: s.Addr}, Workloads: []loadtest.Workload{w},
					Mode: loadtest.OpenLoop, Profile: p, Arrival: arrival, Seed: 1,
				}, nil)
				if err != nil {
					t.Fatal(err)
				}
				want := p.Expected(p.Duration()) / p.Duration().Seconds()
				if got := res.SendRate; math.Abs(got-want)/want > 0.01 {
					t.Errorf("sent %.1f req/s, target %.1f", got, want)
				}
				if got := res.Summary.Throughput; math.Abs(got-want)/want > 0.01 {
					t.Errorf("throughput %.1f req/s, target %.1f", got, want)
				}
				if res.Summary.Errors != 0 {
					t.Errorf("%d errors", res.Summary.Errors)
				}
				if el := time.Since(start); el < p.Duration()-100*time.Millisecond {
					t.Errorf("a %s profile finished in %s", p.Duration(), el)
				}
			})
		}
	}
}

// TestStallShows: the server stops answering for one second. Measured from
// each request's intended send time, open loop shows the stall in p99 and
// max; a closed loop, whose clients simply wait, shows it only in max.
func TestStallShows(t *testing.T) {
	var stallUntil atomic.Int64
	stall := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if d := time.Until(time.Unix(0, stallUntil.Load())); d > 0 {
			time.Sleep(d)
		}
		return h(ctx, req)
	})
	s := server(t, map[string]string{"ident": litetest.Identity("ident")}, stall)
	w := workload(t, s, "ident", 1, loadtest.InputSpec{})
	run := func(cfg loadtest.Config) *loadtest.Result {
		cfg.Target = loadtest.Target{Address: s.Addr}
		cfg.Workloads = []loadtest.Workload{w}
		go func() {
			time.Sleep(1500 * time.Millisecond)
			stallUntil.Store(time.Now().Add(time.Second).UnixNano())
		}()
		res, err := loadtest.Run(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	open := run(loadtest.Config{Mode: loadtest.OpenLoop, Profile: loadtest.Constant(200, 4*time.Second), Arrival: loadtest.Uniform})
	closed := run(loadtest.Config{Mode: loadtest.ClosedLoop, Concurrency: 2, Duration: 4 * time.Second})
	t.Logf("open loop:   p50 %.2fms p99 %.1fms max %.1fms (%d requests)", open.Summary.Latency.P50, open.Summary.Latency.P99, open.Summary.Latency.Max, open.Summary.Requests)
	t.Logf("closed loop: p50 %.2fms p99 %.1fms max %.1fms (%d requests)", closed.Summary.Latency.P50, closed.Summary.Latency.P99, closed.Summary.Latency.Max, closed.Summary.Requests)
	if open.Summary.Latency.P99 < 500 || open.Summary.Latency.Max < 900 {
		t.Errorf("open loop hides the 1s stall: p99 %.1fms, max %.1fms", open.Summary.Latency.P99, open.Summary.Latency.Max)
	}
	if closed.Summary.Latency.Max < 900 {
		t.Errorf("closed loop max %.1fms, the stall should show there", closed.Summary.Latency.Max)
	}
	if closed.Summary.Latency.P99 > 100 {
		t.Errorf("closed loop p99 %.1fms: expected the stall to be hidden below p99", closed.Summary.Latency.P99)
	}
}

func identityOf(name, dt string) string {
	return `name: "` + name + `" backend: "identity" max_batch_size: 4
input [ { name: "IN" data_type: ` + dt + ` dims: [ 2, -1 ] } ] output [ { name: "OUT" data_type: ` + dt + ` dims: [ 2, -1 ] } ]`
}

// TestEveryDatatype generates inputs of every datatype and has tritonlite
// accept them (responses decoded and checked).
func TestEveryDatatype(t *testing.T) {
	models := map[string]string{}
	for _, dt := range tensor.All {
		models["m_"+strings.ToLower(dt.String())] = identityOf("m_"+strings.ToLower(dt.String()), dt.Config().String())
	}
	s := server(t, models)
	var ws []loadtest.Workload
	for name := range models {
		ws = append(ws, workload(t, s, name, 1, loadtest.InputSpec{Batch: 3, Shapes: map[string][]int64{"IN": {3, 2, 5}}, Variants: 2}))
	}
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Target: loadtest.Target{Address: s.Addr}, Workloads: ws, Mode: loadtest.ClosedLoop, Concurrency: 4, Duration: 500 * time.Millisecond, Verify: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Errors != 0 {
		t.Fatalf("errors: %v", res.Summary.Codes)
	}
	for name, st := range res.PerModel {
		if st.OK == 0 {
			t.Errorf("%s: no successful requests", name)
		}
	}
	if res.Summary.Inferences != 3*res.Summary.Throughput {
		t.Errorf("inferences/s %.1f, want 3 rows per request (%.1f req/s)", res.Summary.Inferences, res.Summary.Throughput)
	}
}

func TestSweepMixAndErrors(t *testing.T) {
	s := server(t, map[string]string{
		"ident":   litetest.Identity("ident"),
		"failing": litetest.Identity("failing", litetest.Param("fault_error_rate", "1"), litetest.Param("fault_error_code", "RESOURCE_EXHAUSTED")),
	})
	ws := []loadtest.Workload{workload(t, s, "ident", 3, loadtest.InputSpec{}), workload(t, s, "failing", 1, loadtest.InputSpec{})}
	var progress []loadtest.Progress
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Target:    loadtest.Target{Address: s.Addr, Connections: 2, Headers: map[string]string{"x-tenant": "team-a"}},
		Workloads: ws, Mode: loadtest.Sweep, Levels: []int{1, 4}, StepDuration: 700 * time.Millisecond, Warmup: 200 * time.Millisecond,
	}, func(p loadtest.Progress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 || res.Steps[1].Concurrency != 4 || res.Steps[0].Requests == 0 {
		t.Fatalf("steps: %+v", res.Steps)
	}
	ok, bad := res.PerModel["ident"], res.PerModel["failing"]
	if ratio := float64(ok.Requests) / float64(bad.Requests); ratio < 2.9 || ratio > 3.1 {
		t.Errorf("weights 3:1 gave %d:%d requests", ok.Requests, bad.Requests)
	}
	if bad.Errors != bad.Requests || res.Summary.Codes["ResourceExhausted"] != bad.Requests {
		t.Errorf("errors by code: %v (failing model: %d requests)", res.Summary.Codes, bad.Requests)
	}
	if len(progress) == 0 {
		t.Error("no progress reported")
	}
}

func TestReports(t *testing.T) {
	s := server(t, map[string]string{"ident": litetest.Identity("ident")})
	w := workload(t, s, "ident", 1, loadtest.InputSpec{})
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Target: loadtest.Target{Address: s.Addr}, Workloads: []loadtest.Workload{w},
		Mode: loadtest.OpenLoop, Profile: loadtest.Constant(300, 2*time.Second), Arrival: loadtest.Poisson, Window: 500 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := loadtest.WriteReport(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 7 {
		t.Fatalf("wrote %v", files)
	}
	// The HTML parses, and every image it shows is a decodable PNG.
	f, err := os.Open(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var imgs int
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "img" {
			for _, a := range n.Attr {
				if a.Key == "src" {
					b64, ok := strings.CutPrefix(a.Val, "data:image/png;base64,")
					if !ok {
						t.Errorf("img src %.40q is not an embedded PNG", a.Val)
					}
					raw, err := base64.StdEncoding.DecodeString(b64)
					if err != nil {
						t.Fatal(err)
					}
					img, err := png.Decode(bytes.NewReader(raw))
					if err != nil || img.Bounds().Dx() < 100 {
						t.Errorf("embedded image: %v", err)
					}
					imgs++
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if imgs != 4 {
		t.Errorf("%d images in the report, want 4", imgs)
	}
	back, err := loadtest.ReadJSON(filepath.Join(dir, "report.json"))
	if err != nil || back.Summary.Requests != res.Summary.Requests || len(back.Windows) != len(res.Windows) {
		t.Fatalf("JSON round trip: %v", err)
	}
	csvData, _ := os.ReadFile(filepath.Join(dir, "report.csv"))
	if rows := strings.Count(string(csvData), "\n"); rows != len(res.Windows)+1 {
		t.Errorf("CSV has %d lines for %d windows", rows, len(res.Windows))
	}
	var sum bytes.Buffer
	loadtest.WriteSummary(&sum, res)
	loadtest.WriteComparison(&sum, res, back)
	if !strings.Contains(sum.String(), "p99") || !strings.Contains(sum.String(), "+0.0%") {
		t.Errorf("summary/comparison:\n%s", sum.String())
	}
}

func TestSLOs(t *testing.T) {
	slos, err := loadtest.ParseSLOs("p99<=20ms, errors<=0.1%, rps>=1k, max<2s, errors<=3")
	if err != nil {
		t.Fatal(err)
	}
	good := loadtest.Stats{Requests: 10000, OK: 9999, Errors: 1, ErrorRate: 0.0001, Throughput: 1500, Latency: loadtest.Latency{P99: 12, Max: 900}}
	if v := loadtest.Check(good, slos); len(v) != 0 {
		t.Fatalf("violations %v", v)
	}
	bad := loadtest.Stats{Requests: 1000, OK: 990, Errors: 10, ErrorRate: 0.01, Throughput: 500, Latency: loadtest.Latency{P99: 25, Max: 3000}}
	v := loadtest.Check(bad, slos)
	if len(v) != 5 || !strings.Contains(v[0].String(), "SLO p99<=20ms violated: p99 was 25ms") || !strings.Contains(v[1].String(), "error rate was 1%") {
		t.Fatalf("violations %v", v)
	}
	for _, badSLO := range []string{"p99", "p99<=fast", "latency<=1ms", "errors<=x%", "rps>=-1", ""} {
		if _, err := loadtest.ParseSLOs(badSLO); err == nil {
			t.Errorf("ParseSLOs(%q) accepted", badSLO)
		}
	}
}

func TestInputFiles(t *testing.T) {
	s := server(t, map[string]string{
		"ident": litetest.Identity("ident"),
		"words": `name: "words" backend: "identity" max_batch_size: 0 input [ { name: "IN" data_type: TYPE_STRING dims: [ 2 ] } ] output [ { name: "OUT" data_type: TYPE_STRING dims: [ 2 ] } ]`,
	})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw := make([]byte, 2*4*4)
	files := map[string]loadtest.InputSpec{
		"json tensor": {Files: map[string]string{"INPUT0": write("t.json", `{"shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8]]}`)}},
		"json array":  {Shapes: map[string][]int64{"INPUT0": {1, 4}}, Files: map[string]string{"INPUT0": write("a.json", `[1,2,3,4]`)}},
		"raw":         {Shapes: map[string][]int64{"INPUT0": {2, 4}}, Files: map[string]string{"INPUT0": write("x.bin", string(raw))}},
		"request":     {Request: write("req.json", `{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)},
	}
	for name, spec := range files {
		reqs, err := loadtest.BuildRequests(context.Background(), s.Client, "ident", spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var req inference.ModelInferRequest
		if err := proto.Unmarshal(reqs[0].Bytes(), &req); err != nil {
			t.Fatal(err)
		}
		ins, err := tensor.RequestInputs(&req)
		if err != nil || len(ins) != 1 || ins[0].Validate() != nil {
			t.Fatalf("%s: request inputs %v %v", name, ins, err)
		}
		// The server accepts it.
		if _, err := s.Client.ModelInfer(context.Background(), &req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	bad := map[string]loadtest.InputSpec{
		"missing file":  {Files: map[string]string{"INPUT0": filepath.Join(dir, "nope.pb")}},
		"unknown input": {Files: map[string]string{"IMAGE": write("i.json", `[1]`)}},
		"wrong count":   {Files: map[string]string{"INPUT0": write("c.json", `{"shape":[1,4],"datatype":"FP32","data":[1,2]}`)}},
		"wrong type":    {Files: map[string]string{"INPUT0": write("d.json", `{"shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}`)}},
		"raw no shape":  {Files: map[string]string{"INPUT0": write("y.bin", "abcd")}},
		"garbage pb":    {Files: map[string]string{"INPUT0": write("g.pb", "\xff\xff\xff")}},
		"bad request":   {Request: write("bad.json", `{"inputs":[]}`)},
	}
	for name, spec := range bad {
		if _, err := loadtest.BuildRequests(context.Background(), s.Client, "ident", spec); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := loadtest.BuildRequests(context.Background(), s.Client, "words", loadtest.InputSpec{Files: map[string]string{"IN": write("w.json", `["a","b"]`)}, Shapes: map[string][]int64{"IN": {2}}}); err != nil {
		t.Fatal(err)
	}
}

func inferenceClient(conn *grpc.ClientConn) inference.GRPCInferenceServiceClient {
	return inference.NewGRPCInferenceServiceClient(conn)
}
