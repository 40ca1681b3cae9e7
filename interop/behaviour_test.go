//go:build interop

package interop_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/interop/peers"
	"github.com/tritongate/tritongate/proto/inference"
)

// TestRealTritonBehaviour records what the real tritonserver 2.51 answers
// for what tritonlite imitates and the gateway relays — unknown models and
// versions, bad version strings, models not loaded, bad shapes, batches too
// large, wrong datatypes, missing and unknown tensors, request ids in
// messages, RepositoryIndex states, load and unload errors — and requires
// tritonlite to answer with the same code and message, and the gateway in
// front of either to answer as the server behind it does.
func TestRealTritonBehaviour(t *testing.T) {
	env := peers.Find(t)

	// The same repository for both servers: "simple" (add/sub INT32,
	// max_batch_size 8), "notloaded" (a copy never loaded), "fails" (its
	// load fails).
	tritonRepo, liteRepo := t.TempDir(), t.TempDir()
	env.TritonModel(t, tritonRepo, "simple", "simple")
	env.TritonModel(t, tritonRepo, "simple", "notloaded")
	env.TritonModel(t, tritonRepo, "fails", "fails")
	simple := liteConfig(readConfig(t, env, "simple"), "add_sub")
	for name, cfg := range map[string]string{
		"simple":    simple,
		"notloaded": strings.Replace(simple, `name: "simple"`, `name: "notloaded"`, 1),
		// tritonlite's builtin add_sub refuses a model with one input.
		"fails": `name: "fails"
backend: "add_sub"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] } ]
`,
	} {
		if err := os.MkdirAll(filepath.Join(liteRepo, name, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(liteRepo, name, "config.pbtxt"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tr := env.StartTriton(t, peers.TritonOptions{Repository: tritonRepo})
	port, metrics := peers.FreePort(t), peers.FreePort(t)
	lp := env.Start(t, "tritonlite", nil, env.Root, env.BinPath("tritonlite"),
		"--model-repository", liteRepo, "--model-control-mode", "explicit",
		"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(port),
		"--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(metrics))
	lite := peers.Addr(port)
	peers.WaitTCP(t, lp, lite, 30*time.Second)

	servers := map[string]string{"triton": tr.GRPC, "tritonlite": lite}
	for name, addr := range servers {
		c := dial(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if _, err := c.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "simple"}); err != nil {
			t.Fatalf("%s: load simple: %v", name, err)
		}
		// A failed load leaves the model known (UNAVAILABLE): every target
		// sees the same states.
		if _, err := c.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "fails"}); err == nil {
			t.Fatalf("%s: model fails loaded", name)
		}
		cancel()
	}
	routes := []string{"simple", "notloaded", "fails"}
	targets := []struct{ name, addr, behind string }{
		{"triton", tr.GRPC, ""},
		{"tritonlite", lite, ""},
		{"gateway→triton", runGateway(t, env, tr.GRPC, "", routes, routes[:1]), "triton"},
		{"gateway→tritonlite", runGateway(t, env, lite, "", routes, routes[:1]), "tritonlite"},
	}

	i32 := func(n int) []byte { return make([]byte, 4*n) }
	infer := func(mut func(r *inference.ModelInferRequest)) func(context.Context, inference.GRPCInferenceServiceClient) (proto.Message, error) {
		return func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			r := &inference.ModelInferRequest{ModelName: "simple",
				Inputs: []*inference.ModelInferRequest_InferInputTensor{
					{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 16}},
					{Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, 16}},
				}, RawInputContents: [][]byte{i32(16), i32(16)}}
			mut(r)
			return c.ModelInfer(ctx, r)
		}
	}
	type call = func(context.Context, inference.GRPCInferenceServiceClient) (proto.Message, error)
	cases := []struct {
		name string
		call call
		// lifecycle calls are not relayed by the gateway (they go to
		// each backend directly): server targets only.
		serversOnly bool
	}{
		{"infer ok", infer(func(r *inference.ModelInferRequest) {}), false},
		{"infer unknown model", infer(func(r *inference.ModelInferRequest) { r.ModelName = "nosuch" }), false},
		{"infer unknown version", infer(func(r *inference.ModelInferRequest) { r.ModelVersion = "7" }), false},
		{"infer version abc", infer(func(r *inference.ModelInferRequest) { r.ModelVersion = "abc" }), false},
		{"infer version -1", infer(func(r *inference.ModelInferRequest) { r.ModelVersion = "-1" }), false},
		{"infer model not loaded", infer(func(r *inference.ModelInferRequest) { r.ModelName = "notloaded" }), false},
		{"infer model failed to load", infer(func(r *inference.ModelInferRequest) { r.ModelName = "fails" }), false},
		{"infer version of a failed model", infer(func(r *inference.ModelInferRequest) { r.ModelName, r.ModelVersion = "fails", "1" }), false},
		{"infer bad shape", infer(func(r *inference.ModelInferRequest) {
			r.Inputs[0].Shape = []int64{1, 15}
			r.RawInputContents[0] = i32(15)
		}), false},
		{"infer bad shape with request id", infer(func(r *inference.ModelInferRequest) {
			r.Id = "req-42"
			r.Inputs[0].Shape = []int64{1, 15}
			r.RawInputContents[0] = i32(15)
		}), false},
		{"infer batch too large", infer(func(r *inference.ModelInferRequest) {
			for j := range r.Inputs {
				r.Inputs[j].Shape = []int64{9, 16}
				r.RawInputContents[j] = i32(9 * 16)
			}
		}), false},
		{"infer no batch dimension", infer(func(r *inference.ModelInferRequest) {
			for j := range r.Inputs {
				r.Inputs[j].Shape = []int64{16}
			}
		}), false},
		{"infer wrong datatype", infer(func(r *inference.ModelInferRequest) { r.Inputs[1].Datatype = "FP32" }), false},
		{"infer missing input", infer(func(r *inference.ModelInferRequest) {
			r.Inputs, r.RawInputContents = r.Inputs[:1], r.RawInputContents[:1]
		}), false},
		{"infer unknown input", infer(func(r *inference.ModelInferRequest) {
			r.Inputs = append(r.Inputs, &inference.ModelInferRequest_InferInputTensor{Name: "INPUT9", Datatype: "INT32", Shape: []int64{1, 16}})
			r.RawInputContents = append(r.RawInputContents, i32(16))
		}), false},
		{"infer unknown output", infer(func(r *inference.ModelInferRequest) {
			r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT9"}}
		}), false},
		{"infer raw size mismatch", infer(func(r *inference.ModelInferRequest) { r.RawInputContents[1] = i32(15) }), false},
		{"infer raw and typed contents", infer(func(r *inference.ModelInferRequest) {
			r.Inputs[0].Contents = &inference.InferTensorContents{IntContents: make([]int32, 16)}
		}), false},
		{"ready unknown model", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "nosuch"})
		}, false},
		{"ready unknown version", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "simple", Version: "7"})
		}, false},
		{"ready not loaded", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "notloaded"})
		}, false},
		{"metadata unknown model", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "nosuch"})
		}, false},
		{"metadata unknown version", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "simple", Version: "7"})
		}, false},
		{"metadata version abc", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "simple", Version: "abc"})
		}, false},
		{"metadata failed model", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "fails"})
		}, false},
		{"ready failed model", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "fails", Version: "1"})
		}, false},
		{"metadata not loaded", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "notloaded"})
		}, false},
		{"config unknown model", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelConfig(ctx, &inference.ModelConfigRequest{Name: "nosuch"})
		}, false},
		{"config not loaded", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelConfig(ctx, &inference.ModelConfigRequest{Name: "notloaded"})
		}, false},
		{"statistics unknown model", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: "nosuch"})
		}, false},
		{"load not in repository", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "nosuch"})
		}, true},
		{"load fails", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.RepositoryModelLoad(ctx, &inference.RepositoryModelLoadRequest{ModelName: "fails"})
		}, true},
		{"unload unknown", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			return c.RepositoryModelUnload(ctx, &inference.RepositoryModelUnloadRequest{ModelName: "nosuch"})
		}, true},
		{"index states", func(ctx context.Context, c inference.GRPCInferenceServiceClient) (proto.Message, error) {
			idx, err := c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
			if err != nil {
				return nil, err
			}
			// The reasons of failed loads are the backend's own words.
			for _, m := range idx.GetModels() {
				if m.GetName() == "fails" && m.GetReason() != "" {
					m.Reason = "<load error>"
				}
			}
			return idx, nil
		}, true},
	}

	// answer is what one target said: the code and message, or the reply.
	answer := func(m proto.Message, err error) string {
		if err != nil {
			s := status.Convert(err)
			return s.Code().String() + ": " + s.Message()
		}
		switch r := m.(type) {
		case *inference.ModelInferResponse:
			return fmt.Sprintf("OK: model %s version %s, %d outputs", r.GetModelName(), r.GetModelVersion(), len(r.GetOutputs()))
		}
		return "OK: " + strings.Join(strings.Fields(fmt.Sprint(m)), " ")
	}
	got := map[string]map[string]string{}
	for _, tg := range targets {
		c := dial(t, tg.addr)
		got[tg.name] = map[string]string{}
		for _, cs := range cases {
			if cs.serversOnly && tg.behind != "" {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			got[tg.name][cs.name] = answer(cs.call(ctx, c))
			cancel()
		}
	}
	// "load fails" has the backend's own words after the code; compare the
	// code and Triton's framing only.
	framing := func(s string) string {
		if i := strings.Index(s, "load failed for model 'fails'"); i >= 0 {
			return s[:i] + "load failed for model 'fails': <load error>"
		}
		return s
	}
	for _, cs := range cases {
		want := framing(got["triton"][cs.name])
		t.Logf("%-32s triton: %s", cs.name, want)
		if g := framing(got["tritonlite"][cs.name]); g != want {
			t.Errorf("%s: tritonlite answers\n\t%s\nreal Triton\n\t%s", cs.name, g, want)
		}
		for _, tg := range targets[2:] {
			if cs.serversOnly {
				continue
			}
			if g, w := got[tg.name][cs.name], got[tg.behind][cs.name]; g != w {
				t.Errorf("%s: %s answers\n\t%s\n%s\n\t%s", cs.name, tg.name, g, tg.behind, w)
			}
		}
	}
}
