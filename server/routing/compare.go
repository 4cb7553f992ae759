package routing

import (
	"math"
	"slices"

	"github.com/corvidml/corvid/server/tensor"
)

// Comparison is what one shadow response showed against the primary's.
type Comparison struct {
	// LabelRows counts the batch rows of integer and bool outputs (class
	// labels) compared; AgreedRows those in which every element matched.
	LabelRows, AgreedRows int
	// FloatOutputs counts the float outputs compared; MaxAbsDiff is the
	// largest |primary - shadow| over all their elements (0 when none).
	FloatOutputs int
	MaxAbsDiff   float64
	// Mismatched counts outputs of the primary that the shadow did not return
	// comparably: missing, of another shape or kind of dtype, or, for floats,
	// non-finite in one and not the same in the other. A mismatched label
	// output counts all its primary rows as disagreeing; a mismatched float
	// output adds nothing to MaxAbsDiff.
	Mismatched int
}

// Comparator compares a shadow's outputs with the primary's. It must not
// mutate either.
type Comparator func(primary, shadow map[string]*tensor.Tensor) Comparison

// Compare is the default Comparator. For each output of the primary:
// integer and bool outputs (class labels) are compared row by row over the
// batch (first) dimension; float outputs by their largest absolute
// difference. Outputs only the shadow returned are ignored. It never panics on
// malformed tensors: they count as mismatched.
func Compare(primary, shadow map[string]*tensor.Tensor) Comparison {
	var c Comparison
	for name, p := range primary {
		s := shadow[name]
		switch {
		case p == nil:
			continue
		case isLabel(p.DType):
			rows, rowLen, ok := layout(p)
			if !ok {
				c.Mismatched++
				continue
			}
			c.LabelRows += rows
			if s == nil || !isLabel(s.DType) || !sameShape(p, s) || !wellFormed(s) {
				c.Mismatched++
				continue
			}
			c.AgreedRows += agreedRows(p, s, rows, rowLen)
		case isFloat(p.DType):
			if s == nil || !isFloat(s.DType) || !sameShape(p, s) || !wellFormed(p) || !wellFormed(s) {
				c.Mismatched++
				continue
			}
			d, ok := maxAbsDiff(p, s)
			if !ok {
				c.Mismatched++
				continue
			}
			c.FloatOutputs++
			c.MaxAbsDiff = max(c.MaxAbsDiff, d)
		default:
			c.Mismatched++
		}
	}
	return c
}

func isLabel(d tensor.DType) bool {
	switch d {
	case tensor.Int8, tensor.Uint8, tensor.Int32, tensor.Int64, tensor.Bool:
		return true
	}
	return false
}

func isFloat(d tensor.DType) bool { return d == tensor.Float32 || d == tensor.Float64 }

func sameShape(a, b *tensor.Tensor) bool { return slices.Equal(a.Shape, b.Shape) }

// wellFormed reports whether t's Data holds exactly its shape's elements.
func wellFormed(t *tensor.Tensor) bool {
	n, err := tensor.NumElements(t.Shape)
	return err == nil && t.Len() == n
}

// layout returns t's batch rows and the elements per row; a scalar is one
// row.
func layout(t *tensor.Tensor) (rows, rowLen int, ok bool) {
	if !wellFormed(t) {
		return 0, 0, false
	}
	n := t.Len()
	if len(t.Shape) == 0 {
		return 1, n, true
	}
	rows = int(t.Shape[0])
	if rows == 0 {
		return 0, 0, true
	}
	return rows, n / rows, true
}

// agreedRows counts the rows in which p and s, of the same shape, hold the
// same values.
func agreedRows(p, s *tensor.Tensor, rows, rowLen int) int {
	a, b := ints(p), ints(s)
	agreed := 0
	for r := range rows {
		row := r * rowLen
		same := true
		for i := row; i < row+rowLen; i++ {
			if a(i) != b(i) {
				same = false
				break
			}
		}
		if same {
			agreed++
		}
	}
	return agreed
}

// ints returns an accessor reading a label tensor's elements as int64, so
// that int32 and int64 labels compare by value.
func ints(t *tensor.Tensor) func(int) int64 {
	switch d := t.Data.(type) {
	case []int8:
		return func(i int) int64 { return int64(d[i]) }
	case []uint8:
		return func(i int) int64 { return int64(d[i]) }
	case []int32:
		return func(i int) int64 { return int64(d[i]) }
	case []int64:
		return func(i int) int64 { return d[i] }
	case []bool:
		return func(i int) int64 {
			if d[i] {
				return 1
			}
			return 0
		}
	}
	return func(int) int64 { return 0 } // unreachable: wellFormed checked Data
}

func floats(t *tensor.Tensor) func(int) float64 {
	switch d := t.Data.(type) {
	case []float32:
		return func(i int) float64 { return float64(d[i]) }
	case []float64:
		return func(i int) float64 { return d[i] }
	}
	return func(int) float64 { return 0 } // unreachable: wellFormed checked Data
}

// maxAbsDiff returns the largest |p - s| over p and s, of the same shape. It
// reports false when a value is non-finite in one and differs in the other
// (NaN against NaN, or +Inf against +Inf, agree), so that the figure stays
// finite.
func maxAbsDiff(p, s *tensor.Tensor) (float64, bool) {
	a, b := floats(p), floats(s)
	d := 0.0
	for i := range p.Len() {
		x, y := a(i), b(i)
		if x == y || (math.IsNaN(x) && math.IsNaN(y)) {
			continue
		}
		if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
			return 0, false
		}
		d = max(d, math.Abs(x-y))
	}
	return d, true
}
