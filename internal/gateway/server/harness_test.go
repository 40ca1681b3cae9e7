package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tritongate/tritongate/internal/gateway/config"
	"github.com/tritongate/tritongate/internal/gateway/server"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// backend starts a tritonlite on loopback with the given models (name →
// config) in explicit mode with everything loaded.
func backend(t *testing.T, models map[string]string, versions ...int) *litetest.Server {
	t.Helper()
	return backendAt(t, t.TempDir(), models, versions...)
}

// backendAt is backend with its repository in repo (to change models later).
func backendAt(t *testing.T, repo string, models map[string]string, versions ...int) *litetest.Server {
	t.Helper()
	for name, cfg := range models {
		litetest.WriteModel(t, repo, name, cfg, versions...)
	}
	backends := tritonlite.Builtins()
	backends["double"] = doubleBackend{}
	// Triton takes messages up to 2 GiB; grpc-go's default is 4 MiB.
	big := []grpc.ServerOption{grpc.MaxRecvMsgSize(1 << 30), grpc.MaxSendMsgSize(1 << 30)}
	return litetest.Start(t, repo, litetest.Config{TCP: true, ServerOptions: big, Options: tritonlite.Options{
		ControlMode: tritonlite.ModeExplicit, StartupModels: []string{"*"}, Backends: backends}})
}

// gw is a gateway under test with a client made from Triton's protos.
type gw struct {
	srv    *server.Server
	client inference.GRPCInferenceServiceClient
	conn   *grpc.ClientConn
	reg    *prometheus.Registry
	addr   string
}

// startGateway parses the YAML config (with {name} placeholders replaced by
// backend addresses) and serves it on loopback.
func startGateway(t *testing.T, yaml string, addrs map[string]string, opts ...func(*server.Options)) *gw {
	t.Helper()
	for k, v := range addrs {
		yaml = strings.ReplaceAll(yaml, "{"+k+"}", v)
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	reg := prometheus.NewRegistry()
	o := server.Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range opts {
		f(&o)
	}
	srv, err := server.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{srv: srv, client: inference.NewGRPCInferenceServiceClient(conn), conn: conn, reg: reg, addr: lis.Addr().String()}
	t.Cleanup(func() {
		conn.Close()
		srv.Close()
	})
	return g
}

// waitReady waits until the gateway reports the model (version) ready.
func (g *gw) waitReady(t *testing.T, model, version string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := g.client.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: model, Version: version})
		if err == nil && r.Ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("model %s version %q never became ready through the gateway (%v)", model, version, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric reads a counter/gauge value (sum over series matching labels).
func (g *gw) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if match(m, labels) {
				switch {
				case m.GetCounter() != nil:
					sum += m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					sum += m.GetGauge().GetValue()
				case m.GetHistogram() != nil:
					sum += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return sum
}

func match(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func identity(name string, extra ...string) string { return litetest.Identity(name, extra...) }

func request(model string, vals ...float32) *inference.ModelInferRequest {
	if len(vals) == 0 {
		vals = []float32{1, 2, 3, 4}
	}
	req := &inference.ModelInferRequest{ModelName: model}
	tensor.SetRequestInputs(req, []tensor.Tensor{tensor.Of("INPUT0", []int64{1, 4}, vals)})
	return req
}

// served counts the requests a backend executed for a model.
func served(t *testing.T, b *litetest.Server, model string) uint64 {
	t.Helper()
	st, err := b.Client.ModelStatistics(context.Background(), &inference.ModelStatisticsRequest{Name: model})
	if err != nil {
		return 0
	}
	var n uint64
	for _, s := range st.ModelStats {
		n += s.InferenceStats.Success.Count + s.InferenceStats.Fail.Count
	}
	return n
}

func addrs(kv ...any) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(*litetest.Server).Addr
	}
	return m
}
