package server

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of ModelInferRequest and ModelStreamInferResponse
// (grpc_service.proto).
const (
	reqModelName    = 1
	reqModelVersion = 2
	reqID           = 3
	streamError     = 1
	streamResponse  = 2
)

// inferRequest is what the gateway reads of a ModelInferRequest: the
// fields it routes on. The tensors are the backend's business: Triton
// checks them against the model's config in an order that depends on it
// (requested outputs, input count, names, batch size, datatypes, shapes,
// then sizes), so only a backend answers a bad request in Triton's words.
type inferRequest struct {
	model, version, id string
}

// errWire is a request that is not valid protobuf.
type errWire struct{ msg string }

func (e errWire) Error() string { return e.msg }

// scanRequest reads the routing fields of a serialized ModelInferRequest
// without copying or decoding the tensors.
func scanRequest(b []byte) (*inferRequest, error) {
	r := &inferRequest{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errWire{"malformed ModelInferRequest"}
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, errWire{"malformed ModelInferRequest: truncated field"}
			}
			switch num {
			case reqModelName:
				r.model = string(v)
			case reqModelVersion:
				r.version = string(v)
			case reqID:
				r.id = string(v)
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, errWire{"malformed ModelInferRequest"}
		}
		b = b[m:]
	}
	return r, nil
}

// appendString appends a string field (overriding an earlier value).
func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// streamOK wraps a serialized ModelInferResponse as a
// ModelStreamInferResponse (field infer_response), without copying it.
func streamOK(resp *rawMsg) *rawMsg {
	prefix := protowire.AppendTag(nil, streamResponse, protowire.BytesType)
	prefix = protowire.AppendVarint(prefix, uint64(resp.size()))
	out := &rawMsg{b: prefix}
	if len(resp.extra) > 0 {
		// Rare (responses carry no overrides); join to keep one extra.
		out.b = append(append(prefix, resp.b...), resp.extra...)
		return out
	}
	out.extra = resp.b
	return out
}

// readString finds the last value of a string field in a message.
func readString(b []byte, want protowire.Number) string {
	var out string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return out
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return out
		}
		if num == want && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			out = string(v)
		}
		b = b[m:]
	}
	return out
}
