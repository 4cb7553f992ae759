package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// dtypeFromProto maps an ONNX TensorProto.DataType to a Corvid dtype.
func dtypeFromProto(dt int32) (tensor.DType, error) {
	switch onnxpb.TensorProto_DataType(dt) {
	case onnxpb.TensorProto_FLOAT:
		return tensor.Float32, nil
	case onnxpb.TensorProto_DOUBLE:
		return tensor.Float64, nil
	case onnxpb.TensorProto_INT8:
		return tensor.Int8, nil
	case onnxpb.TensorProto_UINT8:
		return tensor.Uint8, nil
	case onnxpb.TensorProto_INT32:
		return tensor.Int32, nil
	case onnxpb.TensorProto_INT64:
		return tensor.Int64, nil
	case onnxpb.TensorProto_BOOL:
		return tensor.Bool, nil
	case onnxpb.TensorProto_UNDEFINED:
		return tensor.Invalid, fmt.Errorf("%w: data type is undefined", ErrInvalidModel)
	}
	if name, ok := onnxpb.TensorProto_DataType_name[dt]; ok {
		return tensor.Invalid, fmt.Errorf("%w: data type %s is not supported (supported: %s)", ErrUnsupported, name, supportedDTypes)
	}
	return tensor.Invalid, fmt.Errorf("%w: unknown data type %d", ErrInvalidModel, dt)
}

const supportedDTypes = "FLOAT, DOUBLE, INT8, UINT8, INT32, INT64, BOOL"

// DTypeFromProto maps an ONNX TensorProto.DataType number (as in Cast's "to"
// attribute) to a Corvid dtype. It returns an error wrapping ErrUnsupported
// for ONNX types Corvid does not compute with, ErrInvalidModel for numbers
// that are not ONNX types.
func DTypeFromProto(dt int64) (tensor.DType, error) {
	if dt < math.MinInt32 || dt > math.MaxInt32 {
		return tensor.Invalid, fmt.Errorf("%w: unknown data type %d", ErrInvalidModel, dt)
	}
	return dtypeFromProto(int32(dt))
}

// tensorFromProto converts an initializer or a tensor attribute, checking
// the declared shape and the data length against each other before any
// allocation, so a small file cannot claim a huge tensor.
func tensorFromProto(tp *onnxpb.TensorProto) (*tensor.Tensor, error) {
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(tp.GetExternalData()) > 0 {
		return nil, fmt.Errorf("%w: external data is not supported", ErrUnsupported)
	}
	if tp.GetSegment() != nil {
		return nil, fmt.Errorf("%w: segmented tensors are not supported", ErrUnsupported)
	}
	dt, err := dtypeFromProto(tp.GetDataType())
	if err != nil {
		return nil, err
	}
	shape := append([]int64{}, tp.GetDims()...)
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}

	raw := tp.GetRawData()
	typed, field := typedLen(tp, dt)
	switch {
	case len(raw) > 0 && typed > 0:
		return nil, fmt.Errorf("%w: both raw_data and %s are set", ErrInvalidModel, field)
	case len(raw) > 0:
		if len(raw)%dt.Size() != 0 || len(raw)/dt.Size() != n {
			return nil, fmt.Errorf("%w: raw_data has %d bytes, want %d (shape %v x %d-byte %v)",
				ErrInvalidModel, len(raw), n*dt.Size(), shape, dt.Size(), dt)
		}
	case typed != n:
		if other := otherTypedField(tp, dt); other != "" {
			return nil, fmt.Errorf("%w: %v data is stored in %s, want raw_data or %s", ErrInvalidModel, dt, other, field)
		}
		if typed == 0 {
			return nil, fmt.Errorf("%w: no data, want %d elements (shape %v)", ErrInvalidModel, n, shape)
		}
		return nil, fmt.Errorf("%w: %s has %d elements, want %d (shape %v)", ErrInvalidModel, field, typed, n, shape)
	}

	t, err := tensor.New(dt, shape)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	if len(raw) > 0 {
		decodeRaw(t, raw)
		return t, nil
	}
	if err := copyTyped(t, tp); err != nil {
		return nil, err
	}
	return t, nil
}

// typedLen returns the length of the repeated field ONNX stores dt in when
// raw_data is not used, and the field's name.
func typedLen(tp *onnxpb.TensorProto, dt tensor.DType) (int, string) {
	switch dt {
	case tensor.Float32:
		return len(tp.GetFloatData()), "float_data"
	case tensor.Float64:
		return len(tp.GetDoubleData()), "double_data"
	case tensor.Int64:
		return len(tp.GetInt64Data()), "int64_data"
	default: // int8, uint8, int32 and bool live in int32_data.
		return len(tp.GetInt32Data()), "int32_data"
	}
}

// otherTypedField names a typed field that holds data although dt does not
// belong there, so the error can say where the data went.
func otherTypedField(tp *onnxpb.TensorProto, dt tensor.DType) string {
	fields := []struct {
		name string
		n    int
	}{
		{"float_data", len(tp.GetFloatData())},
		{"double_data", len(tp.GetDoubleData())},
		{"int32_data", len(tp.GetInt32Data())},
		{"int64_data", len(tp.GetInt64Data())},
		{"uint64_data", len(tp.GetUint64Data())},
		{"string_data", len(tp.GetStringData())},
	}
	_, own := typedLen(tp, dt)
	for _, f := range fields {
		if f.name != own && f.n > 0 {
			return f.name
		}
	}
	return ""
}

// decodeRaw fills t from little-endian raw_data whose length was checked.
func decodeRaw(t *tensor.Tensor, raw []byte) {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []float32:
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case []float64:
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	case []int8:
		for i := range d {
			d[i] = int8(raw[i])
		}
	case []uint8:
		copy(d, raw)
	case []int32:
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
	case []int64:
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
	case []bool:
		for i := range d {
			d[i] = raw[i] != 0
		}
	}
}

// copyTyped fills t from the typed repeated field, refusing int32_data values
// that do not fit the narrower type they stand for.
func copyTyped(t *tensor.Tensor, tp *onnxpb.TensorProto) error {
	switch d := t.Data.(type) {
	case []float32:
		copy(d, tp.GetFloatData())
	case []float64:
		copy(d, tp.GetDoubleData())
	case []int64:
		copy(d, tp.GetInt64Data())
	case []int32:
		copy(d, tp.GetInt32Data())
	case []int8:
		for i, v := range tp.GetInt32Data() {
			if v < math.MinInt8 || v > math.MaxInt8 {
				return fmt.Errorf("%w: int32_data[%d] = %d does not fit int8", ErrInvalidModel, i, v)
			}
			d[i] = int8(v)
		}
	case []uint8:
		for i, v := range tp.GetInt32Data() {
			if v < 0 || v > math.MaxUint8 {
				return fmt.Errorf("%w: int32_data[%d] = %d does not fit uint8", ErrInvalidModel, i, v)
			}
			d[i] = uint8(v)
		}
	case []bool:
		for i, v := range tp.GetInt32Data() {
			d[i] = v != 0
		}
	}
	return nil
}
