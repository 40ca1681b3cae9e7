package server

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tritongate/tritongate/internal/tensor"
)

// Field numbers of ModelInferRequest, InferInputTensor and
// InferTensorContents (grpc_service.proto).
const (
	reqModelName    = 1
	reqModelVersion = 2
	reqID           = 3
	reqInputs       = 5
	reqRawContents  = 7
	inName          = 1
	inDatatype      = 2
	inShape         = 3
	inContents      = 5
	streamError     = 1
	streamResponse  = 2
)

// inferRequest is what the gateway reads of a ModelInferRequest.
type inferRequest struct {
	model, version, id string
	inputs             []inputInfo
	raw                [][]byte // raw_input_contents (aliases the request)
}

type inputInfo struct {
	name, datatype string
	shape          []int64
	contents       bool
	counts         [9]int // values per InferTensorContents field number (1..8)
}

// errWire is a request that is not valid protobuf.
type errWire struct{ msg string }

func (e errWire) Error() string { return e.msg }

// scanRequest reads the routing fields and the tensor descriptions of a
// serialized ModelInferRequest without copying tensor data.
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
			case reqInputs:
				in, err := scanInput(v)
				if err != nil {
					return nil, err
				}
				r.inputs = append(r.inputs, in)
			case reqRawContents:
				r.raw = append(r.raw, v)
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

func scanInput(b []byte) (inputInfo, error) {
	var in inputInfo
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return in, errWire{"malformed inference input"}
		}
		b = b[n:]
		switch {
		case num == inShape && typ == protowire.BytesType: // packed
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return in, errWire{"malformed inference input shape"}
			}
			for len(v) > 0 {
				d, k := protowire.ConsumeVarint(v)
				if k < 0 {
					return in, errWire{"malformed inference input shape"}
				}
				in.shape = append(in.shape, int64(d))
				v = v[k:]
			}
			b = b[m:]
		case num == inShape && typ == protowire.VarintType:
			d, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return in, errWire{"malformed inference input shape"}
			}
			in.shape = append(in.shape, int64(d))
			b = b[m:]
		case typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return in, errWire{"malformed inference input"}
			}
			switch num {
			case inName:
				in.name = string(v)
			case inDatatype:
				in.datatype = string(v)
			case inContents:
				in.contents = true
				if err := countContents(v, &in.counts); err != nil {
					return in, err
				}
			}
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return in, errWire{"malformed inference input"}
			}
			b = b[m:]
		}
	}
	return in, nil
}

// countContents counts the values in each typed field of InferTensorContents.
func countContents(b []byte, counts *[9]int) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 8 {
			if n >= 0 {
				m := protowire.ConsumeFieldValue(num, typ, b[n:])
				if m >= 0 {
					b = b[n+m:]
					continue
				}
			}
			return errWire{"malformed tensor contents"}
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return errWire{"malformed tensor contents"}
			}
			switch {
			case num == 8: // bytes_contents: one element per field
				counts[8]++
			case num == 6: // packed fp32
				counts[6] += len(v) / 4
			case num == 7: // packed fp64
				counts[7] += len(v) / 8
			default: // packed varints
				for len(v) > 0 {
					_, k := protowire.ConsumeVarint(v)
					if k < 0 {
						return errWire{"malformed tensor contents"}
					}
					counts[num]++
					v = v[k:]
				}
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return errWire{"malformed tensor contents"}
		}
		counts[num]++
		b = b[m:]
	}
	return nil
}

var contentsFields = [...]string{1: "bool_contents", 2: "int_contents", 3: "int64_contents", 4: "uint_contents",
	5: "uint64_contents", 6: "fp32_contents", 7: "fp64_contents", 8: "bytes_contents"}

// contentsFieldOf is the InferTensorContents field number that carries dt.
func contentsFieldOf(dt tensor.DataType) int {
	for i, name := range contentsFields {
		if name != "" && name == tensor.ContentsField(dt) {
			return i
		}
	}
	return 0
}

