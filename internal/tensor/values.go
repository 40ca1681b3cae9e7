package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Native is a Go element type with a direct Triton datatype.
type Native interface {
	bool | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32 | float64
}

// NativeType is the datatype that carries Go elements of type T.
func NativeType[T Native]() DataType {
	var z T
	switch any(z).(type) {
	case bool:
		return Bool
	case int8:
		return Int8
	case int16:
		return Int16
	case int32:
		return Int32
	case int64:
		return Int64
	case uint8:
		return Uint8
	case uint16:
		return Uint16
	case uint32:
		return Uint32
	case uint64:
		return Uint64
	case float32:
		return FP32
	case float64:
		return FP64
	}
	return Invalid
}

// Of builds a tensor from Go values; the datatype follows T. The caller must pass
// as many values as the shape has elements (Validate checks it).
func Of[T Native](name string, shape []int64, v []T) Tensor {
	dt := NativeType[T]()
	sz := dt.Size()
	data := make([]byte, len(v)*sz)
	for i, x := range v {
		var u uint64
		switch y := any(x).(type) {
		case bool:
			if y {
				u = 1
			}
		case int8:
			u = uint64(y)
		case int16:
			u = uint64(y)
		case int32:
			u = uint64(y)
		case int64:
			u = uint64(y)
		case uint8:
			u = uint64(y)
		case uint16:
			u = uint64(y)
		case uint32:
			u = uint64(y)
		case uint64:
			u = y
		case float32:
			u = uint64(math.Float32bits(y))
		case float64:
			u = math.Float64bits(y)
		}
		putInt(data[i*sz:], sz, u)
	}
	return Tensor{Name: name, DataType: dt, Shape: append([]int64(nil), shape...), Data: data}
}

// OfFP16 builds an FP16 tensor from float32 values (rounded to nearest even).
func OfFP16(name string, shape []int64, v []float32) Tensor {
	return ofHalf(name, FP16, shape, v, Float32ToFP16)
}

// OfBF16 builds a BF16 tensor from float32 values (rounded to nearest even).
func OfBF16(name string, shape []int64, v []float32) Tensor {
	return ofHalf(name, BF16, shape, v, Float32ToBF16)
}

func ofHalf(name string, dt DataType, shape []int64, v []float32, conv func(float32) uint16) Tensor {
	data := make([]byte, 0, 2*len(v))
	for _, x := range v {
		data = binary.LittleEndian.AppendUint16(data, conv(x))
	}
	return Tensor{Name: name, DataType: dt, Shape: append([]int64(nil), shape...), Data: data}
}

// OfStrings builds a BYTES tensor.
func OfStrings(name string, shape []int64, v []string) Tensor {
	elems := make([][]byte, len(v))
	for i, s := range v {
		elems[i] = []byte(s)
	}
	return Tensor{Name: name, DataType: Bytes, Shape: append([]int64(nil), shape...), Data: EncodeBytes(elems)}
}

// Values decodes t's data as Go values of type T, which must match t's datatype.
func Values[T Native](t Tensor) ([]T, error) {
	dt := NativeType[T]()
	if t.DataType != dt {
		return nil, fmt.Errorf("tensor '%s' is %s, not %s", t.Name, t.DataType, dt)
	}
	sz := dt.Size()
	if len(t.Data)%sz != 0 {
		return nil, fmt.Errorf("tensor '%s': %d bytes is not a whole number of %s elements", t.Name, len(t.Data), dt)
	}
	out := make([]T, len(t.Data)/sz)
	for i := range out {
		u := getInt(t.Data[i*sz:], sz)
		var v any
		switch any(out[i]).(type) {
		case bool:
			v = u != 0
		case int8:
			v = int8(u)
		case int16:
			v = int16(u)
		case int32:
			v = int32(u)
		case int64:
			v = int64(u)
		case uint8:
			v = uint8(u)
		case uint16:
			v = uint16(u)
		case uint32:
			v = uint32(u)
		case uint64:
			v = u
		case float32:
			v = math.Float32frombits(uint32(u))
		case float64:
			v = math.Float64frombits(u)
		}
		out[i] = v.(T)
	}
	return out, nil
}

// Float64s decodes any numeric tensor (BOOL as 0/1, FP16 and BF16 widened) into
// float64 values, for comparing outputs across datatypes and precisions.
func Float64s(t Tensor) ([]float64, error) {
	if !t.DataType.Fixed() {
		return nil, fmt.Errorf("tensor '%s' is %s, not numeric", t.Name, t.DataType)
	}
	sz := t.DataType.Size()
	if len(t.Data)%sz != 0 {
		return nil, fmt.Errorf("tensor '%s': %d bytes is not a whole number of %s elements", t.Name, len(t.Data), t.DataType)
	}
	out := make([]float64, len(t.Data)/sz)
	for i := range out {
		u := getInt(t.Data[i*sz:], sz)
		switch t.DataType {
		case Bool:
			if u != 0 {
				out[i] = 1
			}
		case Int8, Int16, Int32, Int64:
			out[i] = float64(getSigned(t.Data[i*sz:], sz))
		case Uint8, Uint16, Uint32, Uint64:
			out[i] = float64(u)
		case FP16:
			out[i] = float64(FP16ToFloat32(uint16(u)))
		case BF16:
			out[i] = float64(BF16ToFloat32(uint16(u)))
		case FP32:
			out[i] = float64(math.Float32frombits(uint32(u)))
		case FP64:
			out[i] = math.Float64frombits(u)
		}
	}
	return out, nil
}
