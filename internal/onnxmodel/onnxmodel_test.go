package onnxmodel

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/onnxmodel/onnxtest"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

const testdata = "../../testdata/onnx"

type io1 struct {
	name string
	typ  inference.DataType
	dims []int64
}

func TestInspectModels(t *testing.T) {
	tests := []struct {
		file     string
		ir       int64
		producer string
		opset    int64
		inputs   []io1
		outputs  []io1
	}{
		{"models/mnist.onnx", 3, "CNTK", 8,
			[]io1{{"Input3", inference.DataType_TYPE_FP32, []int64{1, 1, 28, 28}}},
			[]io1{{"Plus214_Output_0", inference.DataType_TYPE_FP32, []int64{1, 10}}}},
		{"models/ultraface_version-RFB-320.onnx", 4, "pytorch", 9,
			[]io1{{"input", inference.DataType_TYPE_FP32, []int64{1, 3, 240, 320}}},
			[]io1{{"scores", inference.DataType_TYPE_FP32, []int64{1, 4420, 2}}, {"boxes", inference.DataType_TYPE_FP32, []int64{1, 4420, 4}}}},
		{"models/example_dynamic_axes.onnx", 8, "pytorch", 17,
			[]io1{{"input_vectors", inference.DataType_TYPE_FP32, []int64{-1, 10}}},
			[]io1{{"output_scalars", inference.DataType_TYPE_FP32, []int64{-1}}}},
		{"models/example_several_inputs_and_outputs.onnx", 8, "pytorch", 17,
			[]io1{{"input 1", inference.DataType_TYPE_INT32, []int64{2, 5, 2, 5}}, {"input 2", inference.DataType_TYPE_FP32, []int64{2, 3, 20}}, {"input 3", inference.DataType_TYPE_BF16, []int64{9}}},
			[]io1{{"output 1", inference.DataType_TYPE_INT64, []int64{10, 10}}, {"output 2", inference.DataType_TYPE_FP64, []int64{1, 2, 3, 4, 5}}}},
		{"node/test_string_concat/model.onnx", 9, "backend-test", 20,
			[]io1{{"x", inference.DataType_TYPE_STRING, []int64{2}}, {"y", inference.DataType_TYPE_STRING, []int64{2}}},
			[]io1{{"result", inference.DataType_TYPE_STRING, []int64{2}}}},
		{"node/test_cast_FLOAT_to_FLOAT16/model.onnx", 0, "backend-test", 0,
			[]io1{{"input", inference.DataType_TYPE_FP32, []int64{3, 4}}},
			[]io1{{"output", inference.DataType_TYPE_FP16, []int64{3, 4}}}},
		{"node/test_add_int8/model.onnx", 0, "backend-test", 0,
			[]io1{{"x", inference.DataType_TYPE_INT8, []int64{3, 4, 5}}, {"y", inference.DataType_TYPE_INT8, []int64{3, 4, 5}}},
			[]io1{{"sum", inference.DataType_TYPE_INT8, []int64{3, 4, 5}}}},
		{"node/test_add_uint64/model.onnx", 0, "backend-test", 0,
			[]io1{{"x", inference.DataType_TYPE_UINT64, []int64{3, 4, 5}}, {"y", inference.DataType_TYPE_UINT64, []int64{3, 4, 5}}},
			[]io1{{"sum", inference.DataType_TYPE_UINT64, []int64{3, 4, 5}}}},
		{"node/test_cast_FLOAT_to_BFLOAT16/model.onnx", 0, "backend-test", 0,
			[]io1{{"input", inference.DataType_TYPE_FP32, []int64{3, 4}}},
			[]io1{{"output", inference.DataType_TYPE_BF16, []int64{3, 4}}}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := Inspect(filepath.Join(testdata, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ir != 0 && m.IRVersion != tc.ir {
				t.Errorf("ir_version %d, want %d", m.IRVersion, tc.ir)
			}
			if m.ProducerName != tc.producer {
				t.Errorf("producer %q, want %q", m.ProducerName, tc.producer)
			}
			if tc.opset != 0 && m.Opset("") != tc.opset {
				t.Errorf("opset %d, want %d", m.Opset(""), tc.opset)
			}
			check := func(kind string, got []Value, want []io1) {
				if len(got) != len(want) {
					t.Fatalf("%d %ss, want %d: %+v", len(got), kind, len(want), got)
				}
				for i, w := range want {
					g := got[i]
					if g.Name != w.name || g.DataType != w.typ || !slices.Equal(g.Dims, w.dims) || g.Kind != KindTensor {
						t.Errorf("%s %d = %q %s %v, want %q %s %v", kind, i, g.Name, g.DataType, g.Dims, w.name, w.typ, w.dims)
					}
				}
			}
			check("input", m.Inputs, tc.inputs)
			check("output", m.Outputs, tc.outputs)
			if len(m.ExternalData) != 0 {
				t.Errorf("external data %v", m.ExternalData)
			}
		})
	}
}

// TestNodeTestsMatchReferenceTensors inspects all 42 node-test models and checks
// each reference input_N.pb / output_N.pb against the signature read.
func TestNodeTestsMatchReferenceTensors(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(testdata, "node", "test_*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 42 {
		t.Fatalf("found %d node tests, want 42", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := Inspect(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			for kind, vals := range map[string][]Value{"input": m.Inputs, "output": m.Outputs} {
				for i, v := range vals {
					ref := readRef(t, filepath.Join(dir, "test_data_set_0", kind+"_"+itoa(i)+".pb"))
					if ref.DataType.Config() != v.DataType {
						t.Errorf("%s %q: model says %s, reference tensor is %s", kind, v.Name, v.DataType, ref.DataType)
					}
					if len(ref.Shape) != len(v.Dims) {
						t.Errorf("%s %q: model rank %d (%v), reference %v", kind, v.Name, len(v.Dims), v.Dims, ref.Shape)
						continue
					}
					for j, d := range v.Dims {
						if d != -1 && d != ref.Shape[j] {
							t.Errorf("%s %q: model dims %v, reference %v", kind, v.Name, v.Dims, ref.Shape)
						}
					}
				}
			}
		})
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func readRef(t *testing.T, path string) tensor.Tensor {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tp onnx.TensorProto
	if err := proto.Unmarshal(b, &tp); err != nil {
		t.Fatal(err)
	}
	ten, err := tensor.FromTensorProto(&tp)
	if err != nil {
		t.Fatal(err)
	}
	return ten
}

// build returns a serialized model around graph g.
func build(t testing.TB, g *onnx.GraphProto, extra func(*onnx.ModelProto)) []byte {
	t.Helper()
	m := &onnx.ModelProto{
		IrVersion:    new(int64(9)),
		ProducerName: new("test"),
		OpsetImport:  []*onnx.OperatorSetIdProto{{Domain: new(""), Version: new(int64(20))}},
		Graph:        g,
	}
	if extra != nil {
		extra(m)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignatureDetails(t *testing.T) {
	ext := onnx.TensorProto_EXTERNAL
	g := &onnx.GraphProto{
		Name: new("g"),
		Input: []*onnx.ValueInfoProto{
			onnxtest.Tensor("x", onnx.TensorProto_FLOAT, "batch", 3, nil, 0),
			onnxtest.Tensor("w", onnx.TensorProto_FLOAT, 3, 3), // has an initializer: not an input
			{Name: new("seq"), Type: &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{SequenceType: &onnx.TypeProto_Sequence{}}}},
			{Name: new("noshape"), Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: new(int32(onnx.TensorProto_INT64))}}}},
			onnxtest.Tensor("c", onnx.TensorProto_COMPLEX64, 2),
		},
		Output: []*onnx.ValueInfoProto{onnxtest.Tensor("y", onnx.TensorProto_FLOAT16, "batch")},
		Initializer: []*onnx.TensorProto{
			{Name: new("w"), Dims: []int64{3, 3}, DataType: new(int32(onnx.TensorProto_FLOAT)), RawData: make([]byte, 36)},
			{Name: new("big"), DataLocation: &ext, ExternalData: []*onnx.StringStringEntryProto{{Key: new("location"), Value: new("weights.bin")}, {Key: new("offset"), Value: new("0")}}},
		},
		Node: []*onnx.NodeProto{
			{OpType: new("Constant"), Attribute: []*onnx.AttributeProto{{Name: new("value"), T: &onnx.TensorProto{Name: new("k"), DataLocation: &ext, ExternalData: []*onnx.StringStringEntryProto{{Key: new("location"), Value: new("consts.bin")}}}}}},
			{OpType: new("If"), Attribute: []*onnx.AttributeProto{{Name: new("then_branch"), G: &onnx.GraphProto{Initializer: []*onnx.TensorProto{{Name: new("s"), DataLocation: &ext, ExternalData: []*onnx.StringStringEntryProto{{Key: new("location"), Value: new("weights.bin")}}}}}}}},
		},
	}
	m, err := Read(bytes.NewReader(build(t, g, nil)), -1)
	if err != nil {
		t.Fatal(err)
	}
	names := SortedNames(m.Inputs)
	if !slices.Equal(names, []string{"c", "noshape", "seq", "x"}) {
		t.Fatalf("inputs %v", names)
	}
	if len(m.OverridableInitializers) != 1 || m.OverridableInitializers[0].Name != "w" {
		t.Errorf("overridable initializers %+v", m.OverridableInitializers)
	}
	x, _ := m.Input("x")
	if !slices.Equal(x.Dims, []int64{-1, 3, -1, 0}) || x.DimParams[0] != "batch" || !x.HasShape {
		t.Errorf("x = %+v", x)
	}
	if seq, _ := m.Input("seq"); seq.Kind != KindSequence {
		t.Errorf("seq kind %s", seq.Kind)
	}
	if ns, _ := m.Input("noshape"); ns.HasShape || len(ns.Dims) != 0 || ns.DataType != inference.DataType_TYPE_INT64 {
		t.Errorf("noshape = %+v", ns)
	}
	if c, _ := m.Input("c"); c.DataType != inference.DataType_TYPE_INVALID || c.APIType() != "INVALID" {
		t.Errorf("complex input = %+v", c)
	}
	if y, _ := m.Output("y"); y.APIType() != "FP16" {
		t.Errorf("y = %+v", y)
	}
	if !slices.Equal(m.ExternalData, []string{"consts.bin", "weights.bin"}) {
		t.Errorf("external data %v", m.ExternalData)
	}
	if m.Initializers != 2 || m.Nodes != 2 || m.GraphName != "g" {
		t.Errorf("initializers %d nodes %d graph %q", m.Initializers, m.Nodes, m.GraphName)
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(testdata, "models", "mnist.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"empty.onnx":     nil,
		"text.onnx":      []byte("this is not a model\n"),
		"garbage.onnx":   bytes.Repeat([]byte{0xff}, 64),
		"half.onnx":      good[:len(good)/2],
		"nograph.onnx":   protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7),
		"trailing.onnx":  append(append([]byte{}, good...), 0x08),
		"wrongtype.onnx": protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 1),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Inspect(p)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), p) || !errors.Is(err, ErrNotONNX) {
			t.Errorf("%s: error %q must name the file and wrap ErrNotONNX", name, err)
		}
	}
	if _, err := Inspect(filepath.Join(dir, "missing.onnx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Inspect(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
}

// TestEveryTruncation cuts a real model at every length. A cut inside a field
// must fail cleanly (never panic); a cut between top-level fields is a shorter
// but well-formed message, accepted only if it still has a graph and opsets.
func TestEveryTruncation(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(testdata, "node", "test_gemm_all_attributes", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	boundary := map[int]bool{0: true}
	for off := 0; off < len(good); {
		_, _, n := protowire.ConsumeField(good[off:])
		if n < 0 {
			t.Fatal("test model is malformed")
		}
		off += n
		boundary[off] = true
	}
	for n := 0; n < len(good); n++ {
		m, err := Read(bytes.NewReader(good[:n]), int64(n))
		if !boundary[n] && err == nil {
			t.Fatalf("prefix of %d/%d bytes, inside a field, accepted", n, len(good))
		}
		if err == nil && (len(m.Opsets) == 0 || len(m.Outputs) == 0) {
			t.Fatalf("prefix of %d bytes accepted without opsets or outputs", n)
		}
	}
}

// writeBigModel writes a model whose single initializer has weightBytes of
// raw_data, as a sparse file, without holding the weights in memory.
func writeBigModel(t testing.TB, path string, weightBytes int64) {
	t.Helper()
	var tens []byte
	tens = protowire.AppendTag(tens, tensorName, protowire.BytesType)
	tens = protowire.AppendString(tens, "weights")
	tens = protowire.AppendTag(tens, 2, protowire.VarintType) // data_type
	tens = protowire.AppendVarint(tens, uint64(onnx.TensorProto_UINT8))
	tens = protowire.AppendTag(tens, 1, protowire.VarintType) // dims
	tens = protowire.AppendVarint(tens, uint64(weightBytes))
	tens = protowire.AppendTag(tens, tensorRawData, protowire.BytesType)
	tens = protowire.AppendVarint(tens, uint64(weightBytes))
	tensorLen := int64(len(tens)) + weightBytes

	small, err := proto.Marshal(&onnx.GraphProto{
		Name:   new("big"),
		Input:  []*onnx.ValueInfoProto{onnxtest.Tensor("x", onnx.TensorProto_FLOAT, "n", 8)},
		Output: []*onnx.ValueInfoProto{onnxtest.Tensor("y", onnx.TensorProto_FLOAT, "n", 8)},
	})
	if err != nil {
		t.Fatal(err)
	}
	graph := append([]byte{}, small...)
	graph = protowire.AppendTag(graph, graphInitializer, protowire.BytesType)
	graph = protowire.AppendVarint(graph, uint64(tensorLen))
	graphLen := int64(len(graph)) + int64(len(tens)) + weightBytes

	var head []byte
	head = protowire.AppendTag(head, modelIRVersion, protowire.VarintType)
	head = protowire.AppendVarint(head, 8)
	opset, err := proto.Marshal(&onnx.OperatorSetIdProto{Version: new(int64(17))})
	if err != nil {
		t.Fatal(err)
	}
	head = protowire.AppendTag(head, modelOpsetImport, protowire.BytesType)
	head = protowire.AppendBytes(head, opset)
	head = protowire.AppendTag(head, modelGraph, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(graphLen))
	head = append(head, graph...)
	head = append(head, tens...)

	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(head); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(head)) + weightBytes); err != nil { // the weights: a hole of zeros
		t.Fatal(err)
	}
}

