package tensor

import (
	"fmt"
	"math"

	"github.com/tritongate/tritongate/proto/onnx"
)

// FromTensorProto converts an ONNX TensorProto (as stored in the ONNX node tests'
// input_N.pb / output_N.pb) to a Tensor. Both raw_data and the typed *_data fields
// are understood; external and segmented data are not.
func FromTensorProto(tp *onnx.TensorProto) (Tensor, error) {
	name := tp.GetName()
	onnxType := onnx.TensorProto_DataType(tp.GetDataType())
	dt := FromONNX(onnxType)
	if !dt.Valid() {
		return Tensor{}, fmt.Errorf("tensor '%s': ONNX type %s has no Triton datatype", name, onnxType)
	}
	if tp.GetDataLocation() == onnx.TensorProto_EXTERNAL {
		return Tensor{}, fmt.Errorf("tensor '%s': data is stored in an external file, not supported here", name)
	}
	if tp.Segment != nil {
		return Tensor{}, fmt.Errorf("tensor '%s': segmented tensors are not supported", name)
	}
	shape := append([]int64{}, tp.GetDims()...)
	n, err := ElementCount(shape)
	if err != nil {
		return Tensor{}, fmt.Errorf("tensor '%s': %w", name, err)
	}
	t := Tensor{Name: name, DataType: dt, Shape: shape}
	if dt == Bytes {
		if len(tp.GetRawData()) > 0 {
			return Tensor{}, fmt.Errorf("tensor '%s': STRING tensors cannot use raw_data", name)
		}
		if int64(len(tp.GetStringData())) != n {
			return Tensor{}, fmt.Errorf("tensor '%s': shape %s has %d elements, string_data has %d", name, FormatShape(shape), n, len(tp.GetStringData()))
		}
		t.Data = EncodeBytes(tp.GetStringData())
		return t, nil
	}
	sz := dt.Size()
	if raw := tp.GetRawData(); len(raw) > 0 {
		if int64(len(raw)) != n*int64(sz) {
			return Tensor{}, fmt.Errorf("tensor '%s': shape %s of %s needs %d bytes, raw_data has %d", name, FormatShape(shape), dt, n*int64(sz), len(raw))
		}
		t.Data = append([]byte(nil), raw...)
		return t, nil
	}
	var count int
	var get func(i int) uint64
	switch dt {
	case FP32:
		v := tp.GetFloatData()
		count, get = len(v), func(i int) uint64 { return uint64(math.Float32bits(v[i])) }
	case Int32, Int16, Int8, Uint16, Uint8, Bool, FP16, BF16:
		v := tp.GetInt32Data()
		count, get = len(v), func(i int) uint64 { return uint64(v[i]) }
	case Int64:
		v := tp.GetInt64Data()
		count, get = len(v), func(i int) uint64 { return uint64(v[i]) }
	case FP64:
		v := tp.GetDoubleData()
		count, get = len(v), func(i int) uint64 { return math.Float64bits(v[i]) }
	case Uint32, Uint64:
		v := tp.GetUint64Data()
		count, get = len(v), func(i int) uint64 { return v[i] }
	}
	if int64(count) != n {
		return Tensor{}, fmt.Errorf("tensor '%s': shape %s has %d elements, the typed data field has %d", name, FormatShape(shape), n, count)
	}
	t.Data = make([]byte, count*sz)
	for i := range count {
		putInt(t.Data[i*sz:], sz, get(i))
	}
	return t, nil
}

// ToTensorProto converts t to an ONNX TensorProto: raw_data for fixed-size types,
// string_data for BYTES.
func ToTensorProto(t Tensor) (*onnx.TensorProto, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	tp := &onnx.TensorProto{
		Name:     &t.Name,
		Dims:     append([]int64{}, t.Shape...),
		DataType: new(int32(t.DataType.ONNX())),
	}
	if t.DataType == Bytes {
		elems, err := DecodeBytes(t.Data)
		if err != nil {
			return nil, err
		}
		for _, e := range elems {
			tp.StringData = append(tp.StringData, append([]byte(nil), e...))
		}
		return tp, nil
	}
	tp.RawData = append([]byte(nil), t.Data...)
	return tp, nil
}
