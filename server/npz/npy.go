package npz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/corvidml/corvid/server/tensor"
)

// ErrFormat reports bytes that are not a well-formed .npz archive or .npy
// array.
var ErrFormat = errors.New("invalid npz")

// ErrUnsupported reports a well-formed array Corvid cannot use: an element
// type it does not compute with, or a structured or object array.
var ErrUnsupported = errors.New("unsupported array")

// ErrTooLarge reports arrays whose data exceed the caller's byte limit.
var ErrTooLarge = errors.New("arrays too large")

// DefaultMaxBytes is the limit on decoded array bytes used when a caller
// passes 0.
const DefaultMaxBytes = 1 << 30

// MaxHeaderBytes bounds a .npy header. numpy writes about 128 bytes for
// any array it can load by default (it refuses headers over 10000 bytes
// unless told otherwise); a larger one is not worth parsing.
const MaxHeaderBytes = 1 << 16

// npyMagic starts every .npy file: \x93NUMPY, then the major and minor
// format version bytes.
var npyMagic = []byte("\x93NUMPY")

// ReadNPY reads one .npy array from r. maxBytes bounds its data (0 means
// DefaultMaxBytes).
func ReadNPY(r io.Reader, maxBytes int64) (*tensor.Tensor, error) {
	t, _, err := readNPY(r, "array", limitOrDefault(maxBytes))
	return t, err
}

func limitOrDefault(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return DefaultMaxBytes
	}
	return maxBytes
}

// readNPY reads one array named name (for messages) whose data may take at
// most budget bytes, and returns it with the number of data bytes.
func readNPY(r io.Reader, name string, budget int64) (*tensor.Tensor, int64, error) {
	hdr, err := readHeader(r, name)
	if err != nil {
		return nil, 0, err
	}
	n, err := tensor.NumElements(hdr.shape)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: array %q: shape %v: %v", ErrFormat, name, hdr.shape, err)
	}
	size := int64(n) * int64(hdr.dtype.Size())
	if size > budget {
		return nil, 0, fmt.Errorf("%w: array %q (%v %v) holds %d bytes, more than the %d left of the limit", ErrTooLarge, name, hdr.dtype, hdr.shape, size, budget)
	}
	raw := make([]byte, size)
	if got, err := io.ReadFull(r, raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, fmt.Errorf("%w: array %q: data is %d bytes, want %d for %v %v", ErrFormat, name, got, size, hdr.dtype, hdr.shape)
		}
		return nil, 0, fmt.Errorf("%w: array %q: reading data: %w", ErrFormat, name, err)
	}
	// Reading to the end also makes a zip entry check its CRC.
	var one [1]byte
	if k, err := io.ReadFull(r, one[:]); k > 0 {
		return nil, 0, fmt.Errorf("%w: array %q: bytes after the %d of data that %v %v takes", ErrFormat, name, size, hdr.dtype, hdr.shape)
	} else if !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("%w: array %q: after the data: %w", ErrFormat, name, err)
	}
	if hdr.fortran && len(hdr.shape) > 1 {
		raw = fortranToC(raw, hdr.shape, hdr.dtype.Size())
	}
	t := &tensor.Tensor{DType: hdr.dtype, Shape: hdr.shape, Data: decodeData(raw, n, hdr.dtype, hdr.bigEndian)}
	return t, size, nil
}

// header is what a .npy header dictionary says.
type header struct {
	dtype     tensor.DType
	bigEndian bool
	fortran   bool
	shape     []int64
}

