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
	// The sequence the request belongs to (parameters sequence_id,
	// sequence_start, sequence_end); seqID "" outside any.
	seqID            string
	seqStart, seqEnd bool
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
			case reqParameters:
				r.scanParameter(v)
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

// finalResponseParam is the ModelInferResponse field
// parameters["triton_final_response"] = bool_param true, which Triton's
// stream handler sets on every response of a model that is not decoupled.
var finalResponseParam = func() []byte {
	value := protowire.AppendTag(nil, 1, protowire.VarintType) // InferParameter.bool_param
	value = protowire.AppendVarint(value, 1)
	entry := protowire.AppendTag(nil, 1, protowire.BytesType) // map key
	entry = protowire.AppendString(entry, "triton_final_response")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType) // map value
	entry = protowire.AppendBytes(entry, value)
	b := protowire.AppendTag(nil, respParameters, protowire.BytesType)
	return protowire.AppendBytes(b, entry)
}()

// respParameters is ModelInferResponse.parameters.
const respParameters = 4

// streamOK wraps a serialized ModelInferResponse (a unary answer of a
// backend) as a ModelStreamInferResponse (field infer_response), marked as
// the request's final response as Triton marks it, without copying it: the
// parameter goes first (a map entry may come anywhere; a later
// triton_final_response of the backend's would win).
func streamOK(resp *rawMsg) *rawMsg {
	prefix := protowire.AppendTag(nil, streamResponse, protowire.BytesType)
	prefix = protowire.AppendVarint(prefix, uint64(len(finalResponseParam)+resp.size()))
	prefix = append(prefix, finalResponseParam...)
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
