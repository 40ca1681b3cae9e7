package tritonlite

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// shmDir is where POSIX shared memory objects live (shm_open's directory).
const shmDir = "/dev/shm"

// shmRegion is a registered system shared memory region: byteSize bytes of
// the POSIX shared memory object key, from offset, mapped into the server.
type shmRegion struct {
	name, key        string
	offset, byteSize uint64
	data             []byte // the mapping
	refs             int    // requests using the region
	gone             bool   // unregistered: unmapped once no request uses it
}

// shmManager is Triton's shared memory manager for system shared memory:
// regions by name, referenced by the requests that read their inputs from
// them or write their outputs to them.
type shmManager struct {
	mu      sync.Mutex
	dir     string
	regions map[string]*shmRegion
}

func newShmManager() *shmManager {
	return &shmManager{dir: shmDir, regions: map[string]*shmRegion{}}
}

// strerror is C's strerror for an errno (Go's texts, capitalized as glibc
// writes them).
func strerror(err error) string {
	s := err.Error()
	if r, n := utf8.DecodeRuneInString(s); n > 0 {
		return string(unicode.ToUpper(r)) + s[n:]
	}
	return s
}

// objectPath is where shm_open finds key: leading slashes dropped, no other
// slash allowed, under /dev/shm.
func (m *shmManager) objectPath(key string) (string, bool) {
	name := strings.TrimLeft(key, "/")
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return "", false
	}
	return filepath.Join(m.dir, name), true
}

// register maps byteSize bytes of the shared memory object key from offset
// as region name, with Triton's checks and messages.
func (m *shmManager) register(name, key string, offset, byteSize uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.regions[name]; ok {
		return status.Errorf(codes.AlreadyExists, "shared memory region '%s' already in manager", name)
	}
	for _, r := range m.regions {
		if r.key == key {
			// Triton 2.51 reuses the descriptor it opened for the first
			// region of this key, which it has already closed: a second
			// region of a key always fails so.
			return status.Errorf(codes.Internal, "Invalid shared memory region: '%s'", key)
		}
	}
	path, ok := m.objectPath(key)
	if !ok {
		return status.Errorf(codes.Internal, "Unable to open shared memory region: '%s'", key)
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return status.Errorf(codes.Internal, "Unable to open shared memory region: '%s'", key)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < 0 {
		return status.Errorf(codes.Internal, "Invalid shared memory region: '%s'", key)
	}
	size := uint64(st.Size())
	if offset > size || byteSize > size-offset {
		return status.Errorf(codes.InvalidArgument, "failed to register shared memory region '%s': invalid args", name)
	}
	data, err := syscall.Mmap(int(f.Fd()), int64(offset), int(byteSize), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "failed to register shared memory region '%s': unable to process address space%s", name, strerror(err))
	}
	m.regions[name] = &shmRegion{name: name, key: key, offset: offset, byteSize: byteSize, data: data}
	return nil
}

// statuses reports one region (NOT_FOUND if unknown) or, for "", all.
func (m *shmManager) statuses(name string) (map[string]*inference.SystemSharedMemoryStatusResponse_RegionStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]*inference.SystemSharedMemoryStatusResponse_RegionStatus{}
	add := func(r *shmRegion) {
		out[r.name] = &inference.SystemSharedMemoryStatusResponse_RegionStatus{Name: r.name, Key: r.key, Offset: r.offset, ByteSize: r.byteSize}
	}
	if name == "" {
		for _, r := range m.regions {
			add(r)
		}
		return out, nil
	}
	r, ok := m.regions[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Unable to find system shared memory region: '%s'", name)
	}
	add(r)
	return out, nil
}

