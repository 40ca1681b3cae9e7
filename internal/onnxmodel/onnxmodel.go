// Package onnxmodel reads the metadata of an ONNX model (its inputs and outputs,
// opsets, IR version, producer, external data references) without cgo and
// without holding the weights in memory: the file is walked as protobuf wire
// format and weight bytes are skipped (by seeking when the source is a file).
package onnxmodel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

// Kind is what an ONNX graph input or output holds.
type Kind string

// The kinds of ONNX values. Triton serves only Tensor.
const (
	KindTensor       Kind = "tensor"
	KindSequence     Kind = "sequence"
	KindMap          Kind = "map"
	KindOptional     Kind = "optional"
	KindSparseTensor Kind = "sparse_tensor"
	KindOpaque       Kind = "opaque"
	KindUnknown      Kind = "unknown"
)

// Value is a graph input or output as ONNX Runtime reports it to Triton.
type Value struct {
	Name string
	Kind Kind
	// ElemType is the ONNX element type (for tensors).
	ElemType onnx.TensorProto_DataType
	// DataType is the Triton config type Triton's ONNX Runtime backend maps
	// ElemType to (STRING → TYPE_STRING); TYPE_INVALID when there is none.
	DataType inference.DataType
	// Dims holds the shape: fixed dims as their value, symbolic or unknown dims
	// as -1. A tensor without shape information has no dims (rank 0).
	Dims []int64
	// DimParams holds the symbolic name of each dim ("" where fixed or unnamed).
	DimParams []string
	// HasShape is false when the model declares no shape at all.
	HasShape bool
}

// APIType is the protocol datatype name of v ("FP32", "BYTES"), or "INVALID".
func (v Value) APIType() string { return tensor.FromConfig(v.DataType).String() }

// Opset is one entry of the model's opset_import.
type Opset struct {
	Domain  string // "" is the default ai.onnx domain
	Version int64
}

// Model is the metadata of an ONNX model.
type Model struct {
	IRVersion       int64
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	GraphName       string
	Opsets          []Opset
	Metadata        map[string]string
	// Inputs are the graph inputs that are not initializers (ONNX Runtime treats
	// inputs with an initializer as overridable constants, not model inputs).
	Inputs  []Value
	Outputs []Value
	// OverridableInitializers are the graph inputs that have an initializer:
	// constants a request may replace. They are not model inputs.
	OverridableInitializers []Value
	// Nodes is the number of nodes in the main graph.
	Nodes int
	// Initializers and InitializerBytes count the weights of the main graph and
	// the bytes they occupy in the file.
	Initializers     int
	InitializerBytes int64
	// ExternalData lists, sorted and without repeats, the files (relative to the
	// model) that hold tensor data outside the model file, in any graph.
	ExternalData []string
}

// Input returns the input named name.
func (m *Model) Input(name string) (Value, bool) { return find(m.Inputs, name) }

// Output returns the output named name.
func (m *Model) Output(name string) (Value, bool) { return find(m.Outputs, name) }

func find(vs []Value, name string) (Value, bool) {
	for _, v := range vs {
		if v.Name == name {
			return v, true
		}
	}
	return Value{}, false
}

// Opset returns the opset version imported for a domain ("" or "ai.onnx" for
// the default domain), or 0.
func (m *Model) Opset(domain string) int64 {
	if domain == "ai.onnx" {
		domain = ""
	}
	for _, o := range m.Opsets {
		if o.Domain == domain || (domain == "" && o.Domain == "ai.onnx") {
			return o.Version
		}
	}
	return 0
}

// ErrNotONNX is wrapped by every error about a file that is not a readable ONNX model.
var ErrNotONNX = errors.New("not a valid ONNX model")

// Inspect reads the metadata of the ONNX model at path. Errors name the file.
func Inspect(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, not an ONNX model file", path)
	}
	m, err := Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Read reads model metadata from r; size is the stream's length, or -1 if
