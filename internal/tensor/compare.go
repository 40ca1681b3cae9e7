package tensor

import (
	"bytes"
	"fmt"
	"math"
	"slices"
)

// Compare checks got against a reference tensor: same datatype and shape,
// exact data for integers, booleans and strings, and for floating point a
// relative difference of at most rel (NaN matches NaN).
func Compare(want, got Tensor, rel float64) error {
	if want.DataType != got.DataType {
		return fmt.Errorf("datatype %s, want %s", got.DataType, want.DataType)
	}
	if !slices.Equal(want.Shape, got.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	switch want.DataType {
	case FP16, BF16, FP32, FP64:
		w, err := Float64s(want)
		if err != nil {
			return err
		}
		g, err := Float64s(got)
		if err != nil {
			return err
		}
		if len(w) != len(g) {
			return fmt.Errorf("%d elements, want %d", len(g), len(w))
		}
		for i := range w {
			if math.IsNaN(w[i]) && math.IsNaN(g[i]) {
				continue
			}
			diff := math.Abs(w[i] - g[i])
			if diff > rel*math.Max(math.Abs(w[i]), math.Abs(g[i])) && diff > 1e-30 {
				return fmt.Errorf("element %d = %g, want %g (relative difference %.3g > %g)", i, g[i], w[i], diff/math.Max(math.Abs(w[i]), math.Abs(g[i])), rel)
			}
		}
		return nil
	}
	if !bytes.Equal(want.Data, got.Data) {
		return fmt.Errorf("data differs")
	}
	return nil
}
