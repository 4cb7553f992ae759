package runtime_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// opsDir holds the conformance cases written by testdata/ops/make_ops.py.
const opsDir = "../../testdata/ops"

// floatTol is the largest difference from ONNX Runtime accepted for float
// outputs; integer and bool outputs must be equal.
const floatTol = 1e-5

// dataSet is one test_data_set_<k> folder: named inputs, and the outputs
// ONNX Runtime computed, in output order.
type dataSet struct {
	dir     string
	inputs  map[string]*tensor.Tensor
	outputs []namedTensor
}

type namedTensor struct {
	name string
	t    *tensor.Tensor
}

func loadCase(t testing.TB, dir string) (*onnx.Graph, []dataSet) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := onnx.Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	setDirs, err := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if err != nil || len(setDirs) == 0 {
		t.Fatalf("no test data sets in %s (%v)", dir, err)
	}
	sort.Strings(setDirs)
	var sets []dataSet
	for _, sd := range setDirs {
		s := dataSet{dir: filepath.Base(sd), inputs: make(map[string]*tensor.Tensor)}
		for _, in := range readTensors(t, sd, "input") {
			s.inputs[in.name] = in.t
		}
		s.outputs = readTensors(t, sd, "output")
		sets = append(sets, s)
	}
	return g, sets
}

// readTensors reads <prefix>_0.pb, <prefix>_1.pb, ... in index order.
func readTensors(t testing.TB, dir, prefix string) []namedTensor {
	t.Helper()
	var out []namedTensor
	for i := 0; ; i++ {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s_%d.pb", prefix, i)))
		if os.IsNotExist(err) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		name, tt, err := onnx.DecodeTensor(data)
		if err != nil {
			t.Fatalf("%s/%s_%d.pb: %v", dir, prefix, i, err)
		}
		out = append(out, namedTensor{name, tt})
	}
}

func caseDirs(t testing.TB) []string {
	t.Helper()
	models, err := filepath.Glob(filepath.Join(opsDir, "*", "model.onnx"))
	if err != nil || len(models) == 0 {
		t.Fatalf("no cases under %s (%v): run .venv/bin/python testdata/ops/make_ops.py", opsDir, err)
	}
	dirs := make([]string, len(models))
	for i, m := range models {
		dirs[i] = filepath.Dir(m)
	}
	return dirs
}

// TestConformance runs every case of testdata/ops and compares with the
// outputs ONNX Runtime computed.
func TestConformance(t *testing.T) {
	for _, dir := range caseDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			g, sets := loadCase(t, dir)
			m, err := runtime.Compile(g, runtime.Options{Workers: 2})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			defer m.Close()
			for _, s := range sets {
				got, err := m.Run(context.Background(), s.inputs, nil)
				if err != nil {
					t.Fatalf("%s: Run: %v", s.dir, err)
				}
				for _, want := range s.outputs {
					if err := compareTensors(got[want.name], want.t); err != nil {
						t.Errorf("%s: output %q: %v", s.dir, want.name, err)
					}
				}
			}
		})
	}
}

// compareTensors returns nil when got matches want: same dtype and shape,
// floats within floatTol, everything else equal.
func compareTensors(got, want *tensor.Tensor) error {
	if got == nil {
		return fmt.Errorf("missing")
	}
	if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("got %v%v, want %v%v", got.DType, got.Shape, want.DType, want.Shape)
	}
	switch w := want.Data.(type) {
	case []float32:
		return compareFloats(got.Data.([]float32), w)
	case []float64:
		return compareFloats(got.Data.([]float64), w)
	case []int8:
		return compareExact(got.Data.([]int8), w)
	case []uint8:
		return compareExact(got.Data.([]uint8), w)
	case []int32:
		return compareExact(got.Data.([]int32), w)
	case []int64:
		return compareExact(got.Data.([]int64), w)
	case []bool:
		return compareExact(got.Data.([]bool), w)
	}
	return fmt.Errorf("unexpected data %T", want.Data)
}

func compareFloats[T float32 | float64](got, want []T) error {
	worst, at := 0.0, -1
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) && math.IsNaN(g) {
			continue
		}
		if d := math.Abs(g - w); !(d <= worst) {
			worst, at = d, i
		}
	}
	if worst > floatTol {
		return fmt.Errorf("max abs diff %g at %d: got %v, want %v", worst, at, got[at], want[at])
	}
	return nil
}

func compareExact[T comparable](got, want []T) error {
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("element %d: got %v, want %v", i, got[i], want[i])
		}
	}
	return nil
}
