package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

// Request is one serialized ModelInferRequest, ready to send.
type Request struct {
	Model string
	// Rows is the request's batch size (inferences it asks for).
	Rows   int64
	body   frame
	framed []byte // the message with gRPC's length prefix, for the h2 client
}

// Bytes is the serialized request.
func (r *Request) Bytes() []byte { return r.body.b }

// NewRequest serializes a request.
func NewRequest(req *inference.ModelInferRequest, rows int64) (Request, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return Request{}, err
	}
	return Request{Model: req.GetModelName(), Rows: rows, body: frame{b}, framed: grpcFrame(b)}, nil
}

// InputSpec says how to build a model's requests.
type InputSpec struct {
	// Version asks for a model version ("" = latest).
	Version string
	// Batch is the leading dimension of generated inputs of batching models.
	Batch int64
	// Shapes give the full shape of generated inputs with variable dims;
	// other variable dims are 1.
	Shapes map[string][]int64
	// Files give an input's data: ONNX TensorProto (.pb), raw little-endian
	// bytes (.bin/.raw, shaped by Shapes or the metadata), or JSON (.json, a
	// KServe v2 tensor object or a flat array of values).
	Files map[string]string
	// Request is a whole request in KServe v2 JSON (the "inputs" array).
	Request string
	// Variants is how many distinct random requests to cycle through.
	Variants int
	// Seed for generated values.
	Seed uint64
}

