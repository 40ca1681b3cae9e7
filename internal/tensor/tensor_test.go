package tensor

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

// sample returns a 2x3 tensor of dt with distinct, type-appropriate values.
func sample(dt DataType) Tensor {
	shape := []int64{2, 3}
	switch dt {
	case Bool:
		return Of("t", shape, []bool{true, false, true, true, false, false})
	case Int8:
		return Of("t", shape, []int8{-128, -1, 0, 1, 2, 127})
	case Int16:
		return Of("t", shape, []int16{-32768, -1, 0, 1, 300, 32767})
	case Int32:
		return Of("t", shape, []int32{math.MinInt32, -1, 0, 1, 70000, math.MaxInt32})
	case Int64:
		return Of("t", shape, []int64{math.MinInt64, -1, 0, 1, 1 << 40, math.MaxInt64})
	case Uint8:
		return Of("t", shape, []uint8{0, 1, 2, 3, 128, 255})
	case Uint16:
		return Of("t", shape, []uint16{0, 1, 2, 3, 40000, 65535})
	case Uint32:
		return Of("t", shape, []uint32{0, 1, 2, 3, 1 << 31, math.MaxUint32})
	case Uint64:
		return Of("t", shape, []uint64{0, 1, 2, 3, 1 << 63, math.MaxUint64})
	case FP16:
		return OfFP16("t", shape, []float32{-2, -0.5, 0, 0.333, 1000, 65504})
	case BF16:
		return OfBF16("t", shape, []float32{-2, -0.5, 0, 0.333, 1e30, -1e-30})
	case FP32:
		return Of("t", shape, []float32{-2, -0.5, 0, 0.333, 1e30, float32(math.Inf(1))})
	case FP64:
		return Of("t", shape, []float64{-2, -0.5, 0, 0.333, 1e300, math.SmallestNonzeroFloat64})
	case Bytes:
		return OfStrings("t", shape, []string{"", "a", "héllo", "with\x00nul", strings.Repeat("x", 300), "z"})
	}
	panic("no sample for " + dt.String())
}

