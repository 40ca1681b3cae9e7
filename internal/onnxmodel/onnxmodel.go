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
	"google.golang.org/protobuf/reflect/protoreflect"

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

// The reader walks the file as protobuf's decoder does, guided by the
// message descriptors of onnx.proto (proto/onnx): a known field with the wire
// type its declaration expects is decoded (messages recursively, packed
// repeated scalars checked element by element), a field it does not know or
// with another wire type is skipped as an unknown field, and a singular
// message field that occurs more than once is merged into one. So it accepts
// exactly the files proto.Unmarshal accepts (TestAgreesWithProtobuf and
// FuzzAgreesWithProtobuf check it), while holding only small messages (value
// infos, opset ids, metadata entries) in memory and skipping weight bytes.

// maxDepth bounds message nesting, as protobuf's decoder does.
const maxDepth = protowire.DefaultRecursionLimit

// Message descriptors of the messages the reader reads fields of.
var (
	modelDesc        = (&onnx.ModelProto{}).ProtoReflect().Descriptor()
	graphDesc        = (&onnx.GraphProto{}).ProtoReflect().Descriptor()
	tensorDesc       = (&onnx.TensorProto{}).ProtoReflect().Descriptor()
	sparseTensorDesc = (&onnx.SparseTensorProto{}).ProtoReflect().Descriptor()
)

type parser struct {
	w        *wireReader
	m        *Model
	sawGraph bool
	inputs   []Value
	inits    map[string]bool // names of the main graph's initializers
	external map[string]bool
}

// tensorState is what the reader keeps of one TensorProto (merged over the
// occurrences of a singular field).
type tensorState struct {
	name     string
	external bool   // data_location EXTERNAL
	location string // the last external_data entry keyed "location"
}

// sparseState is what the reader keeps of one SparseTensorProto.
type sparseState struct {
	values, indices tensorState
	sawValues       bool
	sawIndices      bool
}

func (p *parser) int(num protowire.Number, typ protowire.Type) (int64, error) {
	v, err := p.w.varint()
	return int64(v), err
}

func (p *parser) str(num protowire.Number, typ protowire.Type, end int64) (string, error) {
	b, err := p.small(num, typ, end)
	return string(b), err
}

// small reads a length-delimited field into memory.
func (p *parser) small(num protowire.Number, typ protowire.Type, end int64) ([]byte, error) {
	n, err := p.w.length(end)
	if err != nil {
		return nil, err
	}
	return p.w.bytes(n)
}

// sub reads the length of a sub-message and returns its end offset.
func (p *parser) sub(end int64) (int64, error) {
	n, err := p.w.length(end)
	if err != nil {
		return 0, err
	}
	return p.w.off + n, nil
}

// wireOK says whether typ is a wire type protobuf decodes field fd from;
// any other is kept as an unknown field.
func wireOK(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	want := scalarWire(fd.Kind())
	if fd.IsList() && want != protowire.BytesType && want != protowire.StartGroupType && typ == protowire.BytesType {
		return true // packed
	}
	return typ == want
}

func scalarWire(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.BytesType // string, bytes, message
}

// fieldFunc reads a field of a message the walker was given a handler for;
// handled false leaves the field to the generic walk.
type fieldFunc func(fd protoreflect.FieldDescriptor, end int64) (handled bool, err error)