// unknown. When r is an io.Seeker, weights are skipped by seeking.
func Read(r io.Reader, size int64) (*Model, error) {
	w := newWireReader(r, size)
	m := &Model{}
	p := &parser{w: w, m: m}
	if err := p.model(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotONNX, err)
	}
	if size >= 0 && w.off != size {
		return nil, fmt.Errorf("%w: %d bytes read of %d", ErrNotONNX, w.off, size)
	}
	if m.IRVersion <= 0 {
		return nil, fmt.Errorf("%w: no ir_version", ErrNotONNX)
	}
	if !p.sawGraph {
		return nil, fmt.Errorf("%w: no graph", ErrNotONNX)
	}
	if m.IRVersion >= 3 && len(m.Opsets) == 0 {
		return nil, fmt.Errorf("%w: ir_version %d requires opset_import", ErrNotONNX, m.IRVersion)
	}
	return m, nil
}

type parser struct {
	w        *wireReader
	m        *Model
	sawGraph bool
	external map[string]bool
}

func wantType(num protowire.Number, typ, want protowire.Type) error {
	if typ != want {
		return fmt.Errorf("field %d has wire type %d, want %d", num, typ, want)
	}
	return nil
}

func (p *parser) int(num protowire.Number, typ protowire.Type) (int64, error) {
	if err := wantType(num, typ, protowire.VarintType); err != nil {
		return 0, err
	}
	v, err := p.w.varint()
	return int64(v), err
}

func (p *parser) str(num protowire.Number, typ protowire.Type, end int64) (string, error) {
	b, err := p.small(num, typ, end)
	return string(b), err
}

// small reads a length-delimited field into memory.
func (p *parser) small(num protowire.Number, typ protowire.Type, end int64) ([]byte, error) {
	if err := wantType(num, typ, protowire.BytesType); err != nil {
		return nil, err
	}
	n, err := p.w.length(end)
	if err != nil {
		return nil, err
	}
	return p.w.bytes(n)
}

// sub reads the length of a sub-message and returns its end offset.
func (p *parser) sub(num protowire.Number, typ protowire.Type, end int64) (int64, error) {
	if err := wantType(num, typ, protowire.BytesType); err != nil {
		return 0, err
	}
	n, err := p.w.length(end)
	if err != nil {
		return 0, err
	}
	return p.w.off + n, nil
}

// ModelProto field numbers.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelDomain          = 4
	modelModelVersion    = 5
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14
	modelTrainingInfo    = 20
	modelFunctions       = 25
)

func (p *parser) model() error {
	for {
		num, typ, ok, err := p.w.tag(-1)
		if err != nil || !ok {
			if err == nil {
				slices.Sort(p.m.ExternalData)
			}
			return err
		}
		switch num {
		case modelIRVersion:
			p.m.IRVersion, err = p.int(num, typ)
		case modelProducerName:
			p.m.ProducerName, err = p.str(num, typ, -1)
		case modelProducerVersion:
			p.m.ProducerVersion, err = p.str(num, typ, -1)
		case modelDomain:
			p.m.Domain, err = p.str(num, typ, -1)
		case modelModelVersion:
			p.m.ModelVersion, err = p.int(num, typ)
		case modelOpsetImport:
			var b []byte
			if b, err = p.small(num, typ, -1); err == nil {
				var o onnx.OperatorSetIdProto
				if err = proto.Unmarshal(b, &o); err == nil {
					p.m.Opsets = append(p.m.Opsets, Opset{Domain: o.GetDomain(), Version: o.GetVersion()})
				}
			}
		case modelMetadataProps:
			var b []byte
			if b, err = p.small(num, typ, -1); err == nil {
				var kv onnx.StringStringEntryProto
				if err = proto.Unmarshal(b, &kv); err == nil {
					if p.m.Metadata == nil {
						p.m.Metadata = map[string]string{}
					}
					p.m.Metadata[kv.GetKey()] = kv.GetValue()
				}
			}
		case modelGraph:
			var end int64
			if end, err = p.sub(num, typ, -1); err == nil {
				if p.sawGraph {
					return fmt.Errorf("more than one graph")
				}
				p.sawGraph = true
				err = p.graph(end, true)
			}
		case modelTrainingInfo, modelFunctions:
			// Functions and training graphs can hold tensors too: scan them for
			// external data, nothing else.
			var end int64
			if end, err = p.sub(num, typ, -1); err == nil {
				err = p.scanExternal(num, end)
			}
		default:
			err = p.w.skipField(num, typ, -1)
		}
		if err != nil {
			return fmt.Errorf("model field %d: %w", num, err)
		}
	}
}