// unregister drops region name (an unknown name is no error), or every
// region for "". A region a request is using stays, with Triton's error.
func (m *shmManager) unregister(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name != "" {
		r, ok := m.regions[name]
		if !ok {
			return nil
		}
		if r.refs > 0 {
			return status.Errorf(codes.Internal, "Cannot unregister shared memory region '%s', it is currently in use.", name)
		}
		m.drop(r)
		return nil
	}
	names := make([]string, 0, len(m.regions))
	for n := range m.regions {
		names = append(names, n)
	}
	sort.Strings(names) // Triton's std::map order
	var busy []string
	for _, n := range names {
		if r := m.regions[n]; r.refs > 0 {
			busy = append(busy, n)
		} else {
			m.drop(r)
		}
	}
	if len(busy) > 0 {
		return status.Errorf(codes.Internal, "Failed to unregister the following system shared memory regions: %s ,", strings.Join(busy, " ,"))
	}
	return nil
}

// drop forgets a region and unmaps it once no request uses it. Called with
// m.mu held.
func (m *shmManager) drop(r *shmRegion) {
	delete(m.regions, r.name)
	r.gone = true
	if r.refs == 0 && r.data != nil {
		syscall.Munmap(r.data)
		r.data = nil
	}
}

// closeAll unregisters every region (Server.Close); regions still used are
// unmapped by their last request.
func (m *shmManager) closeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.regions {
		m.drop(r)
	}
}

// acquire is Triton's GetMemoryInfo: the byteSize bytes at offset in region
// name, with the region held until release.
func (m *shmManager) acquire(name string, offset int64, byteSize uint64) (*shmRegion, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.regions[name]
	if !ok {
		return nil, nil, status.Errorf(codes.NotFound, "Unable to find shared memory region: '%s'", name)
	}
	// Triton's bounds, in its unsigned arithmetic (the region's own offset
	// counts in them).
	end := r.offset
	if r.byteSize > 0 {
		end += r.byteSize - 1
	}
	off := uint64(offset)
	if off > end {
		return nil, nil, status.Errorf(codes.InvalidArgument, "Invalid offset for shared memory region: '%s'", name)
	}
	if off+byteSize-1 > end {
		return nil, nil, status.Errorf(codes.InvalidArgument, "Invalid offset + byte size for shared memory region: '%s'", name)
	}
	// Within the mapping (Triton 2.51 adds a region's offset twice and
	// reads past its mapping when that offset is not 0).
	if off > uint64(len(r.data)) || byteSize > uint64(len(r.data))-off {
		return nil, nil, status.Errorf(codes.InvalidArgument, "Invalid offset + byte size for shared memory region: '%s'", name)
	}
	r.refs++
	return r, r.data[off : off+byteSize : off+byteSize], nil
}

// release ends a request's use of r.
func (m *shmManager) release(r *shmRegion) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.refs--
	if r.refs == 0 && r.gone && r.data != nil {
		syscall.Munmap(r.data)
		r.data = nil
	}
}

// shmParams are a tensor's shared memory parameters.
type shmParams struct {
	shm      bool // the tensor is in shared memory
	region   string
	offset   int64
	byteSize uint64
}

// hasShmParams reports whether a tensor names any shared memory parameter.
func hasShmParams(params map[string]*inference.InferParameter) bool {
	for _, k := range []string{"shared_memory_region", "shared_memory_offset", "shared_memory_byte_size"} {
		if _, ok := params[k]; ok {
			return true
		}
	}
	return false
}

