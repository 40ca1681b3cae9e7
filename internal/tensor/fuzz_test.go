package tensor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/proto/onnx"
)

// FuzzFromTensorProto feeds arbitrary bytes through the TensorProto decoder: it
// must never panic, and whatever it accepts must survive a round trip.
func FuzzFromTensorProto(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/onnx/node/test_[a-c]*/test_data_set_0/*.pb")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tp onnx.TensorProto
		if err := proto.Unmarshal(b, &tp); err != nil {
			return
		}
		ten, err := FromTensorProto(&tp)
		if err != nil {
			return
		}
		if err := ten.Validate(); err != nil {
			t.Fatalf("accepted tensor fails Validate: %v", err)
		}
		back, err := ToTensorProto(ten)
		if err != nil {
			t.Fatalf("ToTensorProto: %v", err)
		}
		again, err := FromTensorProto(back)
		if err != nil || !bytes.Equal(again.Data, ten.Data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzBytesSplit decodes arbitrary BYTES data and splits it along the batch dim.
func FuzzBytesSplit(f *testing.F) {
	f.Add(EncodeBytes([][]byte{[]byte("a"), nil, []byte("xyz"), []byte("q")}), uint8(2))
	f.Add([]byte{255, 255, 255, 255}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, rows uint8) {
		n, err := CountBytesElements(data)
		if err != nil {
			return
		}
		elems, err := DecodeBytes(data)
		if err != nil || int64(len(elems)) != n || !bytes.Equal(EncodeBytes(elems), data) {
			t.Fatalf("decode/encode mismatch: %v", err)
		}
		if rows == 0 || n%int64(rows) != 0 {
			return
		}
		ten := Tensor{Name: "s", DataType: Bytes, Shape: []int64{int64(rows), n / int64(rows)}, Data: data}
		sizes := make([]int64, rows)
		for i := range sizes {
			sizes[i] = 1
		}
		parts, err := Split(ten, sizes)
		if err != nil {
			t.Fatal(err)
		}
		cat, err := Concat(parts)
		if err != nil || !bytes.Equal(cat.Data, data) {
			t.Fatalf("split/concat mismatch: %v", err)
		}
	})
}