// GraphProto field numbers.
const (
	graphNode               = 1
	graphName               = 2
	graphInitializer        = 5
	graphInput              = 11
	graphOutput             = 12
	graphSparseInitializer  = 15
	sparseTensorValues      = 1
	sparseTensorIndices     = 2
	nodeAttribute           = 5
	attributeTensor         = 5
	attributeGraph          = 6
	attributeTensors        = 9
	attributeGraphs         = 10
	attributeSparseTensor   = 22
	attributeSparseTensors  = 23
	tensorName              = 8
	tensorRawData           = 9
	tensorExternalData      = 13
	tensorDataLocation      = 14
	stringEntryKey          = 1
	stringEntryValue        = 2
	externalDataLocationKey = "location"
	functionNode            = 7
	trainingInitialization  = 1
	trainingAlgorithm       = 2
)

// graph walks a GraphProto ending at end. For the main graph (top) it records
// inputs, outputs and weight statistics; for every graph it records external data.
func (p *parser) graph(end int64, top bool) error {
	var inputs []Value
	initNames := map[string]bool{}
	for {
		num, typ, ok, err := p.w.tag(end)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch {
		case top && (num == graphInput || num == graphOutput):
			var b []byte
			if b, err = p.small(num, typ, end); err == nil {
				var vi onnx.ValueInfoProto
				if err = proto.Unmarshal(b, &vi); err == nil {
					v := valueOf(&vi)
					if num == graphInput {
						inputs = append(inputs, v)
					} else {
						p.m.Outputs = append(p.m.Outputs, v)
					}
				}
			}
		case top && num == graphName:
			p.m.GraphName, err = p.str(num, typ, end)
		case num == graphInitializer:
			var tend int64
			if tend, err = p.sub(num, typ, end); err == nil {
				start := p.w.off
				var name string
				name, err = p.tensor(tend)
				if top && err == nil {
					initNames[name] = true
					p.m.Initializers++
					p.m.InitializerBytes += tend - start
				}
			}
		case num == graphSparseInitializer:
			var send int64
			if send, err = p.sub(num, typ, end); err == nil {
				var name string
				name, err = p.sparseTensor(send)
				if top && err == nil {
					initNames[name] = true
					p.m.Initializers++
				}
			}
		case num == graphNode:
			var nend int64
			if nend, err = p.sub(num, typ, end); err == nil {
				if top {
					p.m.Nodes++
				}
				err = p.node(nend)
			}
		default:
			err = p.w.skipField(num, typ, end)
		}
		if err != nil {
			return fmt.Errorf("graph field %d: %w", num, err)
		}
	}
	if top {
		for _, in := range inputs {
			if initNames[in.Name] {
				p.m.OverridableInitializers = append(p.m.OverridableInitializers, in)
			} else {
				p.m.Inputs = append(p.m.Inputs, in)
			}
		}
	}
	return nil
}

// node walks a NodeProto's attributes for tensors and subgraphs.
func (p *parser) node(end int64) error {
	for {
		num, typ, ok, err := p.w.tag(end)
		if err != nil || !ok {
			return err
		}
		if num == nodeAttribute {
			var aend int64
			if aend, err = p.sub(num, typ, end); err == nil {
				err = p.attribute(aend)
			}
		} else {
			err = p.w.skipField(num, typ, end)
		}
		if err != nil {
			return fmt.Errorf("node field %d: %w", num, err)
		}
	}
}

func (p *parser) attribute(end int64) error {
	for {
		num, typ, ok, err := p.w.tag(end)
		if err != nil || !ok {
			return err
		}
		var e int64
		switch num {
		case attributeTensor, attributeTensors:
			if e, err = p.sub(num, typ, end); err == nil {
				_, err = p.tensor(e)
			}
		case attributeSparseTensor, attributeSparseTensors:
			if e, err = p.sub(num, typ, end); err == nil {
				_, err = p.sparseTensor(e)
			}
		case attributeGraph, attributeGraphs:
			if e, err = p.sub(num, typ, end); err == nil {
				err = p.graph(e, false)
			}
		default:
			err = p.w.skipField(num, typ, end)
		}
		if err != nil {
			return fmt.Errorf("attribute field %d: %w", num, err)
		}
	}
}

