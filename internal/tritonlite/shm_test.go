package tritonlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
)

// The messages and codes below are what tritonserver 2.51 answered to the
// same calls (regions made with tritonclient.utils.shared_memory).

// shmObject creates the POSIX shared memory object /dev/shm/<name> holding
// data and returns its key ("/<name>"); it is removed when the test ends.
func shmObject(t *testing.T, data []byte) string {
	t.Helper()
	name := fmt.Sprintf("tritonlite-test-%d-%x", os.Getpid(), rand.Uint64())
	path := filepath.Join("/dev/shm", name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Skipf("no POSIX shared memory here: %v", err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return "/" + name
}

func readShm(t *testing.T, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/dev/shm", strings.TrimPrefix(key, "/")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func int32Bytes(v ...int32) []byte { return tensor.Of("", nil, v).Data }

func register(c inference.GRPCInferenceServiceClient, name, key string, offset, size uint64) error {
	_, err := c.SystemSharedMemoryRegister(context.Background(), &inference.SystemSharedMemoryRegisterRequest{Name: name, Key: key, Offset: offset, ByteSize: size})
	return err
}

func unregister(c inference.GRPCInferenceServiceClient, name string) error {
	_, err := c.SystemSharedMemoryUnregister(context.Background(), &inference.SystemSharedMemoryUnregisterRequest{Name: name})
	return err
}

func shmStatus(t *testing.T, c inference.GRPCInferenceServiceClient, name string) (map[string]string, error) {
	t.Helper()
	resp, err := c.SystemSharedMemoryStatus(context.Background(), &inference.SystemSharedMemoryStatusRequest{Name: name})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, r := range resp.Regions {
		out[k] = fmt.Sprintf("%s %s %d %d", r.Name, r.Key, r.Offset, r.ByteSize)
	}
	return out, nil
}

// mapped reports whether this process maps the shared memory object key.
func mapped(t *testing.T, key string) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps")
	}
	return strings.Contains(string(maps), filepath.Join("/dev/shm", strings.TrimPrefix(key, "/")))
}

func TestSystemSharedMemoryRegister(t *testing.T) {
	h := start(t, t.TempDir(), tritonlite.ModeNone)
	c := h.client
	taken := shmObject(t, make([]byte, 128))
	if err := register(c, "in", taken, 0, 128); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key    string // key "": a fresh 128-byte object
		offset, size uint64
		code         codes.Code
		msg          string
	}{
		{"in", "", 0, 128, codes.AlreadyExists, "shared memory region 'in' already in manager"},
		{"in", "/no_such_key_tritonlite", 0, 16, codes.AlreadyExists, "shared memory region 'in' already in manager"},
		{"x", "/no_such_key_tritonlite", 0, 16, codes.Internal, "Unable to open shared memory region: '/no_such_key_tritonlite'"},
		{"ek", "-", 0, 64, codes.Internal, "Unable to open shared memory region: ''"},
		{"nested", "/a/b", 0, 64, codes.Internal, "Unable to open shared memory region: '/a/b'"},
		{"path", "/dev/shm/x", 0, 64, codes.Internal, "Unable to open shared memory region: '/dev/shm/x'"},
		{"y", "", 0, 4096, codes.InvalidArgument, "failed to register shared memory region 'y': invalid args"},
		{"y2", "", 64, 128, codes.InvalidArgument, "failed to register shared memory region 'y2': invalid args"},
		{"w", "", 4096, 0, codes.InvalidArgument, "failed to register shared memory region 'w': invalid args"},
		{"z", "", 64, 64, codes.InvalidArgument, "failed to register shared memory region 'z': unable to process address spaceInvalid argument"},
		{"zero", "", 0, 0, codes.InvalidArgument, "failed to register shared memory region 'zero': unable to process address spaceInvalid argument"},
		{"w2", "", 128, 0, codes.InvalidArgument, "failed to register shared memory region 'w2': unable to process address spaceInvalid argument"},
		// Triton 2.51 refuses a second region of a registered key.
		{"part2", taken, 0, 64, codes.Internal, "Invalid shared memory region: '" + taken + "'"},
		{"part", "", 0, 64, codes.OK, ""},
		{"", "", 0, 64, codes.OK, ""},
		{"noslash", "noslash", 0, 64, codes.OK, ""},
		{"double", "//", 0, 64, codes.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name+" "+tc.key, func(t *testing.T) {
			key := tc.key
			switch key {
			case "":
				key = shmObject(t, make([]byte, 128))
			case "-":
				key = ""
			case "noslash":
				key = strings.TrimPrefix(shmObject(t, make([]byte, 128)), "/")
			case "//":
				key = "/" + shmObject(t, make([]byte, 128))
			}
			err := register(c, tc.name, key, tc.offset, tc.size)
			if tc.code == codes.OK {
				if err != nil {
					t.Fatal(err)
				}
				st, err := shmStatus(t, c, tc.name)
				if want := fmt.Sprintf("%s %s %d %d", tc.name, key, tc.offset, tc.size); err != nil || st[tc.name] != want {
					t.Errorf("status: %v %v, want %q", st, err, want)
				}
				if err := unregister(c, tc.name); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantExact(t, err, tc.code, tc.msg)
		})
	}
}

func TestSystemSharedMemoryStatusAndUnregister(t *testing.T) {
	h := start(t, t.TempDir(), tritonlite.ModeNone)
	c := h.client
	a, b := shmObject(t, make([]byte, 8192)), shmObject(t, make([]byte, 64))
	if err := register(c, "a", a, 4096, 4096); err != nil {
		t.Fatal(err)
	}
	if err := register(c, "b", b, 0, 64); err != nil {
		t.Fatal(err)
	}
	st, err := shmStatus(t, c, "")
	if want := map[string]string{"a": "a " + a + " 4096 4096", "b": "b " + b + " 0 64"}; err != nil || fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("status of all: %v %v, want %v", st, err, want)
	}
	_, err = shmStatus(t, c, "nope")
	wantExact(t, err, codes.NotFound, "Unable to find system shared memory region: 'nope'")
	if !mapped(t, a) || !mapped(t, b) {
		t.Error("registered regions are not mapped")
	}
	if err := unregister(c, "nope"); err != nil {
		t.Errorf("unregistering an unknown region: %v", err)
	}
	if err := unregister(c, "a"); err != nil {
		t.Fatal(err)
	}
	if st, _ := shmStatus(t, c, ""); len(st) != 1 || mapped(t, a) {
		t.Errorf("after unregistering a: status %v, still mapped %v", st, mapped(t, a))
	}
	if err := register(c, "a", a, 0, 64); err != nil { // the key is free again
		t.Fatal(err)
	}
	if err := unregister(c, ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := shmStatus(t, c, ""); len(st) != 0 || mapped(t, a) || mapped(t, b) {
		t.Errorf("after unregistering all: status %v, mapped %v %v", st, mapped(t, a), mapped(t, b))
	}
	// Close unmaps what is still registered.
	if err := register(c, "b", b, 0, 64); err != nil {
		t.Fatal(err)
	}
	h.srv.Close()
	if mapped(t, b) {
		t.Error("a region is still mapped after Close")
	}
}

// TestCudaSharedMemory: tritonlite answers as a Triton built without GPU
// support (so NVIDIA's examples, which unregister CUDA regions first, run).
func TestCudaSharedMemory(t *testing.T) {
	h := start(t, t.TempDir(), tritonlite.ModeNone)
	c := h.client
	ctx := context.Background()
	_, err := c.CudaSharedMemoryRegister(ctx, &inference.CudaSharedMemoryRegisterRequest{Name: "c", RawHandle: make([]byte, 64), ByteSize: 64})
	wantExact(t, err, codes.InvalidArgument, "failed to register CUDA shared memory region: 'c', GPUs not supported")
	if st, err := c.CudaSharedMemoryStatus(ctx, &inference.CudaSharedMemoryStatusRequest{}); err != nil || len(st.Regions) != 0 {
		t.Errorf("status: %v %v", st, err)
	}
	_, err = c.CudaSharedMemoryStatus(ctx, &inference.CudaSharedMemoryStatusRequest{Name: "c"})
	wantExact(t, err, codes.NotFound, "Unable to find cuda shared memory region: 'c'")
	if err := register(c, "sys", shmObject(t, make([]byte, 64)), 0, 64); err != nil {
		t.Fatal(err)
	}
	_, err = c.CudaSharedMemoryStatus(ctx, &inference.CudaSharedMemoryStatusRequest{Name: "sys"})
	wantExact(t, err, codes.NotFound, "The region named 'sys' is registered as system shared memory, not CUDA shared memory")
	for _, name := range []string{"", "c", "sys"} {
		if _, err := c.CudaSharedMemoryUnregister(ctx, &inference.CudaSharedMemoryUnregisterRequest{Name: name}); err != nil {
			t.Errorf("unregister %q: %v", name, err)
		}
	}
	if st, _ := shmStatus(t, c, "sys"); len(st) != 1 {
		t.Error("unregistering CUDA memory dropped a system region")
	}
	md, err := c.ServerMetadata(ctx, &inference.ServerMetadataRequest{})
	if err != nil || !slices.Contains(md.Extensions, "system_shared_memory") || slices.Contains(md.Extensions, "cuda_shared_memory") {
		t.Errorf("extensions %v", md.GetExtensions())
	}
}

// shmTensor is a request input or output in shared memory.
func shmParams(region string, size int64, offset ...int64) map[string]*inference.InferParameter {
	p := map[string]*inference.InferParameter{
		"shared_memory_region":    {ParameterChoice: &inference.InferParameter_StringParam{StringParam: region}},
		"shared_memory_byte_size": {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: size}},
	}
	if len(offset) > 0 {
		p["shared_memory_offset"] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: offset[0]}}
	}
	return p
}

