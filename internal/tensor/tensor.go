package tensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Tensor is a named tensor in Triton's raw layout (see the package comment).
// Data may alias the buffer it was decoded from; callers that keep a Tensor past
// the life of that buffer must copy it (Clone).
type Tensor struct {
	Name     string
	DataType DataType
	Shape    []int64
	Data     []byte
}

// Clone returns a deep copy of t.
func (t Tensor) Clone() Tensor {
	return Tensor{
		Name:     t.Name,
		DataType: t.DataType,
		Shape:    append([]int64(nil), t.Shape...),
		Data:     append([]byte(nil), t.Data...),
	}
}

// ErrShape reports a shape that cannot describe a tensor.
var ErrShape = errors.New("invalid shape")

// ElementCount is the number of elements of a tensor with the given shape. Every
// dim must be >= 0 (a wildcard -1 is a property of a model's signature, never of a
// concrete tensor) and the product must fit in an int64. A rank-0 shape is a
// scalar: one element.
func ElementCount(shape []int64) (int64, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w %s: dimension %d is %d, must be >= 0", ErrShape, FormatShape(shape), i, d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("%w %s: element count overflows int64", ErrShape, FormatShape(shape))
		}
		n *= d
	}
	return n, nil
}

// ByteSize is the size in bytes of a fixed-size tensor with the given shape.
// It fails for BYTES, whose size depends on its contents.
func ByteSize(dt DataType, shape []int64) (int64, error) {
	if !dt.Fixed() {
		return 0, fmt.Errorf("datatype %s has no fixed byte size", dt)
	}
	n, err := ElementCount(shape)
	if err != nil {
		return 0, err
	}
	sz := int64(dt.Size())
	if n > math.MaxInt64/sz {
		return 0, fmt.Errorf("%w %s: byte size overflows int64", ErrShape, FormatShape(shape))
	}
	return n * sz, nil
}

// FormatShape renders a shape as Triton does in messages: "[1,3,224,224]".
func FormatShape(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(d, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// Validate checks that t is well-formed: a valid datatype, a concrete shape and
// Data whose size matches the shape (for BYTES: exactly the number of
// length-prefixed elements the shape calls for, with nothing left over).
func (t Tensor) Validate() error {
	if !t.DataType.Valid() {
		return fmt.Errorf("tensor '%s': invalid datatype", t.Name)
	}
	n, err := ElementCount(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor '%s': %w", t.Name, err)
	}
	if t.DataType == Bytes {
		got, err := CountBytesElements(t.Data)
		if err != nil {
			return fmt.Errorf("tensor '%s': %w", t.Name, err)
		}
		if got != n {
			return fmt.Errorf("tensor '%s': shape %s has %d elements but the BYTES data holds %d", t.Name, FormatShape(t.Shape), n, got)
		}
		return nil
	}
	want, err := ByteSize(t.DataType, t.Shape)
	if err != nil {
		return fmt.Errorf("tensor '%s': %w", t.Name, err)
	}
	if int64(len(t.Data)) != want {
		return fmt.Errorf("tensor '%s': shape %s of %s needs %d bytes, got %d", t.Name, FormatShape(t.Shape), t.DataType, want, len(t.Data))
	}
	return nil
}

// EncodeBytes packs elements in Triton's BYTES layout: for each element a 4-byte
// little-endian length, then its bytes.
func EncodeBytes(elems [][]byte) []byte {
	n := 0
	for _, e := range elems {
		n += 4 + len(e)
	}
	out := make([]byte, 0, n)
	for _, e := range elems {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e)))
		out = append(out, e...)
	}
	return out
}

// DecodeBytes splits BYTES data into its elements. The elements alias data.
func DecodeBytes(data []byte) ([][]byte, error) {
	var out [][]byte
	err := walkBytes(data, func(e []byte) { out = append(out, e) })
	return out, err
}

// CountBytesElements counts the elements in BYTES data without allocating.
func CountBytesElements(data []byte) (int64, error) {
	var n int64
	err := walkBytes(data, func([]byte) { n++ })
	return n, err
}

func walkBytes(data []byte, fn func([]byte)) error {
	off := 0
	for off < len(data) {
		if len(data)-off < 4 {
			return fmt.Errorf("BYTES data truncated: %d trailing bytes at offset %d are too few for a 4-byte length", len(data)-off, off)
		}
		l := binary.LittleEndian.Uint32(data[off:])
		off += 4
		if uint64(l) > uint64(len(data)-off) {
			return fmt.Errorf("BYTES element at offset %d claims %d bytes but only %d remain", off-4, l, len(data)-off)
		}
		fn(data[off : off+int(l) : off+int(l)])
		off += int(l)
	}
	return nil
}

// bytesOffsets returns the byte offset at which each of the first n BYTES
// elements starts, plus the end offset of the n-th: len(result) == n+1.
func bytesOffsets(data []byte, n int64) ([]int, error) {
	offs := make([]int, 0, n+1)
	off := 0
	for i := int64(0); i < n; i++ {
		offs = append(offs, off)
		if len(data)-off < 4 {
			return nil, fmt.Errorf("BYTES data holds fewer than %d elements", n)
		}
		l := binary.LittleEndian.Uint32(data[off:])
		if uint64(l) > uint64(len(data)-off-4) {
			return nil, fmt.Errorf("BYTES element at offset %d claims %d bytes but only %d remain", off, l, len(data)-off-4)
		}
		off += 4 + int(l)
	}
	return append(offs, off), nil
}
