package tritonlite

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/proto/inference"
)

// FuzzSharedMemoryParams feeds arbitrary requests (their inputs' and
// outputs' shared memory parameters) to the shared memory decoding against
// two registered regions: it must never panic, every slice it hands out
// lies within its region and has the requested size, every refusal is a
// client error, and every region taken is released.
func FuzzSharedMemoryParams(f *testing.F) {
	name := fmt.Sprintf("tritonlite-fuzz-%d", os.Getpid())
	path := filepath.Join(shmDir, name)
	if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil {
		f.Skipf("no POSIX shared memory here: %v", err)
	}
	f.Cleanup(func() { os.Remove(path) })
	m := newShmManager()
	if err := m.register("r", "/"+name, 0, 4096); err != nil {
		f.Fatal(err)
	}
	other := name + "-b"
	if err := os.WriteFile(filepath.Join(shmDir, other), make([]byte, 8192), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.Remove(filepath.Join(shmDir, other)) })
	if err := m.register("s", other, 4096, 4096); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(m.closeAll)
	p := func(region string, size, offset int64) map[string]*inference.InferParameter {
		return map[string]*inference.InferParameter{
			"shared_memory_region":    {ParameterChoice: &inference.InferParameter_StringParam{StringParam: region}},
			"shared_memory_byte_size": {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: size}},
			"shared_memory_offset":    {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: offset}},
		}
	}
	seed := func(req *inference.ModelInferRequest) {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	seed(&inference.ModelInferRequest{ModelName: "m",
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "A", Datatype: "FP32", Shape: []int64{4}, Parameters: p("r", 16, 0)}, {Name: "B", Datatype: "FP32", Shape: []int64{4}}},
		Outputs:          []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "O", Parameters: p("s", 16, 4080)}},
		RawInputContents: [][]byte{make([]byte, 16)}})
	seed(&inference.ModelInferRequest{ModelName: "m",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "A", Datatype: "BYTES", Shape: []int64{1}, Parameters: p("s", 4096, 4095)}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req inference.ModelInferRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		r := &request{}
		check := func(err error) {
			if c := status.Code(err); err != nil && c != codes.InvalidArgument && c != codes.NotFound {
				t.Fatalf("%s for a bad request: %v", c, err)
			}
		}
		ins, err := m.requestInputs(&req, r)
		check(err)
		if err == nil {
			if len(ins) != len(req.GetInputs()) {
				t.Fatalf("%d inputs decoded from %d", len(ins), len(req.GetInputs()))
			}
			for i, in := range req.GetInputs() {
				if sp, _ := parseShmParams(in.GetName(), in.GetParameters()); sp.shm && uint64(len(ins[i].Data)) != sp.byteSize {
					t.Fatalf("input %s: %d bytes from shared memory, asked for %d", in.GetName(), len(ins[i].Data), sp.byteSize)
				}
			}
			err = m.requestOutputs(&req, r)
			check(err)
			for name, dst := range r.shmOut {
				if cap(dst) != len(dst) {
					t.Fatalf("output %s: a slice that can grow into the rest of its region", name)
				}
			}
		}
		m.releaseAll(r)
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, region := range m.regions {
			if region.refs != 0 {
				t.Fatalf("region %s still held %d times", region.name, region.refs)
			}
		}
	})
}
