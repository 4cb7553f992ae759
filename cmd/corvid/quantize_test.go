package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
)

var digitsPath = filepath.Join("..", "..", "models", "digits", "1", "model.onnx")

func TestParseQuantizeArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    quantizeArgs
		wantErr string
	}{
		{name: "dynamic", args: []string{"in.onnx", "out.onnx"}, want: quantizeArgs{in: "in.onnx", out: "out.onnx"}},
		{name: "flag first", args: []string{"--calibration", "c.npz", "in.onnx", "out.onnx"}, want: quantizeArgs{in: "in.onnx", out: "out.onnx", calibration: "c.npz"}},
		{name: "flag last", args: []string{"in.onnx", "out.onnx", "-calibration=c.npz"}, want: quantizeArgs{in: "in.onnx", out: "out.onnx", calibration: "c.npz"}},
		{name: "flag between", args: []string{"in.onnx", "--calibration", "c.npz", "out.onnx"}, want: quantizeArgs{in: "in.onnx", out: "out.onnx", calibration: "c.npz"}},
		{name: "one file", args: []string{"in.onnx"}, wantErr: `quantize: want IN.onnx and OUT.onnx, got ["in.onnx"]`},
		{name: "three files", args: []string{"a", "b", "c"}, wantErr: `quantize: want IN.onnx and OUT.onnx, got ["a" "b" "c"]`},
		{name: "same file", args: []string{"m.onnx", "m.onnx"}, wantErr: "quantize: OUT.onnx is IN.onnx (m.onnx); write the quantized model to another file"},
		{name: "unknown flag", args: []string{"a", "b", "--calib", "c"}, wantErr: "flag provided but not defined: -calib"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseQuantizeArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseQuantizeArgs = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// writeNPZ writes float32 arrays as np.savez does: a stored zip of .npy
// files, format 1.0.
func writeNPZ(t *testing.T, arrays map[string][]float32, shapes map[string][]int) string {
	t.Helper()
	var b bytes.Buffer
	z := zip.NewWriter(&b)
	for name, data := range arrays {
		dims := make([]string, len(shapes[name]))
		for i, d := range shapes[name] {
			dims[i] = strconv.Itoa(d)
		}
		hdr := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s,), }", strings.Join(dims, ", "))
		hdr += strings.Repeat(" ", 63-(10+len(hdr))%64) + "\n"
		f, err := z.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("\x93NUMPY\x01\x00"))
		binary.Write(f, binary.LittleEndian, uint16(len(hdr)))
		f.Write([]byte(hdr))
		for _, v := range data {
			binary.Write(f, binary.LittleEndian, math.Float32bits(v))
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "calibration.npz")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// rows returns n rows of 64 digit-like pixels (0..16).
func rows(n int) []float32 {
	x := make([]float32, n*64)
	for i := range x {
		x[i] = float32((i*7 + i/64*3) % 17)
	}
	return x
}

var summaryRE = regexp.MustCompile(`^quantized 2 MatMul \((dynamic|static, (\d+) calibration rows)\); 20\.3 kB -> ([\d.]+) kB \(([\d.]+)x smaller\)\n$`)

func TestQuantize(t *testing.T) {
	cal := writeNPZ(t, map[string][]float32{"input": rows(40)}, map[string][]int{"input": {40, 64}})
	tests := []struct {
		name     string
		args     []string
		wantRows string // "" for dynamic
	}{
		{"dynamic", nil, ""},
		{"static", []string{"--calibration", cal}, "40"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "q.onnx")
			var stdout bytes.Buffer
			if err := run(context.Background(), append([]string{"quantize", digitsPath, out}, tt.args...), &stdout, io.Discard); err != nil {
				t.Fatal(err)
			}
			m := summaryRE.FindStringSubmatch(stdout.String())
			if m == nil || m[2] != tt.wantRows {
				t.Fatalf("output %q does not match %v with %s rows", stdout.String(), summaryRE, tt.wantRows)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			in, _ := os.Stat(digitsPath)
			if got := fmt.Sprintf("%.1f", float64(len(b))/1e3); got != m[3] {
				t.Errorf("printed size %s kB, file has %d bytes", m[3], len(b))
			}
			if got := fmt.Sprintf("%.1f", float64(in.Size())/float64(len(b))); got != m[4] {
				t.Errorf("printed ratio %s, sizes give %s", m[4], got)
			}
			if _, err := onnx.Decode(b); err != nil {
				t.Errorf("written model: %v", err)
			}
		})
	}
}

func TestQuantizeErrors(t *testing.T) {
	dir := t.TempDir()
	pickle := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(pickle, []byte("\x80\x04\x95 not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrongKey := writeNPZ(t, map[string][]float32{"x": rows(2)}, map[string][]int{"x": {2, 64}})
	wrongShape := writeNPZ(t, map[string][]float32{"input": rows(2)}, map[string][]int{"input": {2, 8, 8}})
	notNPZ := filepath.Join(dir, "cal.npz")
	if err := os.WriteFile(notNPZ, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing model", []string{filepath.Join(dir, "nope.onnx"), out}, "nope.onnx: no such file or directory"},
		{"not onnx", []string{pickle, out}, "model.onnx: invalid model: file is a Python pickle"},
		{"nothing to quantize", []string{modelWith(t, "Relu"), out}, "nothing to quantize: the model has no MatMul, Gemm or Conv node"},
		{"missing calibration", []string{"--calibration", filepath.Join(dir, "none.npz"), digitsPath, out}, "none.npz: no such file or directory"},
		{"calibration not npz", []string{"--calibration", notNPZ, digitsPath, out}, "cal.npz: invalid npz: not a zip archive"},
		{"calibration key", []string{"--calibration", wrongKey, digitsPath, out}, `calibration.npz: invalid calibration data: calibration array "x" is not an input of the model (inputs: ["input"])`},
		{"calibration shape", []string{"--calibration", wrongShape, digitsPath, out}, `calibration array "input" has shape [2 8 8], want [N 64]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(context.Background(), append([]string{"quantize"}, tt.args...), &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed %q on failure", stdout.String())
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("wrote %s on failure", out)
			}
		})
	}
}
