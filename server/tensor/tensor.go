package tensor

import (
	"errors"
	"fmt"
	"math"
)

// DType is the element type of a Tensor.
type DType uint8

// The element types Corvid computes with.
const (
	Invalid DType = iota
	Float32
	Float64
	Int8
	Uint8
	Int32
	Int64
	Bool
)

var dtypeNames = [...]string{"invalid", "fp32", "fp64", "int8", "uint8", "int32", "int64", "bool"}
var dtypeSizes = [...]int{0, 4, 8, 1, 1, 4, 8, 1}

// String returns the short name used in error messages ("fp32", "int64", ...).
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Size is the number of bytes of one element; 0 for Invalid.
func (d DType) Size() int {
	if int(d) < len(dtypeSizes) {
		return dtypeSizes[d]
	}
	return 0
}

// MaxElements bounds the element count of any tensor Corvid allocates: 2^31-1,
// so that a shape whose product overflows, or is absurd, is refused before an
// allocation is attempted.
const MaxElements = math.MaxInt32

// ErrShape reports a shape that no tensor can have.
var ErrShape = errors.New("invalid shape")

// NumElements returns the product of shape, refusing negative dimensions and
// products above MaxElements. An empty shape is a scalar: one element.
func NumElements(shape []int64) (int, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: dimension %d is %d, want >= 0", ErrShape, i, d)
		}
		if d != 0 && n > MaxElements/d {
			return 0, fmt.Errorf("%w: %v has more than %d elements", ErrShape, shape, MaxElements)
		}
		n *= d
	}
	return int(n), nil
}

// Tensor is a dense row-major array. Data holds the elements as the slice type
// of DType: []float32, []float64, []int8, []uint8, []int32, []int64 or []bool,
// with exactly NumElements(Shape) elements.
type Tensor struct {
	DType DType
	Shape []int64
	Data  any
}

// New returns a zeroed tensor of the given type and shape.
func New(dt DType, shape []int64) (*Tensor, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	var data any
	switch dt {
	case Float32:
		data = make([]float32, n)
	case Float64:
		data = make([]float64, n)
	case Int8:
		data = make([]int8, n)
	case Uint8:
		data = make([]uint8, n)
	case Int32:
		data = make([]int32, n)
	case Int64:
		data = make([]int64, n)
	case Bool:
		data = make([]bool, n)
	default:
		return nil, fmt.Errorf("unsupported dtype %v", dt)
	}
	return &Tensor{DType: dt, Shape: append([]int64(nil), shape...), Data: data}, nil
}

// Len returns the number of elements held in Data.
func (t *Tensor) Len() int {
	switch d := t.Data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int8:
		return len(d)
	case []uint8:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []bool:
		return len(d)
	}
	return -1
}

// dataDType reports which DType the Go type of Data stands for.
func dataDType(data any) DType {
	switch data.(type) {
	case []float32:
		return Float32
	case []float64:
		return Float64
	case []int8:
		return Int8
	case []uint8:
		return Uint8
	case []int32:
		return Int32
	case []int64:
		return Int64
	case []bool:
		return Bool
	}
	return Invalid
}

// Validate checks that Data's type matches DType and its length matches Shape.
func (t *Tensor) Validate() error {
	n, err := NumElements(t.Shape)
	if err != nil {
		return err
	}
	if got := dataDType(t.Data); got != t.DType {
		return fmt.Errorf("tensor data is %v, want %v", got, t.DType)
	}
	if got := t.Len(); got != n {
		return fmt.Errorf("tensor of shape %v has %d elements, want %d", t.Shape, got, n)
	}
	return nil
}
