package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// withByteOrder runs f with the element-by-element path of big-endian
// machines and, where this machine is little-endian, with the copy path.
func withByteOrder(t *testing.T, f func(t *testing.T)) {
	paths := map[string]bool{"per-element": false}
	if nativeLE {
		paths["copy"] = true
	}
	for name, native := range paths {
		t.Run(name, func(t *testing.T) {
			prev := nativeLE
			nativeLE = native
			defer func() { nativeLE = prev }()
			f(t)
		})
	}
}

// specials32 are float32 bit patterns a conversion must keep as they are.
var specials32 = []uint32{
	0x00000000, 0x80000000, // ±0
	0x7f800000, 0xff800000, // ±Inf
	0x7fc00000, 0xffc00001, 0x7f800001, // quiet and signaling NaNs with payloads
	0x00000001, 0x807fffff, // subnormals
	0x7f7fffff, 0xff7fffff, // ±MaxFloat32
}

func TestRawFloat32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	withByteOrder(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 3, 17, 1000} {
			x := make([]float32, n)
			want := make([]byte, 4*n)
			for i := range x {
				bits := r.Uint32()
				if i < len(specials32) {
					bits = specials32[i]
				}
				x[i] = math.Float32frombits(bits)
				binary.LittleEndian.PutUint32(want[4*i:], bits)
			}
			raw := EncodeRaw(x)
			if !bytes.Equal(raw, want) {
				t.Fatalf("n=%d: EncodeRaw differs from the little-endian bytes", n)
			}
			back := make([]float32, n)
			DecodeRaw(back, raw)
			for i := range back {
				if got, want := math.Float32bits(back[i]), math.Float32bits(x[i]); got != want {
					t.Fatalf("n=%d: element %d decodes to %#08x, want %#08x", n, i, got, want)
				}
			}
		}
	})
}

// TestRawWidths checks each other element type against encoding/binary's
// little-endian encoding, both ways.
func TestRawWidths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	withByteOrder(t, func(t *testing.T) {
		const n = 37
		f64 := make([]float64, n)
		i64 := make([]int64, n)
		i32 := make([]int32, n)
		i8 := make([]int8, n)
		u8 := make([]uint8, n)
		for i := range n {
			f64[i] = math.Float64frombits(r.Uint64())
			i64[i], i32[i] = int64(r.Uint64()), int32(r.Uint32())
			i8[i], u8[i] = int8(r.Uint32()), uint8(r.Uint32())
		}
		f64[0], i64[1], i32[2], i8[3] = math.Copysign(0, -1), math.MinInt64, math.MinInt32, math.MinInt8
		check(t, "float64", f64)
		check(t, "int64", i64)
		check(t, "int32", i32)
		check(t, "int8", i8)
		check(t, "uint8", u8)
	})
}

func check[T Number](t *testing.T, name string, x []T) {
	t.Helper()
	want, err := binary.Append(nil, binary.LittleEndian, x)
	if err != nil {
		t.Fatal(err)
	}
	raw := EncodeRaw(x)
	if !bytes.Equal(raw, want) {
		t.Fatalf("%s: EncodeRaw = %x, want %x", name, raw, want)
	}
	back := make([]T, len(x))
	DecodeRaw(back, raw)
	if !bytes.Equal(EncodeRaw(back), want) {
		t.Fatalf("%s: DecodeRaw(EncodeRaw(x)) is not x", name)
	}
}

func TestDecodeRawSizeMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("DecodeRaw of 7 bytes into 2 float32s did not panic")
		}
	}()
	DecodeRaw(make([]float32, 2), make([]byte, 7))
}

// TestView checks the views where they apply, on a little-endian machine;
// TestViewBigEndian checks that they do not apply elsewhere.
func TestView(t *testing.T) {
	if !nativeLE {
		TestViewBigEndian(t)
		return
	}
	x := []float32{1.5, -2, float32(math.Inf(1)), 3e-42}
	buf := make([]byte, 4*len(x)+8) // room to misalign
	raw := buf[4 : 4+4*len(x)]
	copy(raw, EncodeRaw(x))
	v, ok := View[float32](raw)
	if !ok || len(v) != len(x) {
		t.Fatalf("View of %d aligned bytes: len %d, %t", len(raw), len(v), ok)
	}
	for i := range x {
		if math.Float32bits(v[i]) != math.Float32bits(x[i]) {
			t.Fatalf("element %d: %v, want %v", i, v[i], x[i])
		}
	}
	v[0] = 7 // one memory
	if raw[3] != 0x40 || raw[2] != 0xe0 {
		t.Fatalf("a write through the view did not reach raw: % x", raw[:4])
	}
	if _, ok := View[float32](buf[5 : 5+4*len(x)]); ok {
		t.Error("View of a misaligned slice succeeded")
	}
	if _, ok := View[float32](raw[:7]); ok {
		t.Error("View of 7 bytes as float32 succeeded")
	}
	if e, ok := View[int64](nil); !ok || len(e) != 0 {
		t.Error("View of no bytes: want an empty slice")
	}
	if u, ok := View[uint8](buf[1:4]); !ok || &u[0] != &buf[1] {
		t.Error("View of bytes as uint8: want the same memory")
	}

	b, ok := BytesView(x)
	if !ok || !bytes.Equal(b, EncodeRaw(x)) {
		t.Fatalf("BytesView = % x, %t; want EncodeRaw's bytes", b, ok)
	}
	b[0] ^= 1
	if math.Float32bits(x[0]) != math.Float32bits(1.5)^1 {
		t.Fatal("BytesView does not share x's memory")
	}
	if e, ok := BytesView[int32](nil); !ok || len(e) != 0 {
		t.Error("BytesView of nothing: want an empty slice")
	}
}

func TestViewBigEndian(t *testing.T) {
	prev := nativeLE
	nativeLE = false
	defer func() { nativeLE = prev }()
	if _, ok := View[float32](make([]byte, 8)); ok {
		t.Error("View on a big-endian machine succeeded")
	}
	if _, ok := BytesView([]float32{1}); ok {
		t.Error("BytesView on a big-endian machine succeeded")
	}
}
