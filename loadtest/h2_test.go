package loadtest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/loadtest"
)

// Both transports must measure the same things; these tests drive the lean
// HTTP/2 client through the corners of the protocol.

func TestTransportsAgree(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	capture := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		seen[strings.Join(md.Get("x-tenant"), ",")]++
		mu.Unlock()
		return h(ctx, req)
	})
	// A server allowing only 4 concurrent streams: the client must queue.
	s := server(t, map[string]string{"ident": litetest.Identity("ident")}, capture, grpc.MaxConcurrentStreams(4))
	w := workload(t, s, "ident", 1, loadtest.InputSpec{Variants: 3})
	for _, tr := range []string{loadtest.TransportH2, loadtest.TransportGRPC} {
		res, err := loadtest.Run(context.Background(), loadtest.Config{
			Target:    loadtest.Target{Address: s.Addr, Headers: map[string]string{"x-tenant": tr}, Connections: 2},
			Workloads: []loadtest.Workload{w}, Mode: loadtest.ClosedLoop, Concurrency: 16, Duration: 500 * time.Millisecond,
			Verify: true, Transport: tr,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Summary.Errors != 0 || res.Summary.OK == 0 {
			t.Fatalf("%s: %d ok, errors %v", tr, res.Summary.OK, res.Summary.Codes)
		}
		mu.Lock()
		got := seen[tr]
		mu.Unlock()
		if int64(got) < res.Summary.Requests {
			t.Errorf("%s: the server saw the tenant header on %d of %d requests", tr, got, res.Summary.Requests)
		}
	}
}

// TestLargeMessages: requests and responses far beyond one HTTP/2 frame and
// the default flow-control windows.
func TestLargeMessages(t *testing.T) {
	s := server(t, map[string]string{"big": `name: "big" backend: "identity" max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 300000 ] } ] output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 300000 ] } ]`})
	w := workload(t, s, "big", 1, loadtest.InputSpec{Variants: 1})
	if n := len(w.Requests[0].Bytes()); n < 1_200_000 {
		t.Fatalf("request of %d bytes", n)
	}
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Target: loadtest.Target{Address: s.Addr}, Workloads: []loadtest.Workload{w},
		Mode: loadtest.ClosedLoop, Concurrency: 3, Duration: 500 * time.Millisecond, Verify: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Errors != 0 || res.Summary.OK < 3 {
		t.Fatalf("%d ok, errors %v", res.Summary.OK, res.Summary.Codes)
	}
}

func TestDeadlines(t *testing.T) {
	s := server(t, map[string]string{"hang": litetest.Identity("hang", litetest.Param("fault_hang_rate", "1"))})
	w := workload(t, s, "hang", 1, loadtest.InputSpec{})
	for _, tr := range []string{loadtest.TransportH2, loadtest.TransportGRPC} {
		res, err := loadtest.Run(context.Background(), loadtest.Config{
			Target: loadtest.Target{Address: s.Addr}, Workloads: []loadtest.Workload{w},
			Mode: loadtest.OpenLoop, Profile: loadtest.Constant(50, time.Second), Timeout: 100 * time.Millisecond, Transport: tr,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Summary.Codes["DeadlineExceeded"] != 50 {
			t.Errorf("%s: errors %v, want 50 DeadlineExceeded", tr, res.Summary.Codes)
		}
		if res.Summary.Latency.P50 < 95 || res.Summary.Latency.Max > 2000 {
			t.Errorf("%s: latency p50 %.1fms max %.1fms for 100ms deadlines", tr, res.Summary.Latency.P50, res.Summary.Latency.Max)
		}
	}
}

// TestServerGoesAway: the server drains (GOAWAY) in the middle of a run; the
// client fails only what the server refused and reconnects.
func TestServerGoesAway(t *testing.T) {
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "ident", litetest.Identity("ident", litetest.Param("fault_latency", "2ms")))
	lite := litetest.Start(t, repo, litetest.Config{})
	addr := lite.Addr
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = lis.Addr().String()
	first := grpc.NewServer()
	lite.Server.Register(first)
	go first.Serve(lis)
	w := workload(t, &litetest.Server{Client: lite.Client}, "ident", 1, loadtest.InputSpec{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		first.GracefulStop() // GOAWAY, then the listener closes
		lis2, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		second := grpc.NewServer()
		lite.Server.Register(second)
		go second.Serve(lis2)
		t.Cleanup(second.Stop)
	}()
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Target: loadtest.Target{Address: addr}, Workloads: []loadtest.Workload{w},
		Mode: loadtest.OpenLoop, Profile: loadtest.Constant(200, 1500*time.Millisecond),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.OK < 200 {
		t.Fatalf("only %d of %d succeeded across the restart (errors %v)", res.Summary.OK, res.Summary.Requests, res.Summary.Codes)
	}
	for code := range res.Summary.Codes {
		if code != "Unavailable" {
			t.Errorf("unexpected error code %s", code)
		}
	}
	t.Logf("%d ok, errors %v", res.Summary.OK, res.Summary.Codes)
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	s := server(t, map[string]string{"ident": litetest.Identity("ident")}, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	target := loadtest.Target{Address: s.Addr, TLS: &tls.Config{RootCAs: pool}}
	conn, err := loadtest.Dial(target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reqs, err := loadtest.BuildRequests(context.Background(), inferenceClient(conn), "ident", loadtest.InputSpec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{loadtest.TransportH2, loadtest.TransportGRPC} {
		res, err := loadtest.Run(context.Background(), loadtest.Config{Target: target, Workloads: []loadtest.Workload{{Model: "ident", Requests: reqs}},
			Mode: loadtest.ClosedLoop, Concurrency: 2, Duration: 300 * time.Millisecond, Transport: tr}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Summary.Errors != 0 || res.Summary.OK == 0 {
			t.Fatalf("%s over TLS: %d ok, %v", tr, res.Summary.OK, res.Summary.Codes)
		}
	}
	// Without the CA the handshake fails clearly.
	_, err = loadtest.Run(context.Background(), loadtest.Config{Target: loadtest.Target{Address: s.Addr, TLS: &tls.Config{}},
		Workloads: []loadtest.Workload{{Model: "ident", Requests: reqs}}, Mode: loadtest.ClosedLoop, Concurrency: 1, Duration: 100 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server: %v", err)
	}
}
