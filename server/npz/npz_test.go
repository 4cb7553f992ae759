package npz

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/corvidml/corvid/server/tensor"
)

// formula is make_fixtures.py's formula for the C-order flat index i.
func formula(dt tensor.DType, shape ...int64) *tensor.Tensor {
	t, err := tensor.New(dt, shape)
	if err != nil {
		panic(err)
	}
	switch d := t.Data.(type) {
	case []float32:
		for i := range d {
			d[i] = float32(i)*0.5 - 3
		}
	case []float64:
		for i := range d {
			d[i] = float64(i)*0.5 - 3
		}
	case []int64:
		for i := range d {
			d[i] = int64(i)*7 - 20
		}
	case []int32:
		for i := range d {
			d[i] = int32(i)*7 - 20
		}
	case []uint8:
		for i := range d {
			d[i] = uint8(int64(i)*7 - 20)
		}
	case []int8:
		for i := range d {
			d[i] = int8(int64(i)*7 - 20)
		}
	case []bool:
		for i := range d {
			d[i] = i%3 == 1
		}
	}
	return t
}

func readFixture(t *testing.T, name string) (map[string]*tensor.Tensor, error) {
	t.Helper()
	return ReadFile(filepath.Join("testdata", name), 0)
}

func TestReadFixtures(t *testing.T) {
	dtypes := map[string]*tensor.Tensor{
		"f32":    formula(tensor.Float32, 2, 3),
		"f64":    formula(tensor.Float64, 3),
		"i64":    formula(tensor.Int64, 2, 2),
		"i32":    formula(tensor.Int32, 4),
		"u8":     formula(tensor.Uint8, 5),
		"i8":     formula(tensor.Int8, 5),
		"b":      formula(tensor.Bool, 3),
		"scalar": formula(tensor.Float32),
		"empty":  formula(tensor.Float32, 0, 3),
	}
	v := formula(tensor.Float32, 2, 5)
	tests := []struct {
		file string
		want map[string]*tensor.Tensor
	}{
		{"dtypes.npz", dtypes},
		{"compressed.npz", dtypes},
		{"orders.npz", map[string]*tensor.Tensor{
			"fortran_f32":     formula(tensor.Float32, 2, 3, 4),
			"fortran_i64":     formula(tensor.Int64, 3, 2),
			"big_f32":         formula(tensor.Float32, 2, 3),
			"big_i32":         formula(tensor.Int32, 4),
			"big_fortran_f64": formula(tensor.Float64, 3, 4),
		}},
		{"versions.npz", map[string]*tensor.Tensor{"v1": v, "v2": v, "v3": v}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := readFixture(t, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("arrays differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadRandom(t *testing.T) {
	var want struct {
		Shape  []int64
		Values []float64
	}
	b, err := os.ReadFile(filepath.Join("testdata", "random.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	got, err := readFixture(t, "random.npz")
	if err != nil {
		t.Fatal(err)
	}
	r := got["random"]
	if r == nil || r.DType != tensor.Float32 || !slices.Equal(r.Shape, want.Shape) {
		t.Fatalf("random = %+v, want fp32 %v", r, want.Shape)
	}
	for i, w := range want.Values {
		if g := r.Data.([]float32)[i]; g != float32(w) {
			t.Errorf("random[%d] = %v, want %v", i, g, float32(w))
		}
	}
}

func TestReadUnsupported(t *testing.T) {
	tests := []struct{ key, want string }{
		{"f16", `array "f16": unsupported array: dtype f2 (float16) is not supported; want float32, float64, int64, int32, uint8, int8 or bool`},
		{"c64", "dtype c8 (complex64) is not supported"},
		{"u16", "dtype u2 (uint16) is not supported"},
		{"str", "(strings) is not supported"},
		{"obj", `array "obj": unsupported array: dtype "|O" is an object array, stored as a pickle, which is never loaded`},
		{"rec", `array "rec": unsupported array: structured dtype`},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			_, err := readFixture(t, "unsupported_"+tt.key+".npz")
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want ErrUnsupported containing %q", err, tt.want)
			}
		})
	}
}

// npy builds a .npy file with the given version, header text (padded as
// numpy pads it) and data.
func npy(major byte, hdr string, data []byte) []byte {
	var b bytes.Buffer
	b.Write(npyMagic)
	b.Write([]byte{major, 0})
	pre := 10
	if major != 1 {
		pre = 12
	}
	hdr += strings.Repeat(" ", (64-(pre+len(hdr)+1)%64)%64) + "\n"
	if major == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(hdr)))
	}
	b.WriteString(hdr)
	b.Write(data)
	return b.Bytes()
}

