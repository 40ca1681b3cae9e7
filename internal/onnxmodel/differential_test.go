package onnxmodel

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tritongate/tritongate/proto/onnx"
)

// reference reads a model's metadata the simple way: proto.Unmarshal into
// the generated onnx.ModelProto, then the same facts and the same checks as
// Read. The streaming reader must agree with it on every input.
func reference(b []byte) (*Model, error) {
	var mp onnx.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, err
	}
	m := &Model{
		IRVersion: mp.GetIrVersion(), ProducerName: mp.GetProducerName(), ProducerVersion: mp.GetProducerVersion(),
		Domain: mp.GetDomain(), ModelVersion: mp.GetModelVersion(),
	}
	for _, o := range mp.GetOpsetImport() {
		m.Opsets = append(m.Opsets, Opset{Domain: o.GetDomain(), Version: o.GetVersion()})
	}
	for _, kv := range mp.GetMetadataProps() {
		if m.Metadata == nil {
			m.Metadata = map[string]string{}
		}
		m.Metadata[kv.GetKey()] = kv.GetValue()
	}
	if m.IRVersion <= 0 {
		return nil, fmt.Errorf("no ir_version")
	}
	g := mp.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("no graph")
	}
	if m.IRVersion >= 3 && len(m.Opsets) == 0 {
		return nil, fmt.Errorf("no opset_import")
	}
	m.GraphName = g.GetName()
	m.Nodes = len(g.GetNode())
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, s := range g.GetSparseInitializer() {
		inits[s.GetValues().GetName()] = true
	}
	m.Initializers = len(g.GetInitializer()) + len(g.GetSparseInitializer())
	for _, vi := range g.GetInput() {
		if inits[vi.GetName()] {
			m.OverridableInitializers = append(m.OverridableInitializers, valueOf(vi))
		} else {
			m.Inputs = append(m.Inputs, valueOf(vi))
		}
	}
	for _, vi := range g.GetOutput() {
		m.Outputs = append(m.Outputs, valueOf(vi))
	}
	// Every TensorProto anywhere in the model (initializers, attributes,
	// subgraphs, sparse tensors, functions, training graphs).
	seen := map[string]bool{}
	var walkErr error
	var visit func(protoreflect.Message)
	visit = func(msg protoreflect.Message) {
		if t, ok := msg.Interface().(*onnx.TensorProto); ok && t.GetDataLocation() == onnx.TensorProto_EXTERNAL {
			loc := ""
			for _, kv := range t.GetExternalData() {
				if kv.GetKey() == "location" {
					loc = kv.GetValue()
				}
			}
			if loc == "" && walkErr == nil {
				walkErr = fmt.Errorf("tensor %q has external data without a location", t.GetName())
			}
			if loc != "" && !seen[loc] {
				seen[loc] = true
				m.ExternalData = append(m.ExternalData, loc)
			}
		}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			switch {
			case fd.IsList():
				for i := range v.List().Len() {
					visit(v.List().Get(i).Message())
				}
			case fd.IsMap():
			default:
				visit(v.Message())
			}
			return true
		})
	}
	visit(mp.ProtoReflect())
	if walkErr != nil {
		return nil, walkErr
	}
	slices.Sort(m.ExternalData)
	return m, nil
}

// agree reads b both ways and fails the test when they differ: both must
// refuse, or both give the same model (InitializerBytes aside: the bytes
// the initializers take in the file are not something proto.Unmarshal
// reports).
func agree(t *testing.T, what string, b []byte) {
	t.Helper()
	got, gerr := Read(bytes.NewReader(b), int64(len(b)))
	want, werr := reference(b)
	switch {
	case gerr != nil && werr != nil:
		return
	case gerr != nil:
		t.Fatalf("%s: the reader refuses what protobuf reads: %v", what, gerr)
	case werr != nil:
		t.Fatalf("%s: the reader accepts what protobuf refuses (%v): %+v", what, werr, got)
	}
	got.InitializerBytes = 0
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the reader and protobuf differ\nreader:   %+v\nprotobuf: %+v", what, got, want)
	}
}

// testModels are every ONNX file in testdata.
func testModels(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(testdata, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".onnx") {
			return err
		}
		b, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, testdata+"/")] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 40 {
		t.Fatalf("only %d ONNX files in %s", len(out), testdata)
	}
	return out
}

// mutate returns a variant of b: bytes changed, cut, duplicated, a field's
// wire type changed, a field repeated (singular messages merge), a field
// dropped. Deterministic for a given rng.
func mutate(rng *rand.Rand, b []byte) []byte {
	if len(b) == 0 {
		return []byte{byte(rng.IntN(256))}
	}
	out := slices.Clone(b)
	switch rng.IntN(7) {
	case 0: // one byte changed
		out[rng.IntN(len(out))] = byte(rng.IntN(256))
	case 1: // a few bits flipped
		for range 1 + rng.IntN(4) {
			out[rng.IntN(len(out))] ^= 1 << rng.IntN(8)
		}
	case 2: // cut
		out = out[:rng.IntN(len(out))]
	case 3: // a run of bytes repeated
		i := rng.IntN(len(out))
		j := i + rng.IntN(min(64, len(out)-i)+1)
		out = slices.Insert(out, j, out[i:j]...)
	case 4, 5: // a top-level field repeated, or the graph's fields shuffled into a second graph
		var fields [][]byte
		for off := 0; off < len(b); {
			_, _, n := protowire.ConsumeField(b[off:])
			if n < 0 {
				break
			}
			fields = append(fields, b[off:off+n])
			off += n
		}
		if len(fields) == 0 {
			break
		}
		f := fields[rng.IntN(len(fields))]
		out = append(out, f...)
	case 6: // a length prefix or tag changed to another wire type
		i := rng.IntN(len(out))
		out[i] = out[i]&^7 | byte(rng.IntN(8))
	}
	return out
}