// BuildRequests prepares a model's requests from its metadata and config.
func BuildRequests(ctx context.Context, c inference.GRPCInferenceServiceClient, model string, spec InputSpec) ([]Request, error) {
	md, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: model, Version: spec.Version})
	if err != nil {
		return nil, fmt.Errorf("model %s: metadata: %s", model, status.Convert(err).Message())
	}
	cfg, err := c.ModelConfig(ctx, &inference.ModelConfigRequest{Name: model, Version: spec.Version})
	if err != nil {
		return nil, fmt.Errorf("model %s: config: %s", model, status.Convert(err).Message())
	}
	batching := cfg.GetConfig().GetMaxBatchSize() > 0
	if spec.Batch <= 0 {
		spec.Batch = 1
	}
	if spec.Variants <= 0 {
		spec.Variants = 16
	}
	known := map[string]*inference.ModelMetadataResponse_TensorMetadata{}
	for _, in := range md.GetInputs() {
		known[in.GetName()] = in
	}
	for name := range spec.Files {
		if known[name] == nil {
			return nil, fmt.Errorf("model %s has no input %q (inputs: %s)", model, name, inputNames(md))
		}
	}
	for name := range spec.Shapes {
		if known[name] == nil {
			return nil, fmt.Errorf("model %s has no input %q (inputs: %s)", model, name, inputNames(md))
		}
	}
	if spec.Request != "" {
		ins, err := readRequestJSON(spec.Request)
		if err != nil {
			return nil, err
		}
		req := &inference.ModelInferRequest{ModelName: model, ModelVersion: spec.Version}
		tensor.SetRequestInputs(req, ins)
		r, err := NewRequest(req, rowsOf(ins, batching))
		return []Request{r}, err
	}
	fixed := map[string]tensor.Tensor{}
	for name, path := range spec.Files {
		t, err := readInputFile(path, known[name], spec.Shapes[name])
		if err != nil {
			return nil, err
		}
		t.Name = name
		fixed[name] = t
	}
	variants := spec.Variants
	if len(fixed) == len(md.GetInputs()) {
		variants = 1
	}
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed+1))
	out := make([]Request, 0, variants)
	for range variants {
		var ins []tensor.Tensor
		for _, in := range md.GetInputs() {
			if t, ok := fixed[in.GetName()]; ok {
				ins = append(ins, t)
				continue
			}
			shape, err := resolveShape(in, spec.Shapes[in.GetName()], batching, spec.Batch)
			if err != nil {
				return nil, fmt.Errorf("model %s: %w", model, err)
			}
			dt, ok := tensor.Parse(in.GetDatatype())
			if !ok {
				return nil, fmt.Errorf("model %s input %q: unknown datatype %q", model, in.GetName(), in.GetDatatype())
			}
			t, err := tensor.Random(in.GetName(), dt, shape, rng)
			if err != nil {
				return nil, fmt.Errorf("model %s input %q: %w", model, in.GetName(), err)
			}
			ins = append(ins, t)
		}
		req := &inference.ModelInferRequest{ModelName: model, ModelVersion: spec.Version}
		tensor.SetRequestInputs(req, ins)
		r, err := NewRequest(req, rowsOf(ins, batching))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func inputNames(md *inference.ModelMetadataResponse) string {
	var names []string
	for _, in := range md.GetInputs() {
		names = append(names, in.GetName())
	}
	return strings.Join(names, ", ")
}

func rowsOf(ins []tensor.Tensor, batching bool) int64 {
	if batching && len(ins) > 0 && len(ins[0].Shape) > 0 {
		return ins[0].Shape[0]
	}
	return 1
}

// resolveShape picks the shape of a generated input.
func resolveShape(in *inference.ModelMetadataResponse_TensorMetadata, given []int64, batching bool, batch int64) ([]int64, error) {
	meta := in.GetShape()
	if given != nil {
		if len(given) != len(meta) {
			return nil, fmt.Errorf("input %q: --shape has %d dims, the model's shape %s has %d", in.GetName(), len(given), tensor.FormatShape(meta), len(meta))
		}
		for i, d := range meta {
			if d != -1 && d != given[i] {
				return nil, fmt.Errorf("input %q: --shape %s does not fit the model's shape %s", in.GetName(), tensor.FormatShape(given), tensor.FormatShape(meta))
			}
		}
		return slices.Clone(given), nil
	}
	shape := slices.Clone(meta)
	for i, d := range shape {
		if d == -1 {
			shape[i] = 1
			if i == 0 && batching {
				shape[i] = batch
			}
		}
	}
	return shape, nil
}

// readInputFile reads one input's data.
func readInputFile(path string, in *inference.ModelMetadataResponse_TensorMetadata, shape []int64) (tensor.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return tensor.Tensor{}, err
	}
	dt, ok := tensor.Parse(in.GetDatatype())
	if !ok {
		return tensor.Tensor{}, fmt.Errorf("input %q: unknown datatype %q", in.GetName(), in.GetDatatype())
	}
	var t tensor.Tensor
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pb":
		var tp onnx.TensorProto
		if err := proto.Unmarshal(b, &tp); err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: not an ONNX TensorProto: %v", path, err)
		}
		if t, err = tensor.FromTensorProto(&tp); err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: %v", path, err)
		}
	case ".json":
		var jt jsonTensor
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		trimmed := bytes.TrimSpace(b)
		if len(trimmed) > 0 && trimmed[0] == '[' {
			if err := dec.Decode(&jt.Data); err != nil {
				return tensor.Tensor{}, fmt.Errorf("%s: %v", path, err)
			}
			jt.Shape, jt.Datatype = shape, in.GetDatatype()
		} else if err := dec.Decode(&jt); err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: %v", path, err)
		}
		if jt.Datatype == "" {
			jt.Datatype = in.GetDatatype()
		}
		if jt.Shape == nil {
			jt.Shape = shape
		}
		if t, err = jt.tensor(); err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: %v", path, err)
		}
	default: // raw little-endian bytes
		if shape == nil {
			shape = in.GetShape()
			if slices.Contains(shape, -1) {
				return tensor.Tensor{}, fmt.Errorf("%s: raw input %q has variable dims %s: give its shape with --shape", path, in.GetName(), tensor.FormatShape(shape))
			}
		}
		t = tensor.Tensor{DataType: dt, Shape: shape, Data: b}
	}
	if t.DataType != dt {
		return tensor.Tensor{}, fmt.Errorf("%s: data is %s, input %q is %s", path, t.DataType, in.GetName(), dt)
	}
	if err := t.Validate(); err != nil {
		return tensor.Tensor{}, fmt.Errorf("%s: %v", path, err)
	}
	return t, nil
}

// jsonTensor is a tensor in KServe v2 JSON: name, shape, datatype and data
// (flat or nested arrays; strings for BYTES).
type jsonTensor struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	Data     any     `json:"data"`
}

func flatten(v any, out *[]any) {
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			flatten(x, out)
		}
		return
	}
	*out = append(*out, v)
}

