package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServeAndDrain runs the real binary: it serves a repository, answers a
// client made from Triton's protos, exposes Triton's metrics, and on SIGTERM
// finishes the request in flight before exiting 0.
func TestServeAndDrain(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tritonlite")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "slow", litetest.Identity("slow", litetest.Param("fault_latency", "500ms")))
	grpcPort, metricsPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--model-repository", repo, "--grpc-port", strconv.Itoa(grpcPort), "--metrics-port", strconv.Itoa(metricsPort), "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := inference.NewGRPCInferenceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		r, err := c.ServerReady(ctx, &inference.ServerReadyRequest{}, grpc.WaitForReady(true))
		if err == nil && r.Ready {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	req := &inference.ModelInferRequest{ModelName: "slow", Inputs: []*inference.ModelInferRequest_InferInputTensor{{
		Name: "INPUT0", Datatype: "FP32", Shape: []int64{1, 4}, Contents: &inference.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}}}
	done := make(chan error, 1)
	go func() {
		_, err := c.ModelInfer(ctx, req)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the request is executing
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `nv_inference_pending_request_count{model="slow",version="1"}`) {
		t.Fatalf("metrics:\n%s", body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("in-flight request failed during drain: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
}

func TestBadFlags(t *testing.T) {
	repo := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "exactly one --model-repository is needed, got 0"},
		{[]string{"--model-repository", "/no/such/dir"}, "repository path is not a valid directory: /no/such/dir"},
		{[]string{"--model-repository", repo, "--model-control-mode", "sometimes"}, `unknown model control mode "sometimes"`},
		{[]string{"--model-repository", repo, "--load-model", "x"}, "--load-model is only allowed with --model-control-mode=explicit"},
		{[]string{"--model-repository", repo, "--backend-config", "tensorflow,version=2"}, "only onnxruntime,default-max-batch-size=N is supported"},
		{[]string{"--model-repository", repo, "--grpc-port", "http"}, `invalid argument "http" for "--grpc-port"`},
		{[]string{"--model-repository", repo, "--log-format", "xml"}, "--log-format must be default or json"},
		{[]string{"--model-repository", repo, "--load-delay", "soon"}, `invalid argument "soon" for "--load-delay"`},
		{[]string{"--model-repository", repo, "--load-delay", "-1s"}, "--load-delay must not be negative, got -1s"},
	}
	for _, tc := range tests {
		var stderr bytes.Buffer
		code := run(tc.args, &stderr)
		out := strings.TrimSpace(stderr.String())
		if code != 1 || !strings.Contains(out, tc.want) || strings.Contains(out, "\n") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and one line containing %q", tc.args, code, out, tc.want)
		}
	}
}

// TestLoadDelayFlag: --load-delay holds every load in LOADING (the server is
// not ready meanwhile), and SIGTERM still exits at once.
func TestLoadDelayFlag(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tritonlite")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "m", litetest.Identity("m"))
	grpcPort := freePort(t)
	cmd := exec.Command(bin, "--model-repository", repo, "--model-control-mode", "explicit", "--load-delay", "1h",
		"--grpc-port", strconv.Itoa(grpcPort), "--grpc-address", "127.0.0.1", "--allow-metrics=false")
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := inference.NewGRPCInferenceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.ServerReady(ctx, &inference.ServerReadyRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = c.RepositoryModelLoad(short, &inference.RepositoryModelLoadRequest{ModelName: "m"})
	cancelShort()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a load with an hour's delay: %v", err)
	}
	idx, err := c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Models) != 1 || idx.Models[0].State != "LOADING" {
		t.Fatalf("index during the delay: %v", idx.Models)
	}
	if r, err := c.ServerReady(ctx, &inference.ServerReadyRequest{}); err != nil || r.Ready {
		t.Fatalf("ServerReady during a load: %v, %v", r, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("SIGTERM waited for the load delay\n%s", logs.String())
	}
}

// lockedBuffer is a bytes.Buffer a child process writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