// TestAgreesWithProtobuf: every ONNX file in testdata, and 300 mutations of
// each, read by the streaming reader and by proto.Unmarshal: the same model,
// or both refuse.
func TestAgreesWithProtobuf(t *testing.T) {
	models := testModels(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range models {
			if !yield(k) {
				return
			}
		}
	})
	accepted := 0
	for _, name := range names {
		b := models[name]
		if len(b) > 4<<20 {
			continue // the large vision model: read once below, not mutated
		}
		agree(t, name, b)
		rng := rand.New(rand.NewPCG(uint64(len(b)), 17))
		for i := range 300 {
			mb := mutate(rng, b)
			if _, err := reference(mb); err == nil {
				accepted++
			}
			agree(t, fmt.Sprintf("%s mutation %d", name, i), mb)
		}
	}
	// The mutations must reach both outcomes, or they prove little.
	if accepted == 0 {
		t.Fatal("no mutation was a valid model")
	}
	for name, b := range models {
		if len(b) > 4<<20 {
			agree(t, name, b)
		}
	}
}

// FuzzAgreesWithProtobuf: arbitrary bytes, seeded with every ONNX file in
// testdata, read the same way by the reader and by protobuf.
func FuzzAgreesWithProtobuf(f *testing.F) {
	for _, b := range testModels(f) {
		if len(b) < 1<<20 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { agree(t, "input", b) })
}

// The two models the reader refused (issue: string attributes): AttributeProto
// field 9 is strings and 10 tensors; the reader had them as tensors and
// graphs. A LabelEncoder with string keys, a StringNormalizer with stopwords,
// from ONNX's node tests.
func TestStringAttributes(t *testing.T) {
	for _, tc := range []struct {
		test    string
		in, out Value
		opset   Opset
	}{
		{"test_ai_onnx_ml_label_encoder_string_int",
			Value{Name: "X", DataType: 13}, Value{Name: "Y", DataType: 9}, Opset{"ai.onnx.ml", 4}},
		{"test_strnormalizer_export_monday_casesensintive_upper",
			Value{Name: "x", DataType: 13}, Value{Name: "y", DataType: 13}, Opset{"", 10}},
	} {
		m, err := Inspect(filepath.Join(testdata, "ml", tc.test, "model.onnx"))
		if err != nil {
			t.Fatalf("%s: %v", tc.test, err)
		}
		if len(m.Inputs) != 1 || m.Inputs[0].Name != tc.in.Name || m.Inputs[0].DataType != tc.in.DataType ||
			len(m.Outputs) != 1 || m.Outputs[0].Name != tc.out.Name || m.Outputs[0].DataType != tc.out.DataType {
			t.Errorf("%s: inputs %+v outputs %+v", tc.test, m.Inputs, m.Outputs)
		}
		if !slices.Contains(m.Opsets, tc.opset) {
			t.Errorf("%s: opsets %v, want %v among them", tc.test, m.Opsets, tc.opset)
		}
	}
}

// The field numbers the reader names are onnx.proto's: checked against the
// generated descriptors, so a renumbering (or a typo such as taking
// AttributeProto's strings for its tensors) cannot pass.
func TestFieldNumbersAreONNXs(t *testing.T) {
	for _, tc := range []struct {
		md   protoreflect.MessageDescriptor
		num  protowire.Number
		name protoreflect.Name
	}{
		{modelDesc, modelIRVersion, "ir_version"},
		{modelDesc, modelProducerName, "producer_name"},
		{modelDesc, modelProducerVersion, "producer_version"},
		{modelDesc, modelDomain, "domain"},
		{modelDesc, modelModelVersion, "model_version"},
		{modelDesc, modelGraph, "graph"},
		{modelDesc, modelOpsetImport, "opset_import"},
		{modelDesc, modelMetadataProps, "metadata_props"},
		{graphDesc, graphNode, "node"},
		{graphDesc, graphName, "name"},
		{graphDesc, graphInitializer, "initializer"},
		{graphDesc, graphInput, "input"},
		{graphDesc, graphOutput, "output"},
		{graphDesc, graphSparseInitializer, "sparse_initializer"},
		{tensorDesc, tensorName, "name"},
		{tensorDesc, tensorRawData, "raw_data"},
		{tensorDesc, tensorExternalData, "external_data"},
		{tensorDesc, tensorDataLocation, "data_location"},
		{sparseTensorDesc, sparseTensorValues, "values"},
		{sparseTensorDesc, sparseTensorIndices, "indices"},
	} {
		fd := tc.md.Fields().ByNumber(tc.num)
		if fd == nil || fd.Name() != tc.name {
			t.Errorf("%s field %d is %v, the reader takes it for %s", tc.md.FullName(), tc.num, fd, tc.name)
		}
	}
}
