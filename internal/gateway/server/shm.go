package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/proto/inference"
)

// Shared memory. A client's system (or CUDA) shared memory is on the
// client's host, not on the Triton pods behind the gateway, so the gateway
// registers no region. It answers the rest of the extension as Triton does
// for a server with no region registered: status lists none (NOT_FOUND
// with Triton's message for a named region), unregistering is a no-op, and
// an inference naming a region is relayed, so the backend answers with
// Triton's "Unable to find shared memory region". ServerMetadata does not
// list the shared-memory extensions.

const errSharedMemory = "the gateway does not support %s shared memory: a region on the client's host is not visible to the Triton backends behind it; send the tensors in the request (raw_input_contents)"

func (s *Server) systemSharedMemoryStatus(_ context.Context, req *inference.SystemSharedMemoryStatusRequest) (any, error) {
	if req.GetName() != "" {
		return nil, status.Errorf(codes.NotFound, "Unable to find system shared memory region: '%s'", req.GetName())
	}
	return &inference.SystemSharedMemoryStatusResponse{}, nil
}

func (s *Server) systemSharedMemoryRegister(context.Context, *inference.SystemSharedMemoryRegisterRequest) (any, error) {
	return nil, status.Errorf(codes.Unimplemented, errSharedMemory, "system")
}

func (s *Server) systemSharedMemoryUnregister(context.Context, *inference.SystemSharedMemoryUnregisterRequest) (any, error) {
	return &inference.SystemSharedMemoryUnregisterResponse{}, nil
}

func (s *Server) cudaSharedMemoryStatus(_ context.Context, req *inference.CudaSharedMemoryStatusRequest) (any, error) {
	if req.GetName() != "" {
		return nil, status.Errorf(codes.NotFound, "Unable to find cuda shared memory region: '%s'", req.GetName())
	}
	return &inference.CudaSharedMemoryStatusResponse{}, nil
}

func (s *Server) cudaSharedMemoryRegister(context.Context, *inference.CudaSharedMemoryRegisterRequest) (any, error) {
	return nil, status.Errorf(codes.Unimplemented, errSharedMemory, "CUDA")
}

func (s *Server) cudaSharedMemoryUnregister(context.Context, *inference.CudaSharedMemoryUnregisterRequest) (any, error) {
	return &inference.CudaSharedMemoryUnregisterResponse{}, nil
}
