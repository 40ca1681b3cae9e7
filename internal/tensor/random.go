package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// Random makes a tensor of any datatype with random values: floats uniform in
// [-1, 1), integers uniform over a small range that fits every integer type
// (0..99, or -50..49 when signed), booleans fair coin flips, BYTES short
// printable strings. It is for load generation and smoke tests.
func Random(name string, dt DataType, shape []int64, rng *rand.Rand) (Tensor, error) {
	n, err := ElementCount(shape)
	if err != nil {
		return Tensor{}, err
	}
	t := Tensor{Name: name, DataType: dt, Shape: append([]int64(nil), shape...)}
	if dt == Bytes {
		elems := make([][]byte, n)
		for i := range elems {
			s := make([]byte, 1+rng.IntN(16))
			for j := range s {
				s[j] = byte('a' + rng.IntN(26))
			}
			elems[i] = s
		}
		t.Data = EncodeBytes(elems)
		return t, nil
	}
	size := dt.Size()
	if size == 0 {
		return Tensor{}, errInvalid(dt)
	}
	t.Data = make([]byte, int(n)*size)
	for i := range int(n) {
		b := t.Data[i*size:]
		switch dt {
		case Bool:
			b[0] = byte(rng.IntN(2))
		case Uint8, Uint16, Uint32, Uint64:
			putInt(b, size, uint64(rng.IntN(100)))
		case Int8, Int16, Int32, Int64:
			putInt(b, size, uint64(int64(rng.IntN(100)-50)))
		case FP16:
			binary.LittleEndian.PutUint16(b, Float32ToFP16(rng.Float32()*2-1))
		case BF16:
			binary.LittleEndian.PutUint16(b, Float32ToBF16(rng.Float32()*2-1))
		case FP32:
			binary.LittleEndian.PutUint32(b, math.Float32bits(rng.Float32()*2-1))
		case FP64:
			binary.LittleEndian.PutUint64(b, math.Float64bits(rng.Float64()*2-1))
		}
	}
	return t, nil
}

type errInvalid DataType

func (e errInvalid) Error() string {
	return "cannot generate values of datatype " + DataType(e).String()
}
