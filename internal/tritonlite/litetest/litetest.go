// Package litetest starts tritonlite servers for tests: in memory (bufconn)
// or on a loopback TCP port, with a client made from Triton's generated
// protos, and writes model directories for them.
package litetest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/proto/inference"
)

// Server is a started tritonlite with a connected client.
type Server struct {
	*tritonlite.Server
	Client   inference.GRPCInferenceServiceClient
	Conn     *grpc.ClientConn
	Registry *prometheus.Registry
	// Addr is the TCP address (host:port) when started with TCP.
	Addr string
	// Crashed receives when the crash fault fires.
	Crashed chan struct{}
	grpc    *grpc.Server
}

// Config adjusts the server options before start.
type Config struct {
	// TCP serves on 127.0.0.1:<random port> instead of in memory.
	TCP bool
	// Listen is the TCP address when TCP is set (default 127.0.0.1:0).
	Listen string
	// Options are passed through; Repository, ControlMode and Backends are
	// filled with defaults when empty (builtin backends, mode none).
	Options tritonlite.Options
	// ServerOptions are added to the gRPC server.
	ServerOptions []grpc.ServerOption
}

// Start starts a server on repo and stops it when the test ends.
func Start(t testing.TB, repo string, cfg Config) *Server {
	t.Helper()
	o := cfg.Options
	o.Repository = repo
	if o.ControlMode == "" {
		o.ControlMode = tritonlite.ModeNone
	}
	if o.Backends == nil {
		o.Backends = tritonlite.Builtins()
	}
	if o.Config == (pbtxt.Server{}) {
		o.Config = pbtxt.DefaultServer()
	}
	s := &Server{Registry: prometheus.NewRegistry(), Crashed: make(chan struct{}, 16)}
	if o.Registerer == nil {
		o.Registerer = s.Registry
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Crash == nil {
		o.Crash = func() { s.Crashed <- struct{}{} }
	}
	srv, err := tritonlite.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Server = srv
	s.grpc = grpc.NewServer(cfg.ServerOptions...)
	srv.Register(s.grpc)
	var dial grpc.DialOption
	target := "passthrough:///bufnet"
	if cfg.TCP {
		addr := cfg.Listen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = lis.Addr().String()
		target = s.Addr
		go s.grpc.Serve(lis)
	} else {
		lis := bufconn.Listen(1 << 20)
		go s.grpc.Serve(lis)
		dial = grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if dial != nil {
		opts = append(opts, dial)
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.Conn = conn
	s.Client = inference.NewGRPCInferenceServiceClient(conn)
	t.Cleanup(s.Stop)
	return s
}

// Stop closes the client, the gRPC server and the tritonlite server (idempotent).
func (s *Server) Stop() {
	s.Conn.Close()
	s.grpc.Stop()
	s.Server.Close()
}

// GRPC is the underlying gRPC server (to register more services, or to stop
// it abruptly).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// WriteModel writes repo/name/config.pbtxt and creates the version
// directories (version 1 if none is given).
func WriteModel(t testing.TB, repo, name, config string, versions ...int) string {
	t.Helper()
	dir := filepath.Join(repo, name)
	if len(versions) == 0 {
		versions = []int{1}
	}
	for _, v := range versions {
		if err := os.MkdirAll(filepath.Join(dir, strconv.Itoa(v)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, pbtxt.ConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Param renders a config parameter entry.
func Param(key, value string) string {
	return `parameters { key: "` + key + `" value { string_value: "` + value + `" } }` + "\n"
}

// Identity is a batching FP32 identity model config (INPUT0 → OUTPUT0, dims
// [4]) with extra config text appended.
func Identity(name string, extra ...string) string {
	c := `name: "` + name + `"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU count: 2 } ]
`
	for _, e := range extra {
		c += e + "\n"
	}
	return c
}
