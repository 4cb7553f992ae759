package codec

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// Number is an element type whose form in a wire tensor's raw field is its
// little-endian bytes (tensor.proto).
type Number interface {
	~int8 | ~uint8 | ~int32 | ~int64 | ~float32 | ~float64
}

// nativeLE is whether this machine stores numbers little-endian, as raw
// does; then a tensor's elements and its raw bytes are the same bytes, and
// the conversions below are one copy. Tests clear it to run the
// element-by-element path of big-endian machines.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// bytesOf returns x's memory as bytes.
func bytesOf[T Number](x []T) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), len(x)*int(unsafe.Sizeof(x[0])))
}

// EncodeRaw returns x's elements as a raw field holds them: a new slice of
// len(x) times the element's size bytes.
func EncodeRaw[T Number](x []T) []byte {
	raw := make([]byte, len(x)*int(unsafe.Sizeof(*new(T))))
	if nativeLE {
		copy(raw, bytesOf(x))
		return raw
	}
	for i := range x {
		putLE(raw, i, x[i])
	}
	return raw
}

// DecodeRaw fills dst with the elements raw holds. raw must hold exactly
// len(dst) elements: it panics otherwise (callers check the size against
// the tensor's shape first, to report it as the client's error).
func DecodeRaw[T Number](dst []T, raw []byte) {
	if size := int(unsafe.Sizeof(*new(T))); len(raw) != len(dst)*size {
		panic(fmt.Sprintf("codec.DecodeRaw: %d bytes for %d elements of %d bytes", len(raw), len(dst), size))
	}
	if nativeLE {
		copy(bytesOf(dst), raw)
		return
	}
	for i := range dst {
		dst[i] = getLE[T](raw, i)
	}
}

// putLE writes v as element i of raw, little-endian, whatever this
// machine's byte order.
func putLE[T Number](raw []byte, i int, v T) {
	switch unsafe.Sizeof(v) {
	case 1:
		raw[i] = *(*uint8)(unsafe.Pointer(&v))
	case 4:
		binary.LittleEndian.PutUint32(raw[4*i:], *(*uint32)(unsafe.Pointer(&v)))
	case 8:
		binary.LittleEndian.PutUint64(raw[8*i:], *(*uint64)(unsafe.Pointer(&v)))
	}
}

// getLE reads element i of raw, little-endian, whatever this machine's
// byte order.
func getLE[T Number](raw []byte, i int) T {
	var v T
	switch unsafe.Sizeof(v) {
	case 1:
		*(*uint8)(unsafe.Pointer(&v)) = raw[i]
	case 4:
		*(*uint32)(unsafe.Pointer(&v)) = binary.LittleEndian.Uint32(raw[4*i:])
	case 8:
		*(*uint64)(unsafe.Pointer(&v)) = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return v
}

// View returns the elements raw holds as a []T over raw's own memory, and
// true, when that memory is laid out as a []T: on a little-endian machine,
// with raw's length a multiple of T's size and its address one of T's
// alignment. Otherwise it returns nil, false, and the caller copies
// (DecodeRaw). The two slices are one: neither may change while the other
// is in use.
func View[T Number](raw []byte) ([]T, bool) {
	size := int(unsafe.Sizeof(*new(T)))
	if !nativeLE || len(raw)%size != 0 {
		return nil, false
	}
	if len(raw) == 0 {
		return []T{}, true
	}
	p := unsafe.Pointer(&raw[0])
	if uintptr(p)%unsafe.Alignof(*new(T)) != 0 {
		return nil, false
	}
	return unsafe.Slice((*T)(p), len(raw)/size), true
}

// BytesView returns x's elements as a raw field holds them, over x's own
// memory, and true, on a little-endian machine; otherwise nil, false, and
// the caller copies (EncodeRaw). As for View, the two slices are one.
func BytesView[T Number](x []T) ([]byte, bool) {
	if !nativeLE {
		return nil, false
	}
	if len(x) == 0 {
		return []byte{}, true
	}
	return bytesOf(x), true
}
