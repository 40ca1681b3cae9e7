package tensor

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tritongate/tritongate/proto/inference"
)

// ContentsField names the InferTensorContents field that carries dt, or "" for
// FP16 and BF16, which the protocol can only carry as raw contents.
func ContentsField(dt DataType) string {
	switch dt {
	case Bool:
		return "bool_contents"
	case Int8, Int16, Int32:
		return "int_contents"
	case Int64:
		return "int64_contents"
	case Uint8, Uint16, Uint32:
		return "uint_contents"
	case Uint64:
		return "uint64_contents"
	case FP32:
		return "fp32_contents"
	case FP64:
		return "fp64_contents"
	case Bytes:
		return "bytes_contents"
	}
	return ""
}

type fieldCount struct {
	name string
	n    int
}

// contentsCounts returns the number of values in each typed field.
func contentsCounts(c *inference.InferTensorContents) [8]fieldCount {
	return [8]fieldCount{
		{"bool_contents", len(c.GetBoolContents())},
		{"int_contents", len(c.GetIntContents())},
		{"int64_contents", len(c.GetInt64Contents())},
		{"uint_contents", len(c.GetUintContents())},
		{"uint64_contents", len(c.GetUint64Contents())},
		{"fp32_contents", len(c.GetFp32Contents())},
		{"fp64_contents", len(c.GetFp64Contents())},
		{"bytes_contents", len(c.GetBytesContents())},
	}
}

// ContentsLen is the total number of values held by c, over all typed fields.
func ContentsLen(c *inference.InferTensorContents) int {
	n := 0
	for _, f := range contentsCounts(c) {
		n += f.n
	}
	return n
}

// FromContents packs the typed contents c of a tensor of datatype dt into raw
// layout. Values must sit in the field the protocol assigns to dt, no other field
// may be set, and narrow integer types must hold values in their range.
func FromContents(dt DataType, c *inference.InferTensorContents) ([]byte, error) {
	field := ContentsField(dt)
	if field == "" {
		return nil, fmt.Errorf("datatype %s has no typed contents field; send it in raw_input_contents", dt)
	}
	for _, f := range contentsCounts(c) {
		if f.n > 0 && f.name != field {
			return nil, fmt.Errorf("datatype %s expects values in %s, got %d in %s", dt, field, f.n, f.name)
		}
	}
	sz := dt.Size()
	switch dt {
	case Bool:
		v := c.GetBoolContents()
		out := make([]byte, len(v))
		for i, b := range v {
			if b {
				out[i] = 1
			}
		}
		return out, nil
	case Int8, Int16, Int32:
		v := c.GetIntContents()
		lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
		if dt == Int8 {
			lo, hi = math.MinInt8, math.MaxInt8
		} else if dt == Int16 {
			lo, hi = math.MinInt16, math.MaxInt16
		}
		out := make([]byte, len(v)*sz)
		for i, x := range v {
			if int64(x) < lo || int64(x) > hi {
				return nil, fmt.Errorf("int_contents[%d] = %d does not fit %s", i, x, dt)
			}
			putInt(out[i*sz:], sz, uint64(x))
		}
		return out, nil
	case Uint8, Uint16, Uint32:
		v := c.GetUintContents()
		hi := uint64(math.MaxUint32)
		if dt == Uint8 {
			hi = math.MaxUint8
		} else if dt == Uint16 {
			hi = math.MaxUint16
		}
		out := make([]byte, len(v)*sz)
		for i, x := range v {
			if uint64(x) > hi {
				return nil, fmt.Errorf("uint_contents[%d] = %d does not fit %s", i, x, dt)
			}
			putInt(out[i*sz:], sz, uint64(x))
		}
		return out, nil
	case Int64:
		v := c.GetInt64Contents()
		out := make([]byte, 0, len(v)*8)
		for _, x := range v {
			out = binary.LittleEndian.AppendUint64(out, uint64(x))
		}
		return out, nil
	case Uint64:
		v := c.GetUint64Contents()
		out := make([]byte, 0, len(v)*8)
		for _, x := range v {
			out = binary.LittleEndian.AppendUint64(out, x)
		}
		return out, nil
	case FP32:
		v := c.GetFp32Contents()
		out := make([]byte, 0, len(v)*4)
		for _, x := range v {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
		}
		return out, nil
	case FP64:
		v := c.GetFp64Contents()
		out := make([]byte, 0, len(v)*8)
		for _, x := range v {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(x))
		}
		return out, nil
	case Bytes:
		return EncodeBytes(c.GetBytesContents()), nil
	}
	return nil, fmt.Errorf("invalid datatype %s", dt)
}

// ToContents unpacks raw data of datatype dt into typed contents. FP16 and BF16
// have no typed field and fail.
func ToContents(dt DataType, data []byte) (*inference.InferTensorContents, error) {
	if ContentsField(dt) == "" {
		return nil, fmt.Errorf("datatype %s has no typed contents field", dt)
	}
	sz := dt.Size()
	if sz > 0 && len(data)%sz != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %s elements", len(data), dt)
	}
	c := &inference.InferTensorContents{}
	n := 0
	if sz > 0 {
		n = len(data) / sz
	}
	switch dt {
	case Bool:
		c.BoolContents = make([]bool, n)
		for i := range n {
			c.BoolContents[i] = data[i] != 0
		}
	case Int8, Int16, Int32:
		c.IntContents = make([]int32, n)
		for i := range n {
			c.IntContents[i] = int32(getSigned(data[i*sz:], sz))
		}
	case Uint8, Uint16, Uint32:
		c.UintContents = make([]uint32, n)
		for i := range n {
			c.UintContents[i] = uint32(getInt(data[i*sz:], sz))
		}
	case Int64:
		c.Int64Contents = make([]int64, n)
		for i := range n {
			c.Int64Contents[i] = int64(binary.LittleEndian.Uint64(data[i*8:]))
		}
	case Uint64:
		c.Uint64Contents = make([]uint64, n)
		for i := range n {
			c.Uint64Contents[i] = binary.LittleEndian.Uint64(data[i*8:])
		}
	case FP32:
		c.Fp32Contents = make([]float32, n)
		for i := range n {
			c.Fp32Contents[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[i*4:]))
		}
	case FP64:
		c.Fp64Contents = make([]float64, n)
		for i := range n {
			c.Fp64Contents[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[i*8:]))
		}
	case Bytes:
		elems, err := DecodeBytes(data)
		if err != nil {
			return nil, err
		}
		c.BytesContents = elems
	}
	return c, nil
}

func putInt(b []byte, size int, v uint64) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	case 8:
		binary.LittleEndian.PutUint64(b, v)
	}
}

func getInt(b []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	case 8:
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func getSigned(b []byte, size int) int64 {
	switch size {
	case 1:
		return int64(int8(b[0]))
	case 2:
		return int64(int16(binary.LittleEndian.Uint16(b)))
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(b)))
	case 8:
		return int64(binary.LittleEndian.Uint64(b))
	}
	return 0
}
