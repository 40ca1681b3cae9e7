package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("pools:\n  - {name: cpu, endpoints: [\"triton:8001\"]}\nroutes:\n  - {model: m, pool: cpu}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("pools:\n  - {name: cpu, endpoints: [\"triton\"]}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "catalog.yaml"), []byte("models:\n  - {name: m, source: \"s3://bkt/m/\", pools: [cpu]}\n  - {name: a, source: \"s3://bkt/a/\", pools: [cpu, gpu]}\n"), 0o644)
	withCat := filepath.Join(dir, "withcat.yaml")
	os.WriteFile(withCat, []byte("catalog: catalog.yaml\npools:\n  - {name: cpu, endpoints: [\"triton:8001\"]}\nroutes:\n  - {model: m, pool: cpu}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "gpucat.yaml"), []byte("models:\n  - {name: big, source: \"s3://bkt/big/\", pools: [gpu]}\n"), 0o644)
	unknownPool := filepath.Join(dir, "unknownpool.yaml")
	os.WriteFile(unknownPool, []byte("catalog: gpucat.yaml\npools:\n  - {name: cpu, endpoints: [\"triton:8001\"]}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "badcat.yaml"), []byte("models:\n  - {name: x, source: \"s3://bkt/x/\", pool: [cpu]}\n"), 0o644)
	s3Cat := filepath.Join(dir, "s3cat.yaml")
	os.WriteFile(s3Cat, []byte("catalog: s3://bkt/catalog.yaml\npools:\n  - {name: cpu, endpoints: [\"triton:8001\"]}\n"), 0o644)
	badCat := filepath.Join(dir, "badcatcfg.yaml")
	os.WriteFile(badCat, []byte("catalog: badcat.yaml\npools:\n  - {name: cpu, endpoints: [\"triton:8001\"]}\n"), 0o644)
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"check", []string{"--config", good, "--check"}, 0, "1 pools, 1 routes: ok", ""},
		{"invalid", []string{"--config", bad, "--check"}, 1, "", `gateway: ` + bad + `: pools[0] (cpu).endpoints[0] "triton": want host:port`},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, 1, "", "no such file or directory"},
		{"routes from the catalog", []string{"--config", withCat, "--check"}, 0, "1 pools, 2 routes (1 from the catalog " + filepath.Join(dir, "catalog.yaml") + "): ok", ""},
		{"catalog pool unknown", []string{"--config", unknownPool, "--check"}, 1, "", `model big: pool "gpu" is not one of the gateway's pools (cpu)`},
		{"s3 catalog", []string{"--config", s3Cat, "--check"}, 1, "", "the gateway reads a catalog file"},
		{"bad catalog", []string{"--config", badCat, "--check"}, 1, "", "badcat.yaml:2:38: models[0].pool: unknown field"},
		{"no config", nil, 1, "", "gateway: --config is required"},
		{"bad flag", []string{"--confg", good}, 1, "", "unknown flag: --confg"},
		{"help", []string{"--help"}, 0, "SIGTERM drains", ""},
		{"log level", []string{"--config", good, "--log-level", "loud"}, 1, "", `--log-level "loud"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errb.String(), c.code, c.stdout, c.stderr)
			}
			if c.code != 0 && strings.Count(strings.TrimSpace(errb.String()), "\n") > 0 {
				t.Errorf("error is not one line: %q", errb.String())
			}
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape reads one sample from the gateway's /metrics.
func scrape(t *testing.T, metricsAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
	}
	return 0
}

// TestBinaryReloadsAndDrains runs the real binary, built without cgo, in
// front of two tritonlite backends: it serves, follows edits of its
// configuration file (and SIGHUP) under load without failing a request,
// keeps serving on a broken edit, and on SIGTERM reports not ready, finishes
// the requests in flight and exits 0.
func TestBinaryReloadsAndDrains(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gateway")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // the gateway must not need cgo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "m", litetest.Identity("m", `version_policy { all {} }`), 1, 2)
	litetest.WriteModel(t, repo, "slow", litetest.Identity("slow", litetest.Param("fault_latency", "400ms")))
	litetest.WriteModel(t, repo, "fromcat", litetest.Identity("fromcat"))
	opts := tritonlite.Options{ControlMode: tritonlite.ModeExplicit, StartupModels: []string{"*"}}
	a := litetest.Start(t, repo, litetest.Config{TCP: true, Options: opts})
	b := litetest.Start(t, repo, litetest.Config{TCP: true, Options: opts})

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gateway.yaml")
	catPath := filepath.Join(dir, "catalog.yaml")
	writeCatalog := func(models ...string) {
		t.Helper()
		y := "models:\n"
		for _, m := range models {
			y += fmt.Sprintf("  - {name: %s, source: \"s3://models/%s/\", pools: [cpu]}\n", m, m)
		}
		if err := os.WriteFile(catPath+".tmp", []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(catPath+".tmp", catPath); err != nil {
			t.Fatal(err)
		}
	}
	writeCatalog("m") // m has its own route: the gateway's settings win
	writeCfg := func(version string) {
		t.Helper()
		y := fmt.Sprintf(`drain_delay: 300ms
catalog: catalog.yaml
drain_timeout: 10s
pools:
  - name: cpu
    endpoints: [%s, %s]
    health: {interval: 100ms}
routes:
  - model: m
    pool: cpu
    versions: [{version: "%s", weight: 1}]
  - {model: slow, pool: cpu}
`, a.Addr, b.Addr, version)
		// Written beside and renamed, as editors and ConfigMaps do.
		tmp := cfgPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("1")
	listen, metrics := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--config", cfgPath, "--listen", listen, "--metrics-listen", metrics)
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})

	conn, err := grpc.NewClient(listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := inference.NewGRPCInferenceServiceClient(conn)
	req := func(model string) *inference.ModelInferRequest {
		r := &inference.ModelInferRequest{ModelName: model}
		tensor.SetRequestInputs(r, []tensor.Tensor{tensor.Of("INPUT0", []int64{1, 4}, []float32{1, 2, 3, 4})})
		return r
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: "m", Version: "1"}, grpc.WaitForReady(true))
		if err == nil && r.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Load while the file changes.
	var stop atomic.Bool
	var failures atomic.Int64
	var lastVersion atomic.Value
	var wg sync.WaitGroup
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r, err := c.ModelInfer(context.Background(), req("m"))
				if err != nil {
					if failures.Add(1) == 1 {
						t.Errorf("request failed during a reload: %v", err)
					}
					continue
				}
				lastVersion.Store(r.ModelVersion)
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	okReloads := `gateway_config_reloads_total{result="ok"}`
	waitFor("version 1 traffic", func() bool { return lastVersion.Load() == "1" })
	writeCfg("2")
	waitFor("the edit to route to version 2", func() bool { return lastVersion.Load() == "2" })
	n := scrape(t, metrics, okReloads)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("SIGHUP reload", func() bool { return scrape(t, metrics, okReloads) > n })
	os.WriteFile(cfgPath, []byte("pools: [\n"), 0o644)
	waitFor("the broken edit to be refused", func() bool { return scrape(t, metrics, `gateway_config_reloads_total{result="error"}`) >= 1 })
	writeCfg("1")
	waitFor("version 1 again", func() bool { return lastVersion.Load() == "1" })
	// A model added to the catalog gets a route: no edit of the gateway's file.
	if _, err := c.ModelInfer(context.Background(), req("fromcat")); status.Code(err) != codes.NotFound {
		t.Errorf("fromcat before the catalog has it: %v, want NotFound", err)
	}
	writeCatalog("m", "fromcat")
	waitFor("the catalog's new model to be routed", func() bool {
		_, err := c.ModelInfer(context.Background(), req("fromcat"))
		return err == nil
	})
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d requests failed across reloads", failures.Load())
	}

	// Drain: slow requests in flight when SIGTERM arrives all finish.
	const inflight = 8
	results := make(chan error, inflight)
	for range inflight {
		go func() {
			_, err := c.ModelInfer(context.Background(), req("slow"))
			results <- err
		}()
	}
	waitFor("requests in flight", func() bool { return scrape(t, metrics, "gateway_in_flight_requests") == inflight })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("readiness to turn false", func() bool {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	for range inflight {
		if err := <-results; err != nil {
			t.Errorf("request in flight lost in the drain: %v", err)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("gateway exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), `"msg":"drained"`) {
		t.Errorf("no drained log line")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)