// validate checks the request's tensors against themselves (the gateway does
// not know the model): names, datatypes, shapes, and that the data present
// fits each shape. Messages name the input, in Triton's words where Triton
// has them.
func (r *inferRequest) validate() error {
	seen := map[string]bool{}
	for _, in := range r.inputs {
		if in.name == "" {
			return fmt.Errorf("inference input without a name for model '%s'", r.model)
		}
		if seen[in.name] {
			return fmt.Errorf("input '%s' already exists in request", in.name)
		}
		seen[in.name] = true
		dt, ok := tensor.Parse(in.datatype)
		if !ok {
			return fmt.Errorf("inference input '%s' has unknown datatype '%s' for model '%s'", in.name, in.datatype, r.model)
		}
		n, err := tensor.ElementCount(in.shape)
		if err != nil {
			return fmt.Errorf("inference input '%s' for model '%s': %v", in.name, r.model, err)
		}
		if in.contents && len(r.raw) > 0 {
			return fmt.Errorf("contents field must not be specified when using raw_input_contents for '%s' for model '%s'", in.name, r.model)
		}
		if in.contents {
			want := contentsFieldOf(dt)
			if want == 0 {
				return fmt.Errorf("inference input '%s' is %s, which has no typed contents field: send it in raw_input_contents", in.name, dt)
			}
			for f, c := range in.counts {
				if c > 0 && f != want {
					return fmt.Errorf("unexpected explicit tensor data for input tensor '%s' for model '%s': datatype %s expects values in %s, got %d in %s", in.name, r.model, dt, contentsFields[want], c, contentsFields[f])
				}
			}
			if int64(in.counts[want]) != n {
				return fmt.Errorf("inference input '%s' for model '%s': shape %s has %d elements, %s holds %d", in.name, r.model, tensor.FormatShape(in.shape), n, contentsFields[want], in.counts[want])
			}
		}
	}
	if len(r.raw) == 0 {
		for _, in := range r.inputs {
			if !in.contents {
				return fmt.Errorf("unable to find data for input tensor '%s' for model '%s' in request.", in.name, r.model)
			}
		}
		return nil
	}
	if len(r.raw) != len(r.inputs) {
		if len(r.raw) < len(r.inputs) {
			return fmt.Errorf("unable to find data for input tensor '%s' for model '%s' in request.", r.inputs[len(r.raw)].name, r.model)
		}
		return fmt.Errorf("model '%s': %d raw_input_contents for %d inputs", r.model, len(r.raw), len(r.inputs))
	}
	for i, in := range r.inputs {
		dt, _ := tensor.Parse(in.datatype)
		n, _ := tensor.ElementCount(in.shape)
		data := r.raw[i]
		if dt.Fixed() {
			want, err := tensor.ByteSize(dt, in.shape)
			if err != nil || want != int64(len(data)) {
				return fmt.Errorf("input byte size mismatch for input '%s' for model '%s'. Expected %d, got %d", in.name, r.model, want, len(data))
			}
			continue
		}
		// BYTES: length-prefixed elements.
		var count int64
		for len(data) > 0 {
			if len(data) < 4 {
				return fmt.Errorf("incomplete string length indicator for inference input '%s' for model '%s', expecting 4 bytes but only %d bytes available", in.name, r.model, len(data))
			}
			l := uint64(binary.LittleEndian.Uint32(data))
			if l > uint64(len(data)-4) {
				return fmt.Errorf("inference input '%s' for model '%s': string element %d claims %d bytes, only %d remain", in.name, r.model, count, l, len(data)-4)
			}
			data = data[4+l:]
			count++
		}
		if count != n {
			return fmt.Errorf("expected %d string elements for inference input '%s' for model '%s', got %d", n, in.name, r.model, count)
		}
	}
	return nil
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
