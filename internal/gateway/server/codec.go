package server

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec we fall back to
)

// The gateway proxies inference requests and responses as bytes: it reads
// the few fields it routes on straight from the wire and never decodes or
// re-encodes the tensors. rawMsg is such a message; everything else (health,
// reflection, metadata RPCs) goes through the regular proto codec.
type rawMsg struct {
	b     []byte
	extra []byte // fields appended to b (overrides: in protobuf the last value of a field wins)
}

func (m *rawMsg) size() int { return len(m.b) + len(m.extra) }

// codec is registered as "proto": raw for rawMsg, protobuf for the rest.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMsg); ok {
		out := mem.BufferSlice{mem.SliceBuffer(m.b)}
		if len(m.extra) > 0 {
			out = append(out, mem.SliceBuffer(m.extra))
		}
		return out, nil
	}
	if _, ok := v.(proto.Message); !ok {
		return nil, fmt.Errorf("gateway codec: cannot marshal %T", v)
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMsg); ok {
		m.b, m.extra = data.Materialize(), nil
		return nil
	}
	return c.proto.Unmarshal(data, v)
}