func TestDataTypeTables(t *testing.T) {
	wantSize := map[DataType]int{Bool: 1, Uint8: 1, Uint16: 2, Uint32: 4, Uint64: 8, Int8: 1, Int16: 2, Int32: 4, Int64: 8, FP16: 2, FP32: 4, FP64: 8, BF16: 2, Bytes: 0}
	if len(All) != 14 {
		t.Fatalf("All has %d types, want 14", len(All))
	}
	for _, dt := range All {
		if got := dt.Size(); got != wantSize[dt] {
			t.Errorf("%s.Size() = %d, want %d", dt, got, wantSize[dt])
		}
		if p, ok := Parse(dt.String()); !ok || p != dt {
			t.Errorf("Parse(%q) = %v, %v", dt.String(), p, ok)
		}
		if got := FromConfig(dt.Config()); got != dt {
			t.Errorf("FromConfig(%s.Config()) = %s", dt, got)
		}
		if got := FromONNX(dt.ONNX()); got != dt {
			t.Errorf("FromONNX(%s.ONNX()) = %s", dt, got)
		}
	}
	for _, bad := range []string{"", "fp32", "STRING", "INVALID", "FP8"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if Bytes.Config() != inference.DataType_TYPE_STRING || FromConfig(inference.DataType_TYPE_STRING) != Bytes {
		t.Error("BYTES must map to TYPE_STRING")
	}
	for _, o := range []onnx.TensorProto_DataType{onnx.TensorProto_COMPLEX64, onnx.TensorProto_FLOAT8E4M3FN, onnx.TensorProto_UNDEFINED, onnx.TensorProto_INT4} {
		if FromONNX(o) != Invalid {
			t.Errorf("FromONNX(%s) should be Invalid", o)
		}
	}
}

func TestContentsRoundTrip(t *testing.T) {
	for _, dt := range All {
		t.Run(dt.String(), func(t *testing.T) {
			in := sample(dt)
			if err := in.Validate(); err != nil {
				t.Fatal(err)
			}
			c, err := ToContents(dt, in.Data)
			if dt == FP16 || dt == BF16 {
				if err == nil {
					t.Fatalf("%s has no typed contents field, ToContents should fail", dt)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := ContentsLen(c); n != 6 {
				t.Fatalf("ContentsLen = %d, want 6", n)
			}
			// Through the wire and back.
			b, err := proto.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var c2 inference.InferTensorContents
			if err := proto.Unmarshal(b, &c2); err != nil {
				t.Fatal(err)
			}
			raw, err := FromContents(dt, &c2)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, in.Data) {
				t.Fatalf("round trip changed data:\n got %x\nwant %x", raw, in.Data)
			}
		})
	}
}

func TestFromContentsErrors(t *testing.T) {
	tests := []struct {
		name string
		dt   DataType
		c    *inference.InferTensorContents
		want string
	}{
		{"wrong field", FP32, &inference.InferTensorContents{IntContents: []int32{1}}, "expects values in fp32_contents, got 1 in int_contents"},
		{"int8 overflow", Int8, &inference.InferTensorContents{IntContents: []int32{1, 200}}, "int_contents[1] = 200 does not fit INT8"},
		{"int16 underflow", Int16, &inference.InferTensorContents{IntContents: []int32{-40000}}, "does not fit INT16"},
		{"uint8 overflow", Uint8, &inference.InferTensorContents{UintContents: []uint32{256}}, "does not fit UINT8"},
		{"fp16", FP16, &inference.InferTensorContents{Fp32Contents: []float32{1}}, "no typed contents field"},
		{"mixed", Int64, &inference.InferTensorContents{Int64Contents: []int64{1}, Fp64Contents: []float64{2}}, "got 1 in fp64_contents"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromContents(tc.dt, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestValuesRoundTrip(t *testing.T) {
	f := []float32{1.5, -2, 0}
	got, err := Values[float32](Of("f", []int64{3}, f))
	if err != nil || !slices.Equal(got, f) {
		t.Fatalf("Values = %v, %v", got, err)
	}
	i8 := []int8{-128, 5, 127}
	if got, err := Values[int8](Of("i", []int64{3}, i8)); err != nil || !slices.Equal(got, i8) {
		t.Fatalf("Values[int8] = %v, %v", got, err)
	}
	if _, err := Values[int32](Of("f", []int64{3}, f)); err == nil {
		t.Fatal("Values with the wrong type must fail")
	}
	fl, err := Float64s(OfFP16("h", []int64{2}, []float32{0.5, -3}))
	if err != nil || !slices.Equal(fl, []float64{0.5, -3}) {
		t.Fatalf("Float64s(FP16) = %v, %v", fl, err)
	}
	fl, err = Float64s(Of("i", []int64{3}, i8))
	if err != nil || !slices.Equal(fl, []float64{-128, 5, 127}) {
		t.Fatalf("Float64s(INT8) = %v, %v", fl, err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		t    Tensor
		want string // "" = valid
	}{
		{"ok fp32", Of("x", []int64{2, 2}, []float32{1, 2, 3, 4}), ""},
		{"scalar", Of("x", nil, []int32{7}), ""},
		{"empty", Tensor{Name: "x", DataType: FP32, Shape: []int64{0, 3}}, ""},
		{"short", Tensor{Name: "x", DataType: FP32, Shape: []int64{2, 2}, Data: make([]byte, 12)}, "needs 16 bytes, got 12"},
		{"negative dim", Tensor{Name: "x", DataType: FP32, Shape: []int64{-1, 2}}, "dimension 0 is -1"},
		{"overflow", Tensor{Name: "x", DataType: FP32, Shape: []int64{1 << 40, 1 << 40}}, "overflows"},
		{"invalid type", Tensor{Name: "x", Shape: []int64{1}}, "invalid datatype"},
		{"bytes count", OfStrings("s", []int64{3}, []string{"a", "b"}), "has 3 elements but the BYTES data holds 2"},
		{"bytes truncated", Tensor{Name: "s", DataType: Bytes, Shape: []int64{1}, Data: []byte{5, 0, 0, 0, 'a'}}, "claims 5 bytes but only 1 remain"},
		{"bytes short length", Tensor{Name: "s", DataType: Bytes, Shape: []int64{1}, Data: []byte{1, 0}}, "too few for a 4-byte length"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "'"+tc.t.Name+"'") {
				t.Fatalf("error %q does not name the tensor", err)
			}
		})
	}
}

func TestConcatSplit(t *testing.T) {
	for _, dt := range All {
		t.Run(dt.String(), func(t *testing.T) {
			a := sample(dt)                                            // [2,3]
			b := Tensor{Name: "t", DataType: dt, Shape: []int64{1, 3}} // one row of b
			rows, err := Split(a, []int64{1, 1})
			if err != nil {
				t.Fatal(err)
			}
			b.Data = rows[1].Data
			cat, err := Concat([]Tensor{a, b, {Name: "t", DataType: dt, Shape: []int64{0, 3}}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cat.Shape, []int64{3, 3}) {
				t.Fatalf("shape %v", cat.Shape)
			}
			if err := cat.Validate(); err != nil {
				t.Fatal(err)
			}
			parts, err := Split(cat, []int64{2, 0, 1})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(parts[0].Data, a.Data) || !bytes.Equal(parts[2].Data, b.Data) || len(parts[1].Data) != 0 {
				t.Fatal("split did not give back the parts")
			}
			for _, p := range parts {
				if err := p.Validate(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestConcatSplitErrors(t *testing.T) {
	a := Of("x", []int64{2, 2}, []float32{1, 2, 3, 4})
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"none", func() error { _, err := Concat(nil); return err }(), "no tensors"},
		{"dtype", func() error { _, err := Concat([]Tensor{a, Of("x", []int64{1, 2}, []int32{1, 2})}); return err }(), "datatype INT32"},
		{"shape", func() error { _, err := Concat([]Tensor{a, Of("x", []int64{1, 3}, []float32{1, 2, 3})}); return err }(), "incompatible"},
		{"scalar", func() error { _, err := Concat([]Tensor{Of("x", nil, []float32{1})}); return err }(), "scalar"},
		{"sum", func() error { _, err := Split(a, []int64{1, 2}); return err }(), "add up to 3, batch dimension is 2"},
		{"negative", func() error { _, err := Split(a, []int64{3, -1}); return err }(), "negative"},
		{"invalid data", func() error {
			_, err := Split(Tensor{Name: "x", DataType: FP32, Shape: []int64{2}, Data: []byte{1}}, []int64{2})
			return err
		}(), "needs 8 bytes"},
	}
	for _, tc := range tests {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want containing %q", tc.name, tc.err, tc.want)
		}
	}
}

func TestHalfExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := FP16ToFloat32(uint16(h))
		back := Float32ToFP16(f)
		if f != f { // NaN: must stay NaN
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("fp16 NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("fp16 %#04x -> %v -> %#04x", h, f, back)
		}
		bf := BF16ToFloat32(uint16(h))
		if bf == bf && Float32ToBF16(bf) != uint16(h) {
			t.Fatalf("bf16 %#04x -> %v -> %#04x", h, bf, Float32ToBF16(bf))
		}
	}
}

func TestHalfRounding(t *testing.T) {
	tests := []struct {
		f    float32
		fp16 uint16
		bf16 uint16
	}{
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{65504, 0x7bff, 0x477f + 1}, // bf16: 65504 rounds up to 65536
		{65520, 0x7c00, 0x4780},     // fp16 overflow to +Inf at the rounding boundary
		{1e-8, 0x0000, 0x322c},      // below half the smallest fp16 subnormal
		{5.960464477539063e-08, 0x0001, 0x3380},
		{1 + 1.0/2048, 0x3c00, 0x3f80}, // halfway between 1 and next fp16: to even
		{1 + 3.0/2048, 0x3c02, 0x3f80}, // halfway, odd below: up
		{float32(math.Inf(-1)), 0xfc00, 0xff80},
	}
	for _, tc := range tests {
		if got := Float32ToFP16(tc.f); got != tc.fp16 {
			t.Errorf("Float32ToFP16(%g) = %#04x, want %#04x", tc.f, got, tc.fp16)
		}
		if got := Float32ToBF16(tc.f); got != tc.bf16 {
			t.Errorf("Float32ToBF16(%g) = %#04x, want %#04x", tc.f, got, tc.bf16)
		}
	}
	nan := float32(math.NaN())
	if h := Float32ToFP16(nan); FP16ToFloat32(h) == FP16ToFloat32(h) {
		t.Error("fp16 NaN lost")
	}
	if h := Float32ToBF16(nan); BF16ToFloat32(h) == BF16ToFloat32(h) {
		t.Error("bf16 NaN lost")
	}
}

func TestTensorProtoRoundTrip(t *testing.T) {
	for _, dt := range All {
		t.Run(dt.String(), func(t *testing.T) {
			in := sample(dt)
			tp, err := ToTensorProto(in)
			if err != nil {
				t.Fatal(err)
			}
			b, err := proto.Marshal(tp)
			if err != nil {
				t.Fatal(err)
			}
			var tp2 onnx.TensorProto
			if err := proto.Unmarshal(b, &tp2); err != nil {
				t.Fatal(err)
			}
			out, err := FromTensorProto(&tp2)
			if err != nil {
				t.Fatal(err)
			}
			if out.Name != in.Name || out.DataType != in.DataType || !slices.Equal(out.Shape, in.Shape) || !bytes.Equal(out.Data, in.Data) {
				t.Fatalf("round trip: got %+v, want %+v", out, in)
			}
		})
	}
}

func TestFromTensorProtoTypedFields(t *testing.T) {
	name := "x"
	tests := []struct {
		tp   *onnx.TensorProto
		want Tensor
	}{
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_FLOAT)), Dims: []int64{2}, FloatData: []float32{1, 2}}, Of("x", []int64{2}, []float32{1, 2})},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_INT8)), Dims: []int64{2}, Int32Data: []int32{-1, 5}}, Of("x", []int64{2}, []int8{-1, 5})},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_FLOAT16)), Dims: []int64{1}, Int32Data: []int32{0x3c00}}, OfFP16("x", []int64{1}, []float32{1})},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_UINT32)), Dims: []int64{1}, Uint64Data: []uint64{7}}, Of("x", []int64{1}, []uint32{7})},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_BOOL)), Dims: []int64{}, Int32Data: []int32{1}}, Of("x", []int64{}, []bool{true})},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_STRING)), Dims: []int64{2}, StringData: [][]byte{[]byte("a"), nil}}, OfStrings("x", []int64{2}, []string{"a", ""})},
	}
	for _, tc := range tests {
		got, err := FromTensorProto(tc.tp)
		if err != nil {
			t.Errorf("%s: %v", tc.want.DataType, err)
			continue
		}
		if got.DataType != tc.want.DataType || !bytes.Equal(got.Data, tc.want.Data) || !slices.Equal(got.Shape, tc.want.Shape) {
			t.Errorf("%s: got %+v, want %+v", tc.want.DataType, got, tc.want)
		}
	}
}

