package tritonlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// What Triton 2.51 reports while a version loads and unloads (probed with
// interop/triton/slow, 1.5 s in initialize): the loading version is LOADING
// with an empty reason and not ready; versions already serving stay READY and
// keep answering; with strict readiness the server is not ready while any
// version is LOADING or UNLOADING, but stays ready while a serving version is
// loaded again beside itself; a version that the new load leaves out is
// UNLOADING until its requests are done, then UNAVAILABLE "unloaded".

// gate is a backend whose executors, while armed, wait at creation until
// released: a load held in progress for as long as a test needs.
type gate struct {
	armed   atomic.Bool
	entered chan int64
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan int64, 16), release: make(chan struct{})}
}

func (g *gate) backends() map[string]tritonlite.Backend {
	b := tritonlite.Builtins()
	identity := b["identity"]
	b["gated"] = tritonlite.BackendFunc(func(ctx context.Context, inst tritonlite.Instance) (tritonlite.Executor, error) {
		if g.armed.Load() {
			g.entered <- inst.Version
			<-g.release
		}
		return identity.NewExecutor(ctx, inst)
	})
	return b
}

func gatedModel(extra ...string) string {
	return `name: "m"
backend: "gated"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
` + strings.Join(extra, "\n")
}

// indexOf renders RepositoryIndex as "name/version state reason" lines.
func indexOf(t *testing.T, c inference.GRPCInferenceServiceClient) []string {
	t.Helper()
	idx, err := c.RepositoryIndex(context.Background(), &inference.RepositoryIndexRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range idx.Models {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s/%s %s %s", m.Name, m.Version, m.State, m.Reason)))
	}
	return out
}

func serverReady(t *testing.T, c inference.GRPCInferenceServiceClient) bool {
	t.Helper()
	r, err := c.ServerReady(context.Background(), &inference.ServerReadyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Ready
}

func healthServing(t *testing.T, h *harness) bool {
	t.Helper()
	r, err := healthpb.NewHealthClient(h.lite.Conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status == healthpb.HealthCheckResponse_SERVING
}

func modelReady(t *testing.T, c inference.GRPCInferenceServiceClient, version string) bool {
	t.Helper()
	r, err := c.ModelReady(context.Background(), &inference.ModelReadyRequest{Name: "m", Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return r.Ready
}

// eventually polls cond until it holds (generous deadline, no timing
// assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func loadReq(name string) *inference.RepositoryModelLoadRequest {
	return &inference.RepositoryModelLoadRequest{ModelName: name}
}

func TestReadinessDuringLoad(t *testing.T) {
	inferV := func(c inference.GRPCInferenceServiceClient, version string) (string, error) {
		r := fp32Request("m", 1, seq(4, 0)...)
		r.ModelVersion = version
		resp, err := c.ModelInfer(context.Background(), r)
		if err != nil {
			return "", err
		}
		return resp.ModelVersion, nil
	}
	type errWant struct {
		version string
		code    codes.Code
		msg     string
	}
	tests := []struct {
		name      string
		nonStrict bool
		// setup writes the repository and loads what serves before the
		// load under test (the gate is open); change prepares that load.
		setup  func(t *testing.T, repo string, c inference.GRPCInferenceServiceClient)
		change func(t *testing.T, repo string)
		// While the load is held.
		index      []string
		ready      bool
		modelReady map[string]bool
		serves     map[string]string // request version → version that answers
		fails      []errWant
		// Once it returned (after: eventually).
		after      []string
		afterReady bool
	}{{
		name: "first load",
		setup: func(t *testing.T, repo string, _ inference.GRPCInferenceServiceClient) {
			writeModel(t, repo, "m", gatedModel(), 1)
		},
		index:      []string{"m/1 LOADING"},
		ready:      false,
		modelReady: map[string]bool{"1": false, "": false},
		fails: []errWant{
			{"", codes.NotFound, "Request for unknown model: 'm' has no available versions"},
			{"1", codes.Unavailable, "Request for unknown model: 'm' version 1 is not at ready state"},
		},
		after:      []string{"m/1 READY"},
		afterReady: true,
	}, {
		name: "version 2 beside serving version 1 (latest 1)",
		setup: func(t *testing.T, repo string, c inference.GRPCInferenceServiceClient) {
			writeModel(t, repo, "m", gatedModel(), 1)
			if _, err := c.RepositoryModelLoad(context.Background(), loadReq("m")); err != nil {
				t.Fatal(err)
			}
		},
		change:     func(t *testing.T, repo string) { writeModel(t, repo, "m", gatedModel(), 1, 2) },
		index:      []string{"m/1 READY", "m/2 LOADING"},
		ready:      false,
		modelReady: map[string]bool{"1": true, "2": false, "": true},
		serves:     map[string]string{"": "1", "1": "1"},
		fails:      []errWant{{"2", codes.Unavailable, "Request for unknown model: 'm' version 2 is not at ready state"}},
		after:      []string{"m/1 UNAVAILABLE unloaded", "m/2 READY"},
		afterReady: true,
	}, {
		name:      "version 2 beside serving version 1, no strict readiness",
		nonStrict: true,
		setup: func(t *testing.T, repo string, c inference.GRPCInferenceServiceClient) {
			writeModel(t, repo, "m", gatedModel(`version_policy { all { } }`), 1)
			if _, err := c.RepositoryModelLoad(context.Background(), loadReq("m")); err != nil {
				t.Fatal(err)
			}
		},
		change: func(t *testing.T, repo string) {
			writeModel(t, repo, "m", gatedModel(`version_policy { all { } }`), 1, 2)
		},
		index:      []string{"m/1 READY", "m/2 LOADING"},
		ready:      true,
		modelReady: map[string]bool{"1": true, "2": false},
		serves:     map[string]string{"": "1", "1": "1"},
		after:      []string{"m/1 READY", "m/2 READY"},
		afterReady: true,
	}, {
		name: "serving version loaded again with a new config",
		setup: func(t *testing.T, repo string, c inference.GRPCInferenceServiceClient) {
			writeModel(t, repo, "m", gatedModel(), 1)
			if _, err := c.RepositoryModelLoad(context.Background(), loadReq("m")); err != nil {
				t.Fatal(err)
			}
		},
		change:     func(t *testing.T, repo string) { writeModel(t, repo, "m", gatedModel(param("x", "y")), 1) },
		index:      []string{"m/1 READY"},
		ready:      true, // Triton: the serving version stays READY, so does the server
		modelReady: map[string]bool{"1": true},
		serves:     map[string]string{"": "1", "1": "1"},
		after:      []string{"m/1 READY"},
		afterReady: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			repo := t.TempDir()
			h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) {
				o.Backends = g.backends()
				o.StrictReadiness = !tc.nonStrict
			})
			c := h.client
			tc.setup(t, repo, c)
			if tc.change != nil {
				tc.change(t, repo)
			}
			g.armed.Store(true)
			done := make(chan error, 1)
			go func() {
				_, err := c.RepositoryModelLoad(context.Background(), loadReq("m"))
				done <- err
			}()
			select {
			case <-g.entered:
			case err := <-done:
				t.Fatalf("the load returned before its version was created: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("the load never started")
			}
			if got := indexOf(t, c); !slices.Equal(got, tc.index) {
				t.Errorf("index while loading: %q, want %q", got, tc.index)
			}
			if got := serverReady(t, c); got != tc.ready {
				t.Errorf("ServerReady while loading: %v, want %v", got, tc.ready)
			}
			if got := healthServing(t, h); got != tc.ready {
				t.Errorf("grpc.health.v1 SERVING while loading: %v, want %v", got, tc.ready)
			}
			for v, want := range tc.modelReady {
				if got := modelReady(t, c, v); got != want {
					t.Errorf("ModelReady(%q) while loading: %v, want %v", v, got, want)
				}
			}
			for v, want := range tc.serves {
				got, err := inferV(c, v)
				if err != nil || got != want {
					t.Errorf("infer version %q while loading: answered by %q, %v; want %q", v, got, err, want)
				}
			}
			for _, f := range tc.fails {
				_, err := inferV(c, f.version)
				wantExact(t, err, f.code, f.msg)
			}
			select {
			case err := <-done:
				t.Fatalf("RepositoryModelLoad returned while its version was still loading: %v", err)
			default:
			}
			g.armed.Store(false)
			close(g.release)
			if err := <-done; err != nil {
				t.Fatalf("load: %v", err)
			}
			eventually(t, fmt.Sprintf("index %q", tc.after), func() bool { return slices.Equal(indexOf(t, c), tc.after) })
			eventually(t, fmt.Sprintf("ServerReady %v", tc.afterReady), func() bool { return serverReady(t, c) == tc.afterReady })
			eventually(t, fmt.Sprintf("health SERVING %v", tc.afterReady), func() bool { return healthServing(t, h) == tc.afterReady })
		})
	}
}

// TestUnchangedReloadKeepsServing: loading a model again with nothing
// changed leaves its serving versions as they are (no new instance, no load
// delay), as Triton does; a changed version is loaded again.
func TestUnchangedReloadKeepsServing(t *testing.T) {
	g := newGate()
	repo := t.TempDir()
	writeModel(t, repo, "m", gatedModel(`version_policy { all { } }`, param("tritonlite_load_delay", "0s")), 1, 2)
	h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) {
		o.Backends = g.backends()
		o.LoadDelay = time.Hour // applies to nothing: the parameter overrides it
	})
	ctx := context.Background()
	if _, err := h.client.RepositoryModelLoad(ctx, loadReq("m")); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	if _, err := h.client.RepositoryModelLoad(ctx, loadReq("m")); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-g.entered:
		t.Fatalf("version %d was created again though nothing changed", v)
	default:
	}
	// Version 2's files change: it alone is loaded again.
	if err := os.WriteFile(filepath.Join(repo, "m", "2", "weights"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.client.RepositoryModelLoad(ctx, loadReq("m"))
		done <- err
	}()
	if v := <-g.entered; v != 2 {
		t.Fatalf("version %d loaded again, want 2", v)
	}
	if got, want := indexOf(t, h.client), []string{"m/1 READY", "m/2 READY"}; !slices.Equal(got, want) {
		t.Errorf("index while version 2 loads again: %q, want %q", got, want)
	}
	g.armed.Store(false)
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-g.entered:
		t.Fatalf("version %d was created too", v)
	default:
	}
}