// walk reads a message of type md ending at end (-1: the stream's end). Known
// fields go to fn first (when set); message fields it leaves are walked
// recursively (tensors and graphs anywhere are read for external data),
// scalars are checked and skipped, unknown fields skipped.
func (p *parser) walk(md protoreflect.MessageDescriptor, end int64, depth int, fn fieldFunc) error {
	if depth > maxDepth {
		return errors.New("exceeded maximum recursion depth")
	}
	// Singular TensorProto and SparseTensorProto fields merge over their
	// occurrences: they are judged at the end of this message.
	var tensors map[protowire.Number]*tensorState
	var sparse map[protowire.Number]*sparseState
	for {
		num, typ, ok, err := p.w.tag(end)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		fd := md.Fields().ByNumber(num)
		if fd == nil || !wireOK(fd, typ) {
			if err := p.w.skipField(num, typ, end, depth); err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			continue
		}
		if fn != nil {
			handled, err := fn(fd, end)
			if err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			if handled {
				continue
			}
		}
		if err := p.field(fd, typ, end, depth, &tensors, &sparse); err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	for _, ts := range tensors {
		if err := p.endTensor(ts); err != nil {
			return err
		}
	}
	for _, ss := range sparse {
		if err := p.endSparse(ss); err != nil {
			return err
		}
	}
	return nil
}

// field reads one known field of the expected wire type generically.
func (p *parser) field(fd protoreflect.FieldDescriptor, typ protowire.Type, end int64, depth int,
	tensors *map[protowire.Number]*tensorState, sparse *map[protowire.Number]*sparseState) error {
	switch {
	case fd.Kind() == protoreflect.MessageKind:
		sub, err := p.sub(end)
		if err != nil {
			return err
		}
		switch fd.Message().FullName() {
		case tensorDesc.FullName():
			if fd.IsList() {
				var ts tensorState
				if err := p.tensor(sub, depth+1, &ts); err != nil {
					return err
				}
				return p.endTensor(&ts)
			}
			ts := merged(tensors, fd.Number())
			return p.tensor(sub, depth+1, ts)
		case sparseTensorDesc.FullName():
			if fd.IsList() {
				var ss sparseState
				if err := p.sparseTensor(sub, depth+1, &ss); err != nil {
					return err
				}
				return p.endSparse(&ss)
			}
			ss := merged(sparse, fd.Number())
			return p.sparseTensor(sub, depth+1, ss)
		}
		return p.walk(fd.Message(), sub, depth+1, nil)
	case fd.Kind() == protoreflect.GroupKind:
		return p.w.skipField(fd.Number(), typ, end, depth)
	case typ == protowire.BytesType && scalarWire(fd.Kind()) != protowire.BytesType:
		return p.packed(fd, end)
	}
	return p.w.skipField(fd.Number(), typ, end, depth)
}

// merged is the state of singular field num of a message, made on its first
// occurrence: later occurrences merge into it, as protobuf merges them.
func merged[T any](states *map[protowire.Number]*T, num protowire.Number) *T {
	if *states == nil {
		*states = map[protowire.Number]*T{}
	}
	st := (*states)[num]
	if st == nil {
		st = new(T)
		(*states)[num] = st
	}
	return st
}

// packed checks the elements of a packed repeated scalar field, as
// protobuf's decoder does, without keeping them.
func (p *parser) packed(fd protoreflect.FieldDescriptor, end int64) error {
	n, err := p.w.length(end)
	if err != nil {
		return err
	}
	switch scalarWire(fd.Kind()) {
	case protowire.Fixed32Type:
		if n%4 != 0 {
			return fmt.Errorf("packed field of %d bytes is not a whole number of 4-byte values", n)
		}
		return p.w.skip(n)
	case protowire.Fixed64Type:
		if n%8 != 0 {
			return fmt.Errorf("packed field of %d bytes is not a whole number of 8-byte values", n)
		}
		return p.w.skip(n)
	}
	stop := p.w.off + n
	for p.w.off < stop {
		if _, err := p.w.varint(); err != nil {
			return err
		}
	}
	if p.w.off > stop {
		return fmt.Errorf("packed varint runs past its field: %w", errTruncated)
	}
	return nil
}

func (p *parser) model() error {
	err := p.walk(modelDesc, -1, 0, func(fd protoreflect.FieldDescriptor, end int64) (bool, error) {
		num := fd.Number()
		var err error
		switch num {
		case modelIRVersion:
			p.m.IRVersion, err = p.int(num, 0)
		case modelProducerName:
			p.m.ProducerName, err = p.str(num, 0, end)
		case modelProducerVersion:
			p.m.ProducerVersion, err = p.str(num, 0, end)
		case modelDomain:
			p.m.Domain, err = p.str(num, 0, end)
		case modelModelVersion:
			p.m.ModelVersion, err = p.int(num, 0)
		case modelOpsetImport:
			var b []byte
			if b, err = p.small(num, 0, end); err == nil {
				var o onnx.OperatorSetIdProto
				if err = proto.Unmarshal(b, &o); err == nil {
					p.m.Opsets = append(p.m.Opsets, Opset{Domain: o.GetDomain(), Version: o.GetVersion()})
				}
			}
		case modelMetadataProps:
			var b []byte
			if b, err = p.small(num, 0, end); err == nil {
				var kv onnx.StringStringEntryProto
				if err = proto.Unmarshal(b, &kv); err == nil {
					if p.m.Metadata == nil {
						p.m.Metadata = map[string]string{}
					}
					p.m.Metadata[kv.GetKey()] = kv.GetValue()
				}
			}
		case modelGraph:
			// A second graph field merges into the first, as protobuf does.
			var gend int64
			if gend, err = p.sub(end); err == nil {
				p.sawGraph = true
				err = p.graph(gend)
			}
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return err
	}
	for _, in := range p.inputs {
		if p.inits[in.Name] {
			p.m.OverridableInitializers = append(p.m.OverridableInitializers, in)
		} else {
			p.m.Inputs = append(p.m.Inputs, in)
		}
	}
	slices.Sort(p.m.ExternalData)
	return nil
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
)

// GraphProto, TensorProto and SparseTensorProto field numbers.
const (
	graphNode               = 1
	graphName               = 2
	graphInitializer        = 5
	graphInput              = 11
	graphOutput             = 12
	graphSparseInitializer  = 15
	sparseTensorValues      = 1
	sparseTensorIndices     = 2
	tensorName              = 8
	tensorRawData           = 9
	tensorExternalData      = 13
	tensorDataLocation      = 14
	externalDataLocationKey = "location"
)

// graph reads the main graph: inputs, outputs, name, node count and weight
// statistics. Nested graphs (subgraphs of If and Loop, functions, training
// graphs) are walked generically, for external data only.
func (p *parser) graph(end int64) error {
	return p.walk(graphDesc, end, 1, func(fd protoreflect.FieldDescriptor, end int64) (bool, error) {
		num := fd.Number()
		var err error
		switch num {
		case graphInput, graphOutput:
			var b []byte
			if b, err = p.small(num, 0, end); err == nil {
				var vi onnx.ValueInfoProto
				if err = proto.Unmarshal(b, &vi); err == nil {
					if num == graphInput {
						p.inputs = append(p.inputs, valueOf(&vi))
					} else {
						p.m.Outputs = append(p.m.Outputs, valueOf(&vi))
					}
				}
			}
		case graphName:
			p.m.GraphName, err = p.str(num, 0, end)
		case graphInitializer:
			var tend int64
			if tend, err = p.sub(end); err == nil {
				start := p.w.off
				var ts tensorState
				if err = p.tensor(tend, 2, &ts); err == nil {
					err = p.endTensor(&ts)
				}
				p.init(ts.name)
				p.m.InitializerBytes += tend - start
			}
		case graphSparseInitializer:
			var send int64
			if send, err = p.sub(end); err == nil {
				var ss sparseState
				if err = p.sparseTensor(send, 2, &ss); err == nil {
					err = p.endSparse(&ss)
				}
				p.init(ss.values.name)
			}
		case graphNode:
			p.m.Nodes++
			return false, nil
		default:
			return false, nil
		}
		return true, err
	})
}

func (p *parser) init(name string) {
	if p.inits == nil {
		p.inits = map[string]bool{}
	}
	p.inits[name] = true
	p.m.Initializers++
}

// tensor reads a TensorProto into ts: its name and external data location;
// its data is checked and skipped.
func (p *parser) tensor(end int64, depth int, ts *tensorState) error {
	err := p.walk(tensorDesc, end, depth, func(fd protoreflect.FieldDescriptor, end int64) (bool, error) {
		num := fd.Number()
		var err error
		switch num {
		case tensorName:
			ts.name, err = p.str(num, 0, end)
		case tensorDataLocation:
			var v int64
			v, err = p.int(num, 0)
			ts.external = v == int64(onnx.TensorProto_EXTERNAL)
		case tensorExternalData:
			var b []byte
			if b, err = p.small(num, 0, end); err == nil {
				var kv onnx.StringStringEntryProto
				if err = proto.Unmarshal(b, &kv); err == nil && kv.GetKey() == externalDataLocationKey {
					ts.location = kv.GetValue()
				}
			}
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return fmt.Errorf("tensor %q: %w", ts.name, err)
	}
	return nil
}

// endTensor records a tensor's external data once all of it is read.
func (p *parser) endTensor(ts *tensorState) error {
	if !ts.external {
		return nil
	}
	if ts.location == "" {
		return fmt.Errorf("tensor %q has external data without a location", ts.name)
	}
	if p.external == nil {
		p.external = map[string]bool{}
	}
	if !p.external[ts.location] {
		p.external[ts.location] = true
		p.m.ExternalData = append(p.m.ExternalData, ts.location)
	}
	return nil
}

func (p *parser) sparseTensor(end int64, depth int, ss *sparseState) error {
	return p.walk(sparseTensorDesc, end, depth, func(fd protoreflect.FieldDescriptor, end int64) (bool, error) {
		var ts *tensorState
		switch fd.Number() {
		case sparseTensorValues:
			ts, ss.sawValues = &ss.values, true
		case sparseTensorIndices:
			ts, ss.sawIndices = &ss.indices, true
		default:
			return false, nil
		}
		e, err := p.sub(end)
		if err == nil {
			err = p.tensor(e, depth+1, ts)
		}
		return true, err
	})
}

func (p *parser) endSparse(ss *sparseState) error {
	if ss.sawValues {
		if err := p.endTensor(&ss.values); err != nil {
			return err
		}
	}
	if ss.sawIndices {
		return p.endTensor(&ss.indices)
	}
	return nil
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