func TestSharedMemoryInfer(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "simple", addSubInt32)
	h := start(t, repo, tritonlite.ModeNone)
	c := h.client
	a := make([]int32, 16)
	b := make([]int32, 16)
	sum := make([]int32, 16)
	diff := make([]int32, 16)
	for i := range a {
		a[i], b[i], sum[i], diff[i] = int32(i), 1, int32(i)+1, int32(i)-1
	}
	inKey := shmObject(t, append(int32Bytes(a...), int32Bytes(b...)...))
	outKey := shmObject(t, make([]byte, 128))
	smallKey := shmObject(t, make([]byte, 32))
	for _, r := range [][]string{{"in", inKey}, {"out", outKey}, {"small", smallKey}} {
		size := uint64(128)
		if r[0] == "small" {
			size = 32
		}
		if err := register(c, r[0], r[1], 0, size); err != nil {
			t.Fatal(err)
		}
	}
	type param = map[string]*inference.InferParameter
	str := func(s string) *inference.InferParameter {
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_StringParam{StringParam: s}}
	}
	i64 := func(v int64) *inference.InferParameter {
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: v}}
	}
	in0, in1 := shmParams("in", 64), shmParams("in", 64, 64)
	out0, out1 := shmParams("out", 64), shmParams("out", 64, 64)
	tests := []struct {
		name     string
		in       [2]param
		raw      [][]byte
		contents [2]bool
		outs     []string // requested outputs, with outParams
		outP     []param
		code     codes.Code
		msg      string
		// Expected: the raw outputs (nil: in shared memory, empty raw
		// contents) and the output region afterwards.
		raw0, raw1 []int32
		region     []int32
	}{
		{name: "inputs in shared memory", in: [2]param{in0, in1}, raw0: sum, raw1: diff},
		{name: "inputs and outputs", in: [2]param{in0, in1}, outs: []string{"OUTPUT0", "OUTPUT1"}, outP: []param{out0, out1}, region: append(slices.Clone(sum), diff...)},
		{name: "one output in shared memory", in: [2]param{in0, in1}, outs: []string{"OUTPUT0", "OUTPUT1"}, outP: []param{out0, nil}, raw1: diff, region: sum},
		{name: "shared memory and raw", in: [2]param{in0, nil}, raw: [][]byte{int32Bytes(b...)}, raw0: sum, raw1: diff},
		{name: "raw and shared memory", in: [2]param{nil, in1}, raw: [][]byte{int32Bytes(a...)}, raw0: sum, raw1: diff},
		{name: "shared memory and contents", in: [2]param{in0, nil}, contents: [2]bool{false, true}, raw0: []int32{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}, raw1: make([]int32, 16)},
		{name: "contents for a shared memory input", in: [2]param{in0, in1}, contents: [2]bool{true, false},
			code: codes.InvalidArgument, msg: "unexpected 'content' provided when using shared memory for input tensor 'INPUT0' for model 'simple'"},
		{name: "unknown region", in: [2]param{shmParams("nope", 64), in1}, code: codes.NotFound, msg: "Unable to find shared memory region: 'nope'"},
		{name: "no byte size", in: [2]param{{"shared_memory_region": str("in")}, in1},
			code: codes.InvalidArgument, msg: "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor 'INPUT0'"},
		{name: "offset without region", in: [2]param{{"shared_memory_offset": i64(0)}, in1}, raw: [][]byte{int32Bytes(a...), int32Bytes(b...)},
			code: codes.InvalidArgument, msg: "'shared_memory_offset' can not be specified without 'shared_memory_region' parameter for tensor 'INPUT0'"},
		{name: "byte size without region", in: [2]param{{"shared_memory_byte_size": i64(64)}, in1}, raw: [][]byte{int32Bytes(a...)},
			code: codes.InvalidArgument, msg: "'shared_memory_byte_size' can not be specified without 'shared_memory_region' parameter for tensor 'INPUT0'"},
		{name: "region not a string", in: [2]param{{"shared_memory_region": i64(3), "shared_memory_byte_size": i64(64)}, in1},
			code: codes.InvalidArgument, msg: "invalid value type for 'shared_memory_region' parameter for tensor 'INPUT0', expected string_param."},
		{name: "byte size not an int64", in: [2]param{{"shared_memory_region": str("in"), "shared_memory_byte_size": str("64")}, in1},
			code: codes.InvalidArgument, msg: "invalid value type for 'shared_memory_byte_size' parameter for tensor 'INPUT0', expected int64_param."},
		{name: "offset not an int64", in: [2]param{{"shared_memory_region": str("in"), "shared_memory_byte_size": i64(64), "shared_memory_offset": str("0")}, in1},
			code: codes.InvalidArgument, msg: "invalid value type for 'shared_memory_offset' parameter for tensor 'INPUT0', expected int64_param."},
		{name: "byte size 32", in: [2]param{shmParams("in", 32), in1},
			code: codes.InvalidArgument, msg: "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 32"},
		{name: "byte size 128", in: [2]param{shmParams("in", 128), in1},
			code: codes.InvalidArgument, msg: "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 128"},
		{name: "offset 128", in: [2]param{shmParams("in", 64, 128), in1}, code: codes.InvalidArgument, msg: "Invalid offset for shared memory region: 'in'"},
		{name: "offset -1", in: [2]param{shmParams("in", 64, -1), in1}, code: codes.InvalidArgument, msg: "Invalid offset for shared memory region: 'in'"},
		{name: "offset 127", in: [2]param{shmParams("in", 64, 127), in1}, code: codes.InvalidArgument, msg: "Invalid offset + byte size for shared memory region: 'in'"},
		{name: "offset 96", in: [2]param{shmParams("in", 64, 96), in1}, code: codes.InvalidArgument, msg: "Invalid offset + byte size for shared memory region: 'in'"},
		{name: "byte size -1", in: [2]param{shmParams("in", -1), in1}, code: codes.InvalidArgument, msg: "Invalid offset + byte size for shared memory region: 'in'"},
		{name: "byte size 0", in: [2]param{shmParams("in", 0), in1}, code: codes.InvalidArgument, msg: "Invalid offset + byte size for shared memory region: 'in'"},
		{name: "output region too small", in: [2]param{in0, in1}, outs: []string{"OUTPUT0"}, outP: []param{shmParams("small", 32)},
			code: codes.Internal, msg: "shared memory size specified with the request for output 'OUTPUT0' (32 bytes) should be at least 64 bytes to hold the results"},
		{name: "output region unknown", in: [2]param{in0, in1}, outs: []string{"OUTPUT0"}, outP: []param{shmParams("nope", 64)}, code: codes.NotFound, msg: "Unable to find shared memory region: 'nope'"},
		{name: "output beyond its region", in: [2]param{in0, in1}, outs: []string{"OUTPUT0"}, outP: []param{shmParams("small", 64)}, code: codes.InvalidArgument, msg: "Invalid offset + byte size for shared memory region: 'small'"},
		{name: "output without byte size", in: [2]param{in0, in1}, outs: []string{"OUTPUT0"}, outP: []param{{"shared_memory_region": str("out")}},
			code: codes.InvalidArgument, msg: "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor 'OUTPUT0'"},
		{name: "output region larger than needed", in: [2]param{in0, in1}, outs: []string{"OUTPUT0"}, outP: []param{shmParams("out", 128)}, region: sum},
		{name: "output in shared memory and classification", in: [2]param{in0, in1}, outs: []string{"OUTPUT0"},
			outP: []param{{"shared_memory_region": str("out"), "shared_memory_byte_size": i64(64), "classification": i64(2)}},
			code: codes.InvalidArgument, msg: "output can't set both 'shared_memory_region' and 'classification'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join("/dev/shm", strings.TrimPrefix(outKey, "/")), make([]byte, 128), 0o600); err != nil {
				t.Fatal(err)
			}
			req := &inference.ModelInferRequest{ModelName: "simple", RawInputContents: tc.raw}
			for i, name := range []string{"INPUT0", "INPUT1"} {
				in := &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: "INT32", Shape: []int64{1, 16}, Parameters: tc.in[i]}
				if tc.contents[i] {
					in.Contents = &inference.InferTensorContents{IntContents: a}
				}
				req.Inputs = append(req.Inputs, in)
			}
			for i, name := range tc.outs {
				req.Outputs = append(req.Outputs, &inference.ModelInferRequest_InferRequestedOutputTensor{Name: name, Parameters: tc.outP[i]})
			}
			resp, err := c.ModelInfer(context.Background(), req)
			if tc.code != codes.OK {
				wantExact(t, err, tc.code, tc.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range [][]int32{tc.raw0, tc.raw1} {
				if i >= len(resp.RawOutputContents) {
					continue
				}
				got := resp.RawOutputContents[i]
				if want == nil {
					if len(got) != 0 {
						t.Errorf("output %d in shared memory came back with %d raw bytes", i, len(got))
					}
					continue
				}
				if string(got) != string(int32Bytes(want...)) {
					t.Errorf("output %d: %v, want %v", i, got, want)
				}
			}
			if len(resp.RawOutputContents) != len(resp.Outputs) {
				t.Errorf("%d raw output contents for %d outputs (Triton sends an empty one per output in shared memory)", len(resp.RawOutputContents), len(resp.Outputs))
			}
			region := readShm(t, outKey)
			want := make([]byte, 128)
			copy(want, int32Bytes(tc.region...))
			if string(region) != string(want) {
				t.Errorf("output region %v, want %v", region, want)
			}
		})
	}
	// No request holds a region once answered: all can go.
	if err := unregister(c, ""); err != nil {
		t.Fatal(err)
	}
}

