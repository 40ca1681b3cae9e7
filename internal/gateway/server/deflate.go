package server

// Triton's gRPC server takes the "gzip" and "deflate" message encodings;
// so does the gateway. Compressed calls take the relayed path (see
// fastEligible).
import _ "github.com/tritongate/tritongate/internal/triton/deflate"