func readHeader(r io.Reader, name string) (header, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return header{}, fmt.Errorf("%w: array %q: shorter than the 8-byte .npy preamble", ErrFormat, name)
	}
	if !bytes.Equal(pre[:6], npyMagic) {
		return header{}, fmt.Errorf("%w: array %q: does not start with the .npy magic \\x93NUMPY (starts %q)", ErrFormat, name, pre[:6])
	}
	major, minor := pre[6], pre[7]
	var hlen uint32
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return header{}, fmt.Errorf("%w: array %q: truncated header length", ErrFormat, name)
		}
		hlen = uint32(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return header{}, fmt.Errorf("%w: array %q: truncated header length", ErrFormat, name)
		}
		hlen = binary.LittleEndian.Uint32(b[:])
	default:
		return header{}, fmt.Errorf("%w: array %q: .npy format version %d.%d, want 1.0, 2.0 or 3.0", ErrUnsupported, name, major, minor)
	}
	if minor != 0 {
		return header{}, fmt.Errorf("%w: array %q: .npy format version %d.%d, want 1.0, 2.0 or 3.0", ErrUnsupported, name, major, minor)
	}
	if hlen > MaxHeaderBytes {
		return header{}, fmt.Errorf("%w: array %q: header of %d bytes, more than the limit of %d", ErrFormat, name, hlen, MaxHeaderBytes)
	}
	text := make([]byte, hlen)
	if _, err := io.ReadFull(r, text); err != nil {
		return header{}, fmt.Errorf("%w: array %q: header is shorter than the %d bytes it declares", ErrFormat, name, hlen)
	}
	// Versions 1 and 2 are latin-1, 3 is UTF-8; the keys and values numpy
	// writes for the types read here are ASCII in all three.
	if major == 3 && !utf8.Valid(text) {
		return header{}, fmt.Errorf("%w: array %q: version 3.0 header is not UTF-8", ErrFormat, name)
	}
	h, err := parseHeader(string(text))
	if err != nil {
		return header{}, fmt.Errorf("array %q: %w", name, err)
	}
	return h, nil
}

// parseHeader interprets the header dictionary, e.g.
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (128, 64), }
func parseHeader(text string) (header, error) {
	p := &litParser{s: strings.TrimRight(text, " \n\x00")}
	v, err := p.parse()
	if err != nil {
		return header{}, fmt.Errorf("%w: header %q: %v", ErrFormat, abbreviate(text), err)
	}
	dict, ok := v.(map[string]any)
	if !ok {
		return header{}, fmt.Errorf("%w: header %q is not a dictionary", ErrFormat, abbreviate(text))
	}
	for k := range dict {
		if k != "descr" && k != "fortran_order" && k != "shape" {
			return header{}, fmt.Errorf("%w: header has key %q; want exactly descr, fortran_order and shape", ErrFormat, k)
		}
	}
	var h header
	switch d := dict["descr"].(type) {
	case string:
		if h.dtype, h.bigEndian, err = parseDescr(d); err != nil {
			return header{}, err
		}
	case []any:
		return header{}, fmt.Errorf("%w: structured dtype (a record of fields); want a plain array of %s", ErrUnsupported, supportedTypes)
	case nil:
		return header{}, fmt.Errorf("%w: header has no descr", ErrFormat)
	default:
		return header{}, fmt.Errorf("%w: header descr is %v, want a string such as '<f4'", ErrFormat, d)
	}
	switch f := dict["fortran_order"].(type) {
	case bool:
		h.fortran = f
	case nil:
		return header{}, fmt.Errorf("%w: header has no fortran_order", ErrFormat)
	default:
		return header{}, fmt.Errorf("%w: header fortran_order is %v, want True or False", ErrFormat, f)
	}
	shape, ok := dict["shape"].([]any)
	if !ok {
		return header{}, fmt.Errorf("%w: header shape is %v, want a tuple of integers", ErrFormat, dict["shape"])
	}
	if len(shape) > maxRank {
		return header{}, fmt.Errorf("%w: shape has %d dimensions, more than %d", ErrFormat, len(shape), maxRank)
	}
	h.shape = make([]int64, len(shape))
	for i, d := range shape {
		v, ok := d.(int64)
		if !ok || v < 0 {
			return header{}, fmt.Errorf("%w: shape dimension %d is %v, want an integer >= 0", ErrFormat, i, d)
		}
		h.shape[i] = v
	}
	return h, nil
}

