package repository

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/onnx"
)

// externalModel is y = x + w with w [3] float32 stored as external data
// described by kv (key, value pairs).
func externalModel(t *testing.T, kv ...string) []byte {
	t.Helper()
	var ext []*onnxpb.StringStringEntryProto
	for i := 0; i < len(kv); i += 2 {
		ext = append(ext, &onnxpb.StringStringEntryProto{Key: kv[i], Value: kv[i+1]})
	}
	info := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: 1, Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 3}}}}}}}}
	}
	m := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
		Name:        "ext",
		Node:        []*onnxpb.NodeProto{{Name: "add", OpType: "Add", Input: []string{"x", "w"}, Output: []string{"y"}}},
		Initializer: []*onnxpb.TensorProto{{Name: "w", Dims: []int64{3}, DataType: 1, DataLocation: onnxpb.TensorProto_EXTERNAL, ExternalData: ext}},
		Input:       []*onnxpb.ValueInfoProto{info("x")},
		Output:      []*onnxpb.ValueInfoProto{info("y")},
	}}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func floatBytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// decodingLoader decodes with the repository's external files and keeps
// the initializer w it read.
func decodingLoader(got map[string][]float32) Loader {
	return func(_ context.Context, req LoadRequest) (Servable, error) {
		g, err := onnx.DecodeWith(req.Model, onnx.DecodeOptions{External: req.External})
		if err != nil {
			return nil, err
		}
		got[string(req.Model)] = g.Initializers["w"].Data.([]float32)
		return &stub{req: req}, nil
	}
}

// TestExternalData loads models whose weights live in external files and
// tries every trick RELIABILITY.md lists against the ONNX loader: each is
// refused with its reason, and a good version keeps serving beside a bad
// one.
func TestExternalData(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.bin")
	if err := os.WriteFile(secret, floatBytes(7, 7, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	w := floatBytes(1, 2, 3)
	padded := append(append(floatBytes(9), w...), floatBytes(9)...)
	sum := sha1.Sum(padded)
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		model string
		setup func(vdir string)
		kv    []string
		err   string // "" when it must load
	}{
		{"plain", func(v string) { write(v+"/w.bin", w) }, []string{"location", "w.bin"}, ""},
		{"offset", func(v string) { write(v+"/sub/all.bin", padded) },
			[]string{"location", "sub/all.bin", "offset", "4", "length", "12", "checksum", hex.EncodeToString(sum[:])}, ""},
		{"dotdot", nil, []string{"location", "../secret.bin"}, "not a plain relative path"},
		{"subdotdot", func(v string) { write(v+"/sub/x", nil) }, []string{"location", "sub/../../secret.bin"}, "not a plain relative path"},
		{"absolute", nil, []string{"location", secret}, "not a plain relative path"},
		{"backslash", nil, []string{"location", `..\secret.bin`}, "not a plain relative path"},
		{"symlink", func(v string) {
			os.MkdirAll(filepath.Join(dir, v), 0o755)
			if err := os.Symlink(secret, filepath.Join(dir, v, "w.bin")); err != nil {
				t.Fatal(err)
			}
		}, []string{"location", "w.bin"}, "symbolic link"},
		{"symlinkdir", func(v string) {
			os.MkdirAll(filepath.Join(dir, v), 0o755)
			if err := os.Symlink(outside, filepath.Join(dir, v, "sub")); err != nil {
				t.Fatal(err)
			}
		}, []string{"location", "sub/secret.bin"}, "symbolic link"},
		{"hardlink", func(v string) {
			os.MkdirAll(filepath.Join(dir, v), 0o755)
			if err := os.Link(secret, filepath.Join(dir, v, "w.bin")); err != nil {
				t.Skipf("hard links unavailable here: %v", err)
			}
		}, []string{"location", "w.bin"}, "hard links"},
		{"negative", func(v string) { write(v+"/w.bin", w) }, []string{"location", "w.bin", "offset", "-4"}, "want a non-negative integer"},
		{"pastend", func(v string) { write(v+"/w.bin", w) }, []string{"location", "w.bin", "offset", "8", "length", "12"}, "past the end"},
		{"overflow", func(v string) { write(v+"/w.bin", w) }, []string{"location", "w.bin", "offset", "4", "length", "9223372036854775807"}, "past the end"},
		{"shortlength", func(v string) { write(v+"/w.bin", w) }, []string{"location", "w.bin", "length", "8"}, "want 12"},
		{"unknownkey", func(v string) { write(v+"/w.bin", w) }, []string{"location", "w.bin", "basepath", "/"}, `key "basepath"`},
		{"checksum", func(v string) { write(v+"/w.bin", w) }, []string{"location", "w.bin", "checksum", strings.Repeat("0", 40)}, "SHA-1"},
		{"nolocation", nil, []string{"offset", "0"}, "no location"},
		{"missing", nil, []string{"location", "nope.bin"}, "no such file"},
	}
	for _, c := range cases {
		v := c.model + "/1"
		write(v+"/model.onnx", externalModel(t, c.kv...))
		if c.setup != nil {
			c.setup(v)
		}
	}
	// A good v1 and a v2 whose external data escapes: v1 keeps serving.
	write("kept/1/w.bin", w)
	write("kept/1/model.onnx", externalModel(t, "location", "w.bin"))
	write("kept/2/model.onnx", externalModel(t, "location", "../../kept/1/w.bin"))
	// A zip archive named model.onnx.
	write("zip/1/model.onnx", []byte("PK\x03\x04 not a model"))

	got := map[string][]float32{}
	r := New(os.DirFS(dir), decodingLoader(got), Options{Dir: dir})
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, c := range cases {
		st, err := r.Status(c.model)
		if err != nil {
			t.Fatal(err)
		}
		v := st.Versions[0]
		if c.err == "" {
			if v.State != StateAvailable {
				t.Errorf("%s: %v %v, want AVAILABLE", c.model, v.State, v.Err)
			}
			continue
		}
		if v.State != StateFailed || v.Err == nil || !strings.Contains(v.Err.Error(), c.err) {
			t.Errorf("%s: %v %v; want FAILED saying %q", c.model, v.State, v.Err, c.err)
		} else if strings.Contains(v.Err.Error(), outside) && !strings.Contains(strings.Join(c.kv, " "), outside) {
			t.Errorf("%s: the error names a path outside the repository: %v", c.model, v.Err)
		}
	}
	for model, ws := range got {
		if len(ws) != 3 || ws[0] != 1 || ws[1] != 2 || ws[2] != 3 {
			t.Errorf("a model read weights %v, want [1 2 3] (%d bytes of model)", ws, len(model))
		}
	}
	kept, _ := r.Status("kept")
	if kept.Versions[0].State != StateAvailable || kept.Versions[1].State != StateFailed {
		t.Errorf("kept: %+v; want v1 AVAILABLE beside a FAILED v2", kept.Versions)
	}
	if l, err := r.Resolve("kept", 0, "", ""); err != nil || l.Version != 1 {
		t.Errorf("kept resolves to %v, %v; want v1", l, err)
	} else {
		l.Release()
	}
	zip, _ := r.Status("zip")
	if e := zip.Versions[0].Err; e == nil || !strings.Contains(e.Error(), "zip archive") {
		t.Errorf("zip named model.onnx: %v", e)
	}
}