// parseShmParams is Triton's ParseSharedMemoryParams, with its messages.
func parseShmParams(tensorName string, params map[string]*inference.InferParameter) (shmParams, error) {
	var p shmParams
	if v, ok := params["shared_memory_region"]; ok {
		p.shm = true
		s, ok := v.GetParameterChoice().(*inference.InferParameter_StringParam)
		if !ok {
			return p, invalidArg("invalid value type for 'shared_memory_region' parameter for tensor '%s', expected string_param.", tensorName)
		}
		p.region = s.StringParam
	}
	if v, ok := params["shared_memory_offset"]; ok {
		if !p.shm {
			return p, invalidArg("'shared_memory_offset' can not be specified without 'shared_memory_region' parameter for tensor '%s'", tensorName)
		}
		n, ok := v.GetParameterChoice().(*inference.InferParameter_Int64Param)
		if !ok {
			return p, invalidArg("invalid value type for 'shared_memory_offset' parameter for tensor '%s', expected int64_param.", tensorName)
		}
		p.offset = n.Int64Param
	}
	if v, ok := params["shared_memory_byte_size"]; ok {
		if !p.shm {
			return p, invalidArg("'shared_memory_byte_size' can not be specified without 'shared_memory_region' parameter for tensor '%s'", tensorName)
		}
		n, ok := v.GetParameterChoice().(*inference.InferParameter_Int64Param)
		if !ok {
			return p, invalidArg("invalid value type for 'shared_memory_byte_size' parameter for tensor '%s', expected int64_param.", tensorName)
		}
		p.byteSize = uint64(n.Int64Param)
	} else if p.shm {
		return p, invalidArg("'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor '%s'", tensorName)
	}
	return p, nil
}

// requestInputs decodes a request's inputs as tensor.RequestInputs does,
// taking the data of inputs in shared memory from their regions (copied:
// the client may rewrite the region once it has its answer). Raw contents
// go, in order, to the inputs not in shared memory, as in Triton. The
// regions are held (r.regions) until the request is answered.
func (m *shmManager) requestInputs(req *inference.ModelInferRequest, r *request) ([]tensor.Tensor, error) {
	any := false
	for _, in := range req.GetInputs() {
		if hasShmParams(in.GetParameters()) {
			any = true
			break
		}
	}
	if !any {
		ins, err := tensor.RequestInputs(req)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return ins, nil
	}
	raw := req.GetRawInputContents()
	next := 0
	out := make([]tensor.Tensor, 0, len(req.GetInputs()))
	for _, in := range req.GetInputs() {
		p, err := parseShmParams(in.GetName(), in.GetParameters())
		if err != nil {
			return nil, err
		}
		if !p.shm {
			sub := &inference.ModelInferRequest{ModelName: req.GetModelName(), Inputs: []*inference.ModelInferRequest_InferInputTensor{in}}
			switch {
			case in.GetContents() != nil && len(raw) > 0:
				return nil, invalidArg("contents field must not be specified when using raw_input_contents for '%s' for model '%s'", in.GetName(), req.GetModelName())
			case in.GetContents() == nil && next < len(raw):
				sub.RawInputContents = raw[next : next+1]
				next++
			}
			ts, err := tensor.RequestInputs(sub)
			if err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			out = append(out, ts...)
			continue
		}
		if in.GetContents() != nil {
			return nil, invalidArg("unexpected 'content' provided when using shared memory for input tensor '%s' for model '%s'", in.GetName(), req.GetModelName())
		}
		region, data, err := m.acquire(p.region, p.offset, p.byteSize)
		if err != nil {
			return nil, err
		}
		r.regions = append(r.regions, region)
		dt, _ := tensor.Parse(in.GetDatatype())
		out = append(out, tensor.Tensor{Name: in.GetName(), DataType: dt, Shape: in.GetShape(), Data: append([]byte(nil), data...)})
	}
	return out, nil
}

// requestOutputs takes the regions of the requested outputs that go to
// shared memory.
func (m *shmManager) requestOutputs(req *inference.ModelInferRequest, r *request) error {
	for _, out := range req.GetOutputs() {
		p, err := parseShmParams(out.GetName(), out.GetParameters())
		if err != nil {
			return err
		}
		if !p.shm {
			continue
		}
		region, data, err := m.acquire(p.region, p.offset, p.byteSize)
		if err != nil {
			return err
		}
		r.regions = append(r.regions, region)
		if r.shmOut == nil {
			r.shmOut = map[string][]byte{}
		}
		r.shmOut[out.GetName()] = data
	}
	return nil
}

// releaseAll ends r's use of its regions (once its answer is complete).
func (m *shmManager) releaseAll(r *request) {
	for _, region := range r.regions {
		m.release(region)
	}
	r.regions = nil
}