// blocker is an identity backend whose executions wait until released.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func (b *blocker) NewExecutor(ctx context.Context, inst tritonlite.Instance) (tritonlite.Executor, error) {
	e, err := tritonlite.Builtins()["identity"].NewExecutor(ctx, inst)
	return blockExec{e, b}, err
}

type blockExec struct {
	tritonlite.Executor
	b *blocker
}

func (e blockExec) Execute(ctx context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	e.b.started <- struct{}{}
	<-e.b.release
	return e.Executor.Execute(ctx, inputs, outputs)
}

// TestSharedMemoryInUse: a region a request is using cannot be unregistered
// until the request is answered (Triton's message); unregistering all
// leaves only the busy ones.
func TestSharedMemoryInUse(t *testing.T) {
	b := &blocker{started: make(chan struct{}, 1), release: make(chan struct{})}
	backends := tritonlite.Builtins()
	backends["blocker"] = b
	repo := t.TempDir()
	writeModel(t, repo, "m", strings.Replace(litetest.Identity("m"), `"identity"`, `"blocker"`, 1))
	h := start(t, repo, tritonlite.ModeNone, func(o *tritonlite.Options) { o.Backends = backends })
	c := h.client
	key, other := shmObject(t, tensor.Of("", nil, seq(4, 1)).Data), shmObject(t, make([]byte, 16))
	if err := register(c, "busy", key, 0, 16); err != nil {
		t.Fatal(err)
	}
	if err := register(c, "idle", other, 0, 16); err != nil {
		t.Fatal(err)
	}
	req := &inference.ModelInferRequest{ModelName: "m",
		Inputs:  []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1, 4}, Parameters: shmParams("busy", 16)}},
		Outputs: []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT0", Parameters: shmParams("busy", 16)}}}
	done := make(chan error, 1)
	go func() {
		_, err := c.ModelInfer(context.Background(), req)
		done <- err
	}()
	select {
	case <-b.started:
	case err := <-done:
		t.Fatalf("answered before it ran: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the request never ran")
	}
	wantExact(t, unregister(c, "busy"), codes.Internal, "Cannot unregister shared memory region 'busy', it is currently in use.")
	wantExact(t, unregister(c, ""), codes.Internal, "Failed to unregister the following system shared memory regions: busy ,")
	if st, _ := shmStatus(t, c, ""); len(st) != 1 || st["busy"] == "" || mapped(t, other) {
		t.Errorf("after unregistering all while busy: %v (idle still mapped: %v)", st, mapped(t, other))
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := readShm(t, key); string(got) != string(tensor.Of("", nil, seq(4, 1)).Data) {
		t.Errorf("the output region holds %v", got)
	}
	if err := unregister(c, "busy"); err != nil {
		t.Fatal(err)
	}
	if mapped(t, key) {
		t.Error("still mapped after unregister")
	}
}