// maxRank is numpy's own limit on dimensions (NPY_MAXDIMS).
const maxRank = 64

const supportedTypes = "float32, float64, int64, int32, uint8, int8 or bool"

// parseDescr reads a numpy type string: byte order ('<', '>', '|', '='),
// kind and item size.
func parseDescr(d string) (tensor.DType, bool, error) {
	if d == "" {
		return 0, false, fmt.Errorf("%w: empty descr", ErrFormat)
	}
	order, code := d[0], d[1:]
	switch order {
	case '<', '>', '|', '=':
	default:
		order, code = '=', d
	}
	dt, ok := map[string]tensor.DType{
		"f4": tensor.Float32, "f8": tensor.Float64, "i8": tensor.Int64, "i4": tensor.Int32,
		"u1": tensor.Uint8, "i1": tensor.Int8, "b1": tensor.Bool,
	}[code]
	if !ok {
		what := code
		if named, ok := numpyNames[code]; ok {
			what = fmt.Sprintf("%s (%s)", code, named)
		} else if code != "" {
			switch code[0] {
			case 'O':
				return 0, false, fmt.Errorf("%w: dtype %q is an object array, stored as a pickle, which is never loaded; want %s", ErrUnsupported, d, supportedTypes)
			case 'U', 'S', 'a':
				what = code + " (strings)"
			case 'M', 'm':
				what = code + " (dates or times)"
			case 'V':
				what = code + " (raw records)"
			}
		}
		return 0, false, fmt.Errorf("%w: dtype %s is not supported; want %s", ErrUnsupported, what, supportedTypes)
	}
	return dt, order == '>' && dt.Size() > 1, nil
}

var numpyNames = map[string]string{
	"f2": "float16", "f16": "float128", "u2": "uint16", "u4": "uint32", "u8": "uint64",
	"i2": "int16", "c8": "complex64", "c16": "complex128", "c32": "complex256",
}

// fortranToC reorders column-major data (first index fastest) to row-major.
func fortranToC(raw []byte, shape []int64, size int) []byte {
	out := make([]byte, len(raw))
	rank := len(shape)
	// fstride[i] is the column-major stride of axis i, in elements.
	fstride := make([]int, rank)
	s := 1
	for i := range rank {
		fstride[i] = s
		s *= int(shape[i])
	}
	idx := make([]int, rank)
	n := len(raw) / size
	src := 0
	for dst := range n {
		copy(out[dst*size:(dst+1)*size], raw[src*size:(src+1)*size])
		// Advance the row-major index, last axis fastest.
		for ax := rank - 1; ax >= 0; ax-- {
			idx[ax]++
			src += fstride[ax]
			if idx[ax] < int(shape[ax]) {
				break
			}
			src -= idx[ax] * fstride[ax]
			idx[ax] = 0
		}
	}
	return out
}

// decodeData converts n elements of raw bytes to the slice type of dt.
func decodeData(raw []byte, n int, dt tensor.DType, big bool) any {
	var bo binary.ByteOrder = binary.LittleEndian
	if big {
		bo = binary.BigEndian
	}
	switch dt {
	case tensor.Float32:
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(bo.Uint32(raw[4*i:]))
		}
		return d
	case tensor.Float64:
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(bo.Uint64(raw[8*i:]))
		}
		return d
	case tensor.Int64:
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(bo.Uint64(raw[8*i:]))
		}
		return d
	case tensor.Int32:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(bo.Uint32(raw[4*i:]))
		}
		return d
	case tensor.Uint8:
		return raw
	case tensor.Int8:
		d := make([]int8, n)
		for i, b := range raw {
			d[i] = int8(b)
		}
		return d
	case tensor.Bool:
		d := make([]bool, n)
		for i, b := range raw {
			d[i] = b != 0
		}
		return d
	}
	panic("npz: unreachable dtype " + dt.String())
}

func abbreviate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