// TestLoadDelay: --load-delay (Options.LoadDelay) applies to every load;
// the tritonlite_load_delay parameter overrides it; a bad value fails the
// load naming the parameter; Close ends a delay in progress.
func TestLoadDelay(t *testing.T) {
	tests := []struct {
		name    string
		flag    time.Duration
		param   string // "" : none
		loading bool   // the load is still LOADING after a short wait (a delay of an hour)
		wantErr string // the load's error (InvalidArgument) and the version's reason
	}{
		{name: "flag applies", flag: time.Hour, loading: true},
		{name: "parameter applies", param: "1h", loading: true},
		{name: "parameter overrides the flag", flag: time.Hour, param: "0s"},
		{name: "parameter overrides the flag, both ways", flag: 0, param: "2h30m", loading: true},
		{name: "short delay", param: "50ms"},
		{name: "no delay", flag: 0},
		{name: "not a duration", param: "1.5", wantErr: `model 'm': config parameter 'tritonlite_load_delay' = "1.5" is not a valid duration (such as "1.5s"): time: missing unit in duration "1.5"`},
		{name: "negative", flag: time.Hour, param: "-1s", wantErr: `model 'm': config parameter 'tritonlite_load_delay' = "-1s" is not a valid duration (such as "1.5s"): must not be negative`},
		{name: "empty", param: "", wantErr: ""},
		{name: "words", param: "soon", wantErr: `config parameter 'tritonlite_load_delay' = "soon" is not a valid duration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			extra := ""
			if tc.param != "" || tc.name == "empty" {
				extra = param("tritonlite_load_delay", tc.param)
			}
			if tc.name == "empty" {
				tc.wantErr = `config parameter 'tritonlite_load_delay' = "" is not a valid duration`
			}
			writeModel(t, repo, "m", litetest.Identity("m", extra))
			h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.LoadDelay = tc.flag })
			if tc.loading {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				_, err := h.client.RepositoryModelLoad(ctx, loadReq("m"))
				cancel()
				wantCode(t, err, codes.DeadlineExceeded, "")
				if got := indexOf(t, h.client); !slices.Equal(got, []string{"m/1 LOADING"}) {
					t.Errorf("index during an hour's delay: %q", got)
				}
				closed := make(chan struct{})
				go func() { h.srv.Close(); close(closed) }()
				select {
				case <-closed:
				case <-time.After(20 * time.Second):
					t.Fatal("Close waited for the load delay")
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := h.client.RepositoryModelLoad(ctx, loadReq("m"))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !modelReady(t, h.client, "1") {
					t.Error("not ready after the load returned")
				}
				return
			}
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.wantErr) || !strings.HasPrefix(st.Message(), "load failed for model 'm': version 1 is at UNAVAILABLE state: Invalid argument: ") {
				t.Fatalf("got %s %q, want InvalidArgument naming the parameter: %q", st.Code(), st.Message(), tc.wantErr)
			}
			idx := indexOf(t, h.client)
			if len(idx) != 1 || !strings.HasPrefix(idx[0], "m/1 UNAVAILABLE Invalid argument: ") || !strings.Contains(idx[0], tc.wantErr) {
				t.Errorf("index after a bad delay: %q", idx)
			}
		})
	}
}

// TestCloseEndsLoadDelay: a load waiting out its delay fails when the
// server closes, and Close does not wait for the delay.
func TestCloseEndsLoadDelay(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "m", litetest.Identity("m"))
	h := start(t, repo, tritonlite.ModeExplicit, func(o *tritonlite.Options) { o.LoadDelay = time.Hour })
	done := make(chan error, 1)
	go func() {
		_, err := h.client.RepositoryModelLoad(context.Background(), loadReq("m"))
		done <- err
	}()
	eventually(t, "m/1 LOADING", func() bool { return slices.Equal(indexOf(t, h.client), []string{"m/1 LOADING"}) })
	h.srv.Close()
	err := <-done
	st, _ := status.FromError(err)
	if err == nil || !strings.Contains(st.Message(), "Server not ready") {
		t.Fatalf("a load cut short by Close: %v", err)
	}
}