func TestFromTensorProtoErrors(t *testing.T) {
	name := "x"
	ext := onnx.TensorProto_EXTERNAL
	tests := []struct {
		tp   *onnx.TensorProto
		want string
	}{
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_COMPLEX64)), Dims: []int64{1}}, "no Triton datatype"},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_FLOAT)), Dims: []int64{1}, DataLocation: &ext}, "external file"},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_FLOAT)), Dims: []int64{2}, RawData: []byte{1, 2, 3}}, "needs 8 bytes, raw_data has 3"},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_FLOAT)), Dims: []int64{3}, FloatData: []float32{1}}, "has 3 elements, the typed data field has 1"},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_STRING)), Dims: []int64{1}, RawData: []byte{1}}, "cannot use raw_data"},
		{&onnx.TensorProto{Name: &name, DataType: new(int32(onnx.TensorProto_FLOAT)), Dims: []int64{-2}}, "dimension 0 is -2"},
	}
	for _, tc := range tests {
		_, err := FromTensorProto(tc.tp)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "'x'") {
			t.Errorf("err = %v, want containing %q and naming the tensor", err, tc.want)
		}
	}
}

// TestNodeTestTensors decodes every reference tensor of the ONNX node tests.
func TestNodeTestTensors(t *testing.T) {
	files, err := filepath.Glob("../../testdata/onnx/node/*/test_data_set_0/*.pb")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 42*2 {
		t.Fatalf("found %d reference tensors, expected at least 84", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tp onnx.TensorProto
		if err := proto.Unmarshal(b, &tp); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got, err := FromTensorProto(&tp)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want, _ := ElementCount(tp.GetDims())
		var n int64
		if got.DataType == Bytes {
			n, _ = CountBytesElements(got.Data)
		} else {
			n = int64(len(got.Data) / got.DataType.Size())
		}
		if n != want {
			t.Errorf("%s: %d elements, dims %v say %d", f, n, tp.GetDims(), want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestCompare(t *testing.T) {
	a := Of("x", []int64{3}, []float32{1, 2, float32(math.NaN())})
	tests := []struct {
		got  Tensor
		want string
	}{
		{Of("x", []int64{3}, []float32{1, 2.0000100, float32(math.NaN())}), ""},
		{Of("x", []int64{3}, []float32{1, 2.001, float32(math.NaN())}), "element 1"},
		{Of("x", []int64{1, 3}, []float32{1, 2, 3}), "shape"},
		{Of("x", []int64{3}, []float64{1, 2, 3}), "datatype"},
	}
	for i, tc := range tests {
		err := Compare(a, tc.got, 1e-5)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%d: %v, want %q", i, err, tc.want)
		}
	}
	if Compare(Of("i", []int64{2}, []int32{1, 2}), Of("i", []int64{2}, []int32{1, 3}), 1) == nil {
		t.Error("integers must compare exactly")
	}
}

func TestRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range All {
		x, err := Random("r", dt, []int64{3, 5}, rng)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Validate(); err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		if dt.Fixed() && dt != Bool {
			v, _ := Float64s(x)
			if slices.Min(v) < -50 || slices.Max(v) > 99 || slices.Min(v) == slices.Max(v) {
				t.Fatalf("%s: values %v", dt, v)
			}
		}
	}
	if _, err := Random("r", Invalid, []int64{1}, rng); err == nil {
		t.Fatal("invalid datatype accepted")
	}
	if _, err := Random("r", FP32, []int64{-1}, rng); err == nil {
		t.Fatal("wildcard shape accepted")
	}
}
