package tensor

import (
	"fmt"
	"slices"
)

// Concat joins tensors along their first (batch) dimension, as a dynamic batcher
// does with the requests it groups. Every part must share the name, datatype and
// the shape past the batch dimension; the result's batch dimension is the sum.
// The result owns freshly allocated data.
func Concat(parts []Tensor) (Tensor, error) {
	if len(parts) == 0 {
		return Tensor{}, fmt.Errorf("concat: no tensors")
	}
	first := parts[0]
	if len(first.Shape) == 0 {
		return Tensor{}, fmt.Errorf("concat: tensor '%s' is a scalar and has no batch dimension", first.Name)
	}
	var batch int64
	size := 0
	for i, p := range parts {
		if p.DataType != first.DataType {
			return Tensor{}, fmt.Errorf("concat: tensor '%s' part %d has datatype %s, part 0 has %s", first.Name, i, p.DataType, first.DataType)
		}
		if len(p.Shape) == 0 || !slices.Equal(p.Shape[1:], first.Shape[1:]) {
			return Tensor{}, fmt.Errorf("concat: tensor '%s' part %d has shape %s, incompatible with part 0's %s", first.Name, i, FormatShape(p.Shape), FormatShape(first.Shape))
		}
		if err := p.Validate(); err != nil {
			return Tensor{}, fmt.Errorf("concat: part %d: %w", i, err)
		}
		batch += p.Shape[0]
		size += len(p.Data)
	}
	data := make([]byte, 0, size)
	for _, p := range parts {
		data = append(data, p.Data...)
	}
	shape := slices.Clone(first.Shape)
	shape[0] = batch
	return Tensor{Name: first.Name, DataType: first.DataType, Shape: shape, Data: data}, nil
}

// Split cuts t along its first dimension into consecutive pieces of the given
// batch sizes, which must add up to t's batch dimension. The pieces alias t.Data
// (no copy): the batcher uses them to hand each request its slice of a batched
// response.
func Split(t Tensor, sizes []int64) ([]Tensor, error) {
	if len(t.Shape) == 0 {
		return nil, fmt.Errorf("split: tensor '%s' is a scalar and has no batch dimension", t.Name)
	}
	var total int64
	for i, s := range sizes {
		if s < 0 {
			return nil, fmt.Errorf("split: tensor '%s': size %d is negative (%d)", t.Name, i, s)
		}
		total += s
	}
	if total != t.Shape[0] {
		return nil, fmt.Errorf("split: tensor '%s': sizes add up to %d, batch dimension is %d", t.Name, total, t.Shape[0])
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("split: %w", err)
	}
	rowElems, err := ElementCount(t.Shape[1:])
	if err != nil {
		return nil, fmt.Errorf("split: tensor '%s': %w", t.Name, err)
	}
	var offs []int // byte offset of each row boundary, for BYTES
	if t.DataType == Bytes {
		offs, err = bytesOffsets(t.Data, t.Shape[0]*rowElems)
		if err != nil {
			return nil, fmt.Errorf("split: tensor '%s': %w", t.Name, err)
		}
	}
	out := make([]Tensor, len(sizes))
	var row int64
	for i, s := range sizes {
		var lo, hi int
		if t.DataType == Bytes {
			lo, hi = offs[row*rowElems], offs[(row+s)*rowElems]
		} else {
			rowBytes := rowElems * int64(t.DataType.Size())
			lo, hi = int(row*rowBytes), int((row+s)*rowBytes)
		}
		shape := slices.Clone(t.Shape)
		shape[0] = s
		out[i] = Tensor{Name: t.Name, DataType: t.DataType, Shape: shape, Data: t.Data[lo:hi:hi]}
		row += s
	}
	return out, nil
}
