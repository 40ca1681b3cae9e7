package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/proto/inference"
)

// Shared memory through the gateway: no region can be registered (a
// client's region is not on the backends' hosts); the rest of the
// extension answers as Triton does with no region registered (messages
// recorded from tritonserver 2.51), and an inference naming a region is
// relayed, so the backend answers it.
func TestSharedMemoryThroughTheGateway(t *testing.T) {
	b := backend(t, map[string]string{"m": identity("m")})
	g := startGateway(t, `
pools:
  - name: cpu
    endpoints: [{b}]
    health: {interval: 50ms}
routes:
  - {model: m, pool: cpu}
`, addrs("b", b))
	g.waitReady(t, "m", "")
	ctx := context.Background()
	c := g.client
	call := func(_ any, err error) error { return err }
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"system status", call(c.SystemSharedMemoryStatus(ctx, &inference.SystemSharedMemoryStatusRequest{})), codes.OK, ""},
		{"system status named", call(c.SystemSharedMemoryStatus(ctx, &inference.SystemSharedMemoryStatusRequest{Name: "r0"})),
			codes.NotFound, "Unable to find system shared memory region: 'r0'"},
		{"system unregister", call(c.SystemSharedMemoryUnregister(ctx, &inference.SystemSharedMemoryUnregisterRequest{Name: "r0"})), codes.OK, ""},
		{"system unregister all", call(c.SystemSharedMemoryUnregister(ctx, &inference.SystemSharedMemoryUnregisterRequest{})), codes.OK, ""},
		{"system register", call(c.SystemSharedMemoryRegister(ctx, &inference.SystemSharedMemoryRegisterRequest{Name: "r0", Key: "/r0", ByteSize: 64})),
			codes.Unimplemented, "the gateway does not support system shared memory: a region on the client's host is not visible to the Triton backends behind it; send the tensors in the request (raw_input_contents)"},
		{"cuda status", call(c.CudaSharedMemoryStatus(ctx, &inference.CudaSharedMemoryStatusRequest{})), codes.OK, ""},
		{"cuda status named", call(c.CudaSharedMemoryStatus(ctx, &inference.CudaSharedMemoryStatusRequest{Name: "c0"})),
			codes.NotFound, "Unable to find cuda shared memory region: 'c0'"},
		{"cuda register", call(c.CudaSharedMemoryRegister(ctx, &inference.CudaSharedMemoryRegisterRequest{Name: "c0", RawHandle: []byte{1}, ByteSize: 64})),
			codes.Unimplemented, "the gateway does not support CUDA shared memory: a region on the client's host is not visible to the Triton backends behind it; send the tensors in the request (raw_input_contents)"},
		{"cuda unregister all", call(c.CudaSharedMemoryUnregister(ctx, &inference.CudaSharedMemoryUnregisterRequest{})), codes.OK, ""},
	} {
		s := status.Convert(tc.err)
		if s.Code() != tc.code || s.Message() != tc.msg {
			t.Errorf("%s: %v %q, want %v %q", tc.name, s.Code(), s.Message(), tc.code, tc.msg)
		}
	}

	// An input in a region: relayed, answered by the backend as directly.
	req := request("m", 1, 2, 3, 4)
	req.RawInputContents = nil
	req.Inputs[0].Parameters = map[string]*inference.InferParameter{
		"shared_memory_region":    {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "r0"}},
		"shared_memory_byte_size": {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: 16}},
	}
	_, direct := b.Client.ModelInfer(ctx, req)
	_, via := g.client.ModelInfer(ctx, req)
	if direct == nil || status.Code(via) != status.Code(direct) || status.Convert(via).Message() != status.Convert(direct).Message() {
		t.Fatalf("infer with a region: gateway %v, backend directly %v", via, direct)
	}
}