// writeOutputs copies the outputs requested in shared memory into their
// regions; their raw contents in the response are empty, as Triton sends
// them.
func writeOutputs(resp *inference.ModelInferResponse, r *request) error {
	if len(r.shmOut) == 0 {
		return nil
	}
	for i, o := range resp.GetOutputs() {
		dst, ok := r.shmOut[o.GetName()]
		if !ok || i >= len(resp.RawOutputContents) {
			continue
		}
		data := resp.RawOutputContents[i]
		if len(data) == 0 {
			continue
		}
		if len(data) > len(dst) {
			return status.Errorf(codes.Internal, "shared memory size specified with the request for output '%s' (%d bytes) should be at least %d bytes to hold the results", o.GetName(), len(dst), len(data))
		}
		copy(dst, data)
		resp.RawOutputContents[i] = []byte{}
	}
	return nil
}

// SystemSharedMemoryRegister registers a region of a POSIX shared memory
// object (/dev/shm/<key>), as Triton does.
func (s *Server) SystemSharedMemoryRegister(_ context.Context, req *inference.SystemSharedMemoryRegisterRequest) (*inference.SystemSharedMemoryRegisterResponse, error) {
	if err := s.shm.register(req.GetName(), req.GetKey(), req.GetOffset(), req.GetByteSize()); err != nil {
		return nil, err
	}
	return &inference.SystemSharedMemoryRegisterResponse{}, nil
}

// SystemSharedMemoryStatus reports one registered region, or all of them.
func (s *Server) SystemSharedMemoryStatus(_ context.Context, req *inference.SystemSharedMemoryStatusRequest) (*inference.SystemSharedMemoryStatusResponse, error) {
	regions, err := s.shm.statuses(req.GetName())
	if err != nil {
		return nil, err
	}
	return &inference.SystemSharedMemoryStatusResponse{Regions: regions}, nil
}

// SystemSharedMemoryUnregister unregisters one region, or all of them.
func (s *Server) SystemSharedMemoryUnregister(_ context.Context, req *inference.SystemSharedMemoryUnregisterRequest) (*inference.SystemSharedMemoryUnregisterResponse, error) {
	if err := s.shm.unregister(req.GetName()); err != nil {
		return nil, err
	}
	return &inference.SystemSharedMemoryUnregisterResponse{}, nil
}

// CUDA shared memory: tritonlite answers as a Triton built without GPU
// support does (no region can be registered; status and unregister find
// nothing).

// CudaSharedMemoryRegister refuses every region.
func (s *Server) CudaSharedMemoryRegister(_ context.Context, req *inference.CudaSharedMemoryRegisterRequest) (*inference.CudaSharedMemoryRegisterResponse, error) {
	return nil, status.Errorf(codes.InvalidArgument, "failed to register CUDA shared memory region: '%s', GPUs not supported", req.GetName())
}

// CudaSharedMemoryStatus reports no region.
func (s *Server) CudaSharedMemoryStatus(_ context.Context, req *inference.CudaSharedMemoryStatusRequest) (*inference.CudaSharedMemoryStatusResponse, error) {
	if n := req.GetName(); n != "" {
		if _, err := s.shm.statuses(n); err == nil {
			return nil, status.Errorf(codes.NotFound, "The region named '%s' is registered as system shared memory, not CUDA shared memory", n)
		}
		return nil, status.Errorf(codes.NotFound, "Unable to find cuda shared memory region: '%s'", n)
	}
	return &inference.CudaSharedMemoryStatusResponse{}, nil
}

// CudaSharedMemoryUnregister has nothing to unregister.
func (s *Server) CudaSharedMemoryUnregister(context.Context, *inference.CudaSharedMemoryUnregisterRequest) (*inference.CudaSharedMemoryUnregisterResponse, error) {
	return &inference.CudaSharedMemoryUnregisterResponse{}, nil
}