func heapDuring(t testing.TB, fn func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLargeModelStaysSmall inspects a model with a 500 MB initializer and checks
// that the whole inspection allocates (cumulatively) well under 50 MiB.
func TestLargeModelStaysSmall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.onnx")
	const weights = 500 << 20
	writeBigModel(t, path, weights)
	var m *Model
	var err error
	alloc := heapDuring(t, func() { m, err = Inspect(path) })
	if err != nil {
		t.Fatal(err)
	}
	if m.InitializerBytes < weights || len(m.Inputs) != 1 || m.Inputs[0].Name != "x" {
		t.Fatalf("model read wrong: %+v", m)
	}
	if alloc > 50<<20 {
		t.Fatalf("inspecting a 500 MB model allocated %d MiB, limit 50", alloc>>20)
	}
	t.Logf("inspecting a %d MiB model allocated %d KiB", weights>>20, alloc>>10)

	// Through a plain io.Reader (no seeking), e.g. a download stream: the weights
	// are read and discarded, still without being held.
	if testing.Short() {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	alloc = heapDuring(t, func() { m, err = Read(struct{ io.Reader }{f}, -1) })
	if err != nil {
		t.Fatal(err)
	}
	if alloc > 50<<20 {
		t.Fatalf("streaming a 500 MB model allocated %d MiB, limit 50", alloc>>20)
	}
}

func BenchmarkInspectLarge(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.onnx")
	writeBigModel(b, path, 500<<20)
	var peak uint64
	b.ReportAllocs()
	for b.Loop() {
		a := heapDuring(b, func() {
			if _, err := Inspect(path); err != nil {
				b.Fatal(err)
			}
		})
		peak = max(peak, a)
	}
	b.ReportMetric(float64(peak)/(1<<20), "MiB-alloc/inspect")
}

func BenchmarkInspectUltraface(b *testing.B) {
	path := filepath.Join(testdata, "models", "ultraface_version-RFB-320.onnx")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Inspect(path); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzRead: arbitrary bytes must never panic the reader.
func FuzzRead(f *testing.F) {
	for _, p := range []string{"node/test_add/model.onnx", "node/test_string_concat/model.onnx", "node/test_gemm_all_attributes/model.onnx", "models/example_dynamic_axes.onnx"} {
		if b, err := os.ReadFile(filepath.Join(testdata, p)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, v := range append(m.Inputs, m.Outputs...) {
			if v.Kind == KindTensor && v.HasShape && len(v.Dims) != len(v.DimParams) {
				t.Fatalf("dims/params length mismatch for %q", v.Name)
			}
		}
	})
}