// scanExternal walks a FunctionProto or TrainingInfoProto for tensors with
// external data: a function's nodes (field 7), training info's graphs (1 and 2).
func (p *parser) scanExternal(kind protowire.Number, end int64) error {
	for {
		num, typ, ok, err := p.w.tag(end)
		if err != nil || !ok {
			return err
		}
		var e int64
		switch {
		case kind == modelFunctions && num == functionNode:
			if e, err = p.sub(num, typ, end); err == nil {
				err = p.node(e)
			}
		case kind == modelTrainingInfo && (num == trainingInitialization || num == trainingAlgorithm):
			if e, err = p.sub(num, typ, end); err == nil {
				err = p.graph(e, false)
			}
		default:
			err = p.w.skipField(num, typ, end)
		}
		if err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
}

// tensor walks a TensorProto: its name and external data location are read,
// its data skipped.
func (p *parser) tensor(end int64) (string, error) {
	var name string
	var location string
	external := false
	for {
		num, typ, ok, err := p.w.tag(end)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		switch num {
		case tensorName:
			name, err = p.str(num, typ, end)
		case tensorDataLocation:
			var v int64
			v, err = p.int(num, typ)
			external = v == int64(onnx.TensorProto_EXTERNAL)
		case tensorExternalData:
			var b []byte
			if b, err = p.small(num, typ, end); err == nil {
				var kv onnx.StringStringEntryProto
				if err = proto.Unmarshal(b, &kv); err == nil && kv.GetKey() == externalDataLocationKey {
					location = kv.GetValue()
				}
			}
		default:
			err = p.w.skipField(num, typ, end)
		}
		if err != nil {
			return "", fmt.Errorf("tensor %q field %d: %w", name, num, err)
		}
	}
	if external {
		if location == "" {
			return "", fmt.Errorf("tensor %q has external data without a location", name)
		}
		if p.external == nil {
			p.external = map[string]bool{}
		}
		if !p.external[location] {
			p.external[location] = true
			p.m.ExternalData = append(p.m.ExternalData, location)
		}
	}
	return name, nil
}

func (p *parser) sparseTensor(end int64) (string, error) {
	var name string
	for {
		num, typ, ok, err := p.w.tag(end)
		if err != nil || !ok {
			return name, err
		}
		switch num {
		case sparseTensorValues:
			var e int64
			if e, err = p.sub(num, typ, end); err == nil {
				name, err = p.tensor(e)
			}
		case sparseTensorIndices:
			var e int64
			if e, err = p.sub(num, typ, end); err == nil {
				_, err = p.tensor(e)
			}
		default:
			err = p.w.skipField(num, typ, end)
		}
		if err != nil {
			return "", fmt.Errorf("sparse tensor field %d: %w", num, err)
		}
	}
}

func valueOf(vi *onnx.ValueInfoProto) Value {
	v := Value{Name: vi.GetName(), Kind: KindUnknown}
	t := vi.GetType()
	switch {
	case t.GetTensorType() != nil:
		v.Kind = KindTensor
		tt := t.GetTensorType()
		v.ElemType = onnx.TensorProto_DataType(tt.GetElemType())
		v.DataType = tensor.FromONNX(v.ElemType).Config()
		if sh := tt.GetShape(); sh != nil {
			v.HasShape = true
			v.Dims = []int64{}
			v.DimParams = []string{}
			for _, d := range sh.GetDim() {
				switch {
				case d.GetDimParam() != "":
					v.Dims = append(v.Dims, -1)
					v.DimParams = append(v.DimParams, d.GetDimParam())
				case d.Value == nil:
					v.Dims = append(v.Dims, -1)
					v.DimParams = append(v.DimParams, "")
				default:
					v.Dims = append(v.Dims, d.GetDimValue())
					v.DimParams = append(v.DimParams, "")
				}
			}
		}
	case t.GetSequenceType() != nil:
		v.Kind = KindSequence
	case t.GetMapType() != nil:
		v.Kind = KindMap
	case t.GetOptionalType() != nil:
		v.Kind = KindOptional
	case t.GetSparseTensorType() != nil:
		v.Kind = KindSparseTensor
	case t.GetOpaqueType() != nil:
		v.Kind = KindOpaque
	}
	return v
}

// SortedNames returns the names of vs sorted, as Triton lists them in messages.
func SortedNames(vs []Value) []string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	sort.Strings(names)
	return names
}