func (j jsonTensor) tensor() (tensor.Tensor, error) {
	dt, ok := tensor.Parse(j.Datatype)
	if !ok {
		return tensor.Tensor{}, fmt.Errorf("tensor %q: unknown datatype %q", j.Name, j.Datatype)
	}
	var vals []any
	flatten(j.Data, &vals)
	n, err := tensor.ElementCount(j.Shape)
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("tensor %q: %v", j.Name, err)
	}
	if int64(len(vals)) != n {
		return tensor.Tensor{}, fmt.Errorf("tensor %q: shape %s needs %d values, data has %d", j.Name, tensor.FormatShape(j.Shape), n, len(vals))
	}
	if dt == tensor.Bytes {
		strs := make([]string, len(vals))
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				return tensor.Tensor{}, fmt.Errorf("tensor %q: BYTES value %d is %v, not a string", j.Name, i, v)
			}
			strs[i] = s
		}
		return tensor.OfStrings(j.Name, j.Shape, strs), nil
	}
	nums := make([]float64, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return tensor.Tensor{}, fmt.Errorf("tensor %q: value %d: %v", j.Name, i, err)
			}
			nums[i] = f
		case bool:
			if x {
				nums[i] = 1
			}
		default:
			return tensor.Tensor{}, fmt.Errorf("tensor %q: value %d is %v, not a number", j.Name, i, v)
		}
	}
	return numericTensor(j.Name, dt, j.Shape, nums)
}

func numericTensor(name string, dt tensor.DataType, shape []int64, v []float64) (tensor.Tensor, error) {
	conv := func(lo, hi float64) error {
		for i, x := range v {
			if x < lo || x > hi || x != math.Trunc(x) {
				return fmt.Errorf("tensor %q: value %d (%g) is not a %s", name, i, x, dt)
			}
		}
		return nil
	}
	var err error
	switch dt {
	case tensor.Bool:
		b := make([]bool, len(v))
		for i, x := range v {
			b[i] = x != 0
		}
		return tensor.Of(name, shape, b), nil
	case tensor.Int8:
		if err = conv(math.MinInt8, math.MaxInt8); err == nil {
			return tensor.Of(name, shape, mapTo[int8](v)), nil
		}
	case tensor.Int16:
		if err = conv(math.MinInt16, math.MaxInt16); err == nil {
			return tensor.Of(name, shape, mapTo[int16](v)), nil
		}
	case tensor.Int32:
		if err = conv(math.MinInt32, math.MaxInt32); err == nil {
			return tensor.Of(name, shape, mapTo[int32](v)), nil
		}
	case tensor.Int64:
		if err = conv(-(1 << 63), 1<<63-1); err == nil {
			return tensor.Of(name, shape, mapTo[int64](v)), nil
		}
	case tensor.Uint8:
		if err = conv(0, math.MaxUint8); err == nil {
			return tensor.Of(name, shape, mapTo[uint8](v)), nil
		}
	case tensor.Uint16:
		if err = conv(0, math.MaxUint16); err == nil {
			return tensor.Of(name, shape, mapTo[uint16](v)), nil
		}
	case tensor.Uint32:
		if err = conv(0, math.MaxUint32); err == nil {
			return tensor.Of(name, shape, mapTo[uint32](v)), nil
		}
	case tensor.Uint64:
		if err = conv(0, 1<<64-1); err == nil {
			return tensor.Of(name, shape, mapTo[uint64](v)), nil
		}
	case tensor.FP32:
		return tensor.Of(name, shape, mapTo[float32](v)), nil
	case tensor.FP64:
		return tensor.Of(name, shape, v), nil
	case tensor.FP16:
		return tensor.OfFP16(name, shape, mapTo[float32](v)), nil
	case tensor.BF16:
		return tensor.OfBF16(name, shape, mapTo[float32](v)), nil
	default:
		err = fmt.Errorf("tensor %q: datatype %s", name, dt)
	}
	return tensor.Tensor{}, err
}

func mapTo[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32](v []float64) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[i] = T(x)
	}
	return out
}

// readRequestJSON reads a KServe v2 JSON inference request: {"inputs": [...]}.
func readRequestJSON(path string) ([]tensor.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var req struct {
		Inputs []jsonTensor `json:"inputs"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%s: not a KServe v2 JSON request: %v", path, err)
	}
	if len(req.Inputs) == 0 {
		return nil, fmt.Errorf("%s: no \"inputs\"", path)
	}
	out := make([]tensor.Tensor, len(req.Inputs))
	for i, jt := range req.Inputs {
		t, err := jt.tensor()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		out[i] = t
	}
	return out, nil
}