// TestSharedMemoryStream: inputs and outputs in shared memory on a stream.
func TestSharedMemoryStream(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "ident", identityFP32)
	h := start(t, repo, tritonlite.ModeNone)
	c := h.client
	in, out := shmObject(t, tensor.Of("", nil, seq(8, 3)).Data), shmObject(t, make([]byte, 32))
	if err := register(c, "in", in, 0, 32); err != nil {
		t.Fatal(err)
	}
	if err := register(c, "out", out, 0, 32); err != nil {
		t.Fatal(err)
	}
	stream, err := c.ModelStreamInfer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(2) {
		req := &inference.ModelInferRequest{ModelName: "ident",
			Inputs:  []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1, 4}, Parameters: shmParams("in", 16, 16*i)}},
			Outputs: []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT0", Parameters: shmParams("out", 16, 16*(1-i))}}}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil || r.ErrorMessage != "" || len(r.InferResponse.RawOutputContents[0]) != 0 {
			t.Fatalf("%v %v", r, err)
		}
	}
	stream.CloseSend()
	want := append(tensor.Of("", nil, seq(4, 7)).Data, tensor.Of("", nil, seq(4, 3)).Data...)
	if got := readShm(t, out); string(got) != string(want) {
		t.Errorf("output region %v, want %v", got, want)
	}
}