// archive zips the given members (name -> bytes), stored or deflated.
func archive(t testing.TB, method uint16, members ...string) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for i := 0; i+1 < len(members); i += 2 {
		f, err := w.CreateHeader(&zip.FileHeader{Name: members[i], Method: method})
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(members[i+1]))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(x*2))) // any bits will do
	}
	return b
}

func TestReadCorrupt(t *testing.T) {
	good := `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
	data := f32bytes(1, 2, 3, 4, 5, 6)
	huge := bytes.Repeat([]byte("a"), MaxHeaderBytes+1)
	bigHeader := append(append(append([]byte{}, npyMagic...), 2, 0), 0, 0, 0, 0x7f)
	tests := []struct {
		name    string
		file    []byte
		max     int64
		wantErr error
		want    string
	}{
		{"not zip", []byte("hello, world"), 0, ErrFormat, "not a zip archive"},
		{"single npy", npy(1, good, data), 0, ErrFormat, "single .npy array, not an .npz archive"},
		{"pickle", []byte("\x80\x04\x95\x00\x00\x00\x00\x00"), 0, ErrFormat, "Python pickle"},
		{"not npy entry", archive(t, zip.Store, "x.txt", "hi"), 0, ErrFormat, `entry "x.txt" is not a .npy array`},
		{"duplicate", archive(t, zip.Store, "x.npy", string(npy(1, good, data)), "x.npy", string(npy(1, good, data))), 0, ErrFormat, `array "x" appears twice`},
		{"bad magic", archive(t, zip.Store, "x.npy", "\x93NUMPX\x01\x00"), 0, ErrFormat, `array "x": does not start with the .npy magic`},
		{"short preamble", archive(t, zip.Store, "x.npy", "\x93NU"), 0, ErrFormat, "shorter than the 8-byte .npy preamble"},
		{"version 4", archive(t, zip.Store, "x.npy", string(npy(4, good, data))), 0, ErrUnsupported, "format version 4.0, want 1.0, 2.0 or 3.0"},
		{"absurd header", archive(t, zip.Store, "x.npy", string(bigHeader)), 0, ErrFormat, "header of 2130706432 bytes, more than the limit of 65536"},
		{"header over limit", archive(t, zip.Store, "x.npy", string(npy(2, string(huge), nil))), 0, ErrFormat, "more than the limit of 65536"},
		{"truncated header", archive(t, zip.Store, "x.npy", string(npy(1, good, nil)[:30])), 0, ErrFormat, "header is shorter than the"},
		{"short data", archive(t, zip.Store, "x.npy", string(npy(1, good, data[:20]))), 0, ErrFormat, `array "x": data is 20 bytes, want 24 for fp32 [2 3]`},
		{"long data", archive(t, zip.Store, "x.npy", string(npy(1, good, append(data, 0)))), 0, ErrFormat, "bytes after the 24 of data"},
		{"not a dict", archive(t, zip.Store, "x.npy", string(npy(1, "(1, 2)", nil))), 0, ErrFormat, "is not a dictionary"},
		{"missing shape", archive(t, zip.Store, "x.npy", string(npy(1, "{'descr': '<f4', 'fortran_order': False}", nil))), 0, ErrFormat, "header shape is <nil>, want a tuple"},
		{"extra key", archive(t, zip.Store, "x.npy", string(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", nil))), 0, ErrFormat, `header has key "x"`},
		{"negative dim", archive(t, zip.Store, "x.npy", string(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", nil))), 0, ErrFormat, "shape dimension 0 is -1"},
		{"bad fortran", archive(t, zip.Store, "x.npy", string(npy(1, "{'descr': '<f4', 'fortran_order': 1, 'shape': ()}", nil))), 0, ErrFormat, "fortran_order is 1, want True or False"},
		{"unterminated", archive(t, zip.Store, "x.npy", string(npy(1, "{'descr': '<f4", nil))), 0, ErrFormat, "unterminated string"},
		{"deep", archive(t, zip.Store, "x.npy", string(npy(1, strings.Repeat("(", 40), nil))), 0, ErrFormat, "nested more than 16 deep"},
		{"overflowing shape", archive(t, zip.Store, "x.npy", string(npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", nil))), 0, ErrFormat, "more than 2147483647 elements"},
		{"over the limit", archive(t, zip.Store, "x.npy", string(npy(1, good, data))), 23, ErrTooLarge, `array "x" (fp32 [2 3]) holds 24 bytes, more than the 23 left of the limit`},
		{"limit is total", archive(t, zip.Deflate, "x.npy", string(npy(1, good, data)), "y.npy", string(npy(1, good, data))), 40, ErrTooLarge, `array "y" (fp32 [2 3]) holds 24 bytes, more than the 16 left`},
		{"huge declared shape", archive(t, zip.Deflate, "x.npy", string(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000)}", nil))), 0, ErrFormat, "more than 2147483647 elements"},
		{"big but within numpy", archive(t, zip.Deflate, "x.npy", string(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (40000, 40000)}", nil))), 0, ErrTooLarge, "holds 6400000000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(bytes.NewReader(tt.file), int64(len(tt.file)), tt.max)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read = %v, %v; want %v containing %q", got, err, tt.wantErr, tt.want)
			}
		})
	}
}

func TestReadCorruptDeflate(t *testing.T) {
	good := npy(1, `{'descr': '<f4', 'fortran_order': False, 'shape': (64,), }`, make([]byte, 256))
	file := archive(t, zip.Deflate, "x.npy", string(good))
	// Flip bits in the compressed stream: a CRC or inflate error, never a
	// panic or a wrong array.
	for i := 40; i < len(file)-60; i++ {
		bad := bytes.Clone(file)
		bad[i] ^= 0x55
		got, err := Read(bytes.NewReader(bad), int64(len(bad)), 0)
		if err == nil {
			if diff := cmp.Diff(formulaZeros(), got); diff != "" {
				t.Fatalf("byte %d flipped: wrong array without an error:\n%s", i, diff)
			}
		}
	}
}

func formulaZeros() map[string]*tensor.Tensor {
	z, _ := tensor.New(tensor.Float32, []int64{64})
	return map[string]*tensor.Tensor{"x": z}
}

func TestReadEmptyArchive(t *testing.T) {
	file := archive(t, zip.Store)
	got, err := Read(bytes.NewReader(file), int64(len(file)), 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("Read(empty archive) = %v, %v; want no arrays and no error", got, err)
	}
}

func TestReadNPY(t *testing.T) {
	hdr := `{'descr': '<i4', 'fortran_order': True, 'shape': (2L, 3L)}`
	var data []byte
	// Column-major: element (r, c) at c*2 + r holds r*10 + c.
	for c := range 3 {
		for r := range 2 {
			data = binary.LittleEndian.AppendUint32(data, uint32(r*10+c))
		}
	}
	got, err := ReadNPY(bytes.NewReader(npy(1, hdr, data)), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &tensor.Tensor{DType: tensor.Int32, Shape: []int64{2, 3}, Data: []int32{0, 1, 2, 10, 11, 12}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadNPY (-want +got):\n%s", diff)
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		text string
		want header
	}{
		{`{'descr': '<f8', 'fortran_order': False, 'shape': (), }`, header{dtype: tensor.Float64, shape: []int64{}}},
		{`{"shape": [3], "fortran_order": True, "descr": ">i8"}`, header{dtype: tensor.Int64, bigEndian: true, fortran: true, shape: []int64{3}}},
		{`{'descr': '|b1', 'fortran_order': False, 'shape': (1, 0, 2,), }` + "    \n", header{dtype: tensor.Bool, shape: []int64{1, 0, 2}}},
		{`{'descr': '>u1', 'fortran_order': False, 'shape': (1,)}`, header{dtype: tensor.Uint8, shape: []int64{1}}},
	}
	for _, tt := range tests {
		got, err := parseHeader(tt.text)
		if err != nil {
			t.Errorf("parseHeader(%q): %v", tt.text, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(header{})); diff != "" {
			t.Errorf("parseHeader(%q) (-want +got):\n%s", tt.text, diff)
		}
	}
}

func FuzzRead(f *testing.F) {
	for _, name := range []string{"dtypes.npz", "compressed.npz", "orders.npz", "versions.npz", "unsupported_rec.npz"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(archive(f, zip.Store, "x.npy", string(npy(3, `{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}`, f32bytes(1, 2, 3, 4, 5, 6)))))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Read(bytes.NewReader(b), int64(len(b)), 1<<20)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps none of the package's sentinels", err)
			}
			return
		}
		for name, a := range got {
			if err := a.Validate(); err != nil {
				t.Fatalf("array %q: %v", name, err)
			}
		}
	})
}

func ExampleRead() {
	b, _ := os.ReadFile(filepath.Join("testdata", "versions.npz"))
	arrays, err := Read(bytes.NewReader(b), int64(len(b)), 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(arrays["v3"].DType, arrays["v3"].Shape, arrays["v3"].Data.([]float32)[:3])
	// Output: fp32 [2 5] [-3 -2.5 -2]
}
