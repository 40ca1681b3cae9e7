package pbtxt

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/proto/inference"
)

const tritonConfigs = "../../testdata/triton/pbtxt"

func tritonFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(tritonConfigs, "*.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 27 {
		t.Fatalf("found %d Triton configs, want 27", len(files))
	}
	return files
}

// TestRoundTripTritonConfigs: every real config parses, prints, and parses back
// to an equal message; printing is a fixed point.
func TestRoundTripTritonConfigs(t *testing.T) {
	for _, f := range tritonFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out := Format(src.Config)
			again, err := Parse("printed", out)
			if err != nil {
				t.Fatalf("printed config does not parse: %v\n%s", err, out)
			}
			if !proto.Equal(src.Config, again.Config) {
				t.Fatalf("round trip changed the config:\n%s", out)
			}
			if !bytes.Equal(Format(again.Config), out) {
				t.Fatal("Format is not a fixed point")
			}
			// And prototext, the reference parser, agrees with our printer.
			var ref inference.ModelConfig
			if err := prototext.Unmarshal(out, &ref); err != nil || !proto.Equal(&ref, src.Config) {
				t.Fatalf("prototext disagrees: %v", err)
			}
		})
	}
}

func TestFormatStyle(t *testing.T) {
	cfg := &inference.ModelConfig{
		Name:         "m",
		Platform:     "onnxruntime_onnx",
		MaxBatchSize: 8,
		Input: []*inference.ModelInput{
			{Name: "x \"q\"\n", DataType: inference.DataType_TYPE_FP32, Dims: []int64{3, -1}},
			{Name: "y", DataType: inference.DataType_TYPE_STRING, Dims: []int64{1}, Reshape: &inference.ModelTensorReshape{}},
		},
		Parameters: map[string]*inference.ModelParameter{"b": {StringValue: "2"}, "a": {StringValue: "1"}},
	}
	want := `name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {
    name: "x \"q\"\n"
    data_type: TYPE_FP32
    dims: [ 3, -1 ]
  },
  {
    name: "y"
    data_type: TYPE_STRING
    dims: [ 1 ]
    reshape { }
  }
]
parameters [
  {
    key: "a"
    value {
      string_value: "1"
    }
  },
  {
    key: "b"
    value {
      string_value: "2"
    }
  }
]
`
	if got := string(Format(cfg)); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	src, err := Parse("x", []byte(want))
	if err != nil || !proto.Equal(src.Config, cfg) {
		t.Fatalf("reparse: %v", err)
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		text string
		pos  Pos
		want string
	}{
		{"name: \"m\"\nbogus_field: 3\n", Pos{2, 1}, "unknown field: bogus_field"},
		{"name: \"m\"\nmax_batch_size: \"eight\"\n", Pos{2, 17}, "max_batch_size: invalid value for int32 type: \"eight\""},
		{"input [ { name: \"x\" data_type: TYPE_NOPE } ]", Pos{1, 32}, "invalid value for enum"},
		{"name: \"m\"\ninput [ {\n", Pos{3, 1}, "unexpected EOF"},
		{"name: \"m\" name: \"n\"", Pos{1, 11}, "non-repeated field \"name\" is repeated"},
		{"max_batch_size: 99999999999", Pos{1, 17}, "max_batch_size: invalid value for int32"},
		{"input [ { dims: [ 1, x ] } ]", Pos{1, 22}, "dims: invalid value for int64"},
	}
	for _, tc := range tests {
		_, err := Parse("cfg.pbtxt", []byte(tc.text))
		se, ok := err.(*SyntaxError)
		if !ok {
			t.Errorf("%q: err = %v, want a SyntaxError", tc.text, err)
			continue
		}
		if se.Pos != tc.pos || !strings.Contains(se.Msg, tc.want) {
			t.Errorf("%q: got %s %q, want %s containing %q", tc.text, se.Pos, se.Msg, tc.pos, tc.want)
		}
		if !strings.HasPrefix(se.Error(), "cfg.pbtxt:"+tc.pos.String()+": ") {
			t.Errorf("Error() = %q", se.Error())
		}
	}
}

func TestPositions(t *testing.T) {
	text := `name: "m"   # a comment with "quotes" and { braces
max_batch_size: 4
input [
  {
    name: "a"
    dims: [ 3, -1 ]
  },
  {
    name: "b"
    dims: [ 7 ]
  }
]
dynamic_batching { preferred_batch_size: [ 2, 4 ] }
instance_group < kind: KIND_GPU count: 2 >
`
	src, err := Parse("x", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]Pos{
		"name":             {1, 1},
		"max_batch_size":   {2, 1},
		"input[0]":         {4, 3},
		"input[1].name":    {9, 5},
		"input[0].dims[1]": {6, 16},
		"input[1].dims":    {10, 13},
		"input[1].dims[5]": {8, 3}, // no such element: the input itself
		"dynamic_batching.preferred_batch_size[1]": {13, 47},
		"instance_group[0].count":                  {14, 33},
		"output[0].dims":                           {1, 1},
	}
	for path, want := range tests {
		if got := src.Position(path); got != want {
			t.Errorf("Position(%q) = %s, want %s", path, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(tritonConfigs, "*.pbtxt"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		src, err := Parse("fuzz", b)
		if err != nil {
			return
		}
		_ = src.Position("input[0].dims[0]")
		out := Format(src.Config)
		again, err := Parse("printed", out)
		if err != nil {
			t.Fatalf("printed config does not parse: %v\n%s", err, out)
		}
		if !proto.Equal(src.Config, again.Config) {
			t.Fatalf("round trip changed the config:\n%s", out)
		}
	})
}

func benchConfig(b *testing.B) []byte {
	data, err := os.ReadFile(filepath.Join(tritonConfigs, "docs__examples__model_repository__simple_dyna_sequence.pbtxt"))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkParse(b *testing.B) {
	data := benchConfig(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	src, err := Parse("bench", benchConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Format(src.Config)
	}
}

// BenchmarkPrototextMarshal is the reference point for BenchmarkFormat.
func BenchmarkPrototextMarshal(b *testing.B) {
	src, err := Parse("bench", benchConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (prototext.MarshalOptions{Multiline: true}).Marshal(src.Config); err != nil {
			b.Fatal(err)
		}
	}
}
