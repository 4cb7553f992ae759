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
	sets, err := loadDataSets(dir)
	if err != nil {
		t.Fatal(err)
	}
	return g, sets
}

// loadDataSets reads every test_data_set_<k> folder of a case. It returns
// errors rather than failing t so that TestONNXNodeConformance can classify
// a case whose data Corvid cannot hold as unsupported.
func loadDataSets(dir string) ([]dataSet, error) {
	setDirs, err := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if err != nil || len(setDirs) == 0 {
		return nil, fmt.Errorf("no test data sets in %s (%v)", dir, err)
	}
	sort.Strings(setDirs)
	var sets []dataSet
	for _, sd := range setDirs {
		s := dataSet{dir: filepath.Base(sd), inputs: make(map[string]*tensor.Tensor)}
		ins, err := readTensors(sd, "input")
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			s.inputs[in.name] = in.t
		}
		if s.outputs, err = readTensors(sd, "output"); err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	return sets, nil
}

// readTensors reads <prefix>_0.pb, <prefix>_1.pb, ... in index order.
func readTensors(dir, prefix string) ([]namedTensor, error) {
	var out []namedTensor
	for i := 0; ; i++ {
		file := filepath.Join(dir, fmt.Sprintf("%s_%d.pb", prefix, i))
		data, err := os.ReadFile(file)
		if os.IsNotExist(err) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name, tt, err := onnx.DecodeTensor(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
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
			runCase(t, dir, runtime.Options{Workers: 2}, tolerance{atol: floatTol})
		})
	}
}

// runCase compiles the case in dir and checks every data set's outputs
// against the expected ones, floats within tol.
func runCase(t *testing.T, dir string, opts runtime.Options, tol tolerance) {
	t.Helper()
	g, sets := loadCase(t, dir)
	m, err := runtime.Compile(g, opts)
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
			if err := compareTensorsWithin(got[want.name], want.t, tol); err != nil {
				t.Errorf("%s: output %q: %v", s.dir, want.name, err)
			}
		}
	}
}

// tolerance bounds how far a float output may be from the expected one:
// |got-want| <= atol + rtol*|want|.
type tolerance struct{ rtol, atol float64 }

// compareTensors returns nil when got matches want: same dtype and shape,
// floats within floatTol, everything else equal.
func compareTensors(got, want *tensor.Tensor) error {
	return compareTensorsWithin(got, want, tolerance{atol: floatTol})
}

// compareTensorsWithin is compareTensors with floats within tol; NaN
// matches NaN only.
func compareTensorsWithin(got, want *tensor.Tensor, tol tolerance) error {
	if got == nil {
		return fmt.Errorf("missing")
	}
	if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("got %v%v, want %v%v", got.DType, got.Shape, want.DType, want.Shape)
	}
	switch w := want.Data.(type) {
	case []float32:
		return compareFloats(got.Data.([]float32), w, tol)
	case []float64:
		return compareFloats(got.Data.([]float64), w, tol)
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

// compareFloats reports the element furthest outside its allowance.
func compareFloats[T float32 | float64](got, want []T, tol tolerance) error {
	bad, worst, at := 0, 0.0, -1
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if g == w || math.IsNaN(g) && math.IsNaN(w) { // == also covers equal infinities
			continue
		}
		excess := math.Abs(g-w) - (tol.atol + tol.rtol*math.Abs(w))
		if math.IsNaN(excess) { // NaN against a number
			excess = math.Inf(1)
		}
		if excess <= 0 {
			continue
		}
		if bad++; excess > worst {
			worst, at = excess, i
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d elements differ by more than atol %g + rtol %g*|want|; worst at %d: got %v, want %v (abs diff %g)",
			bad, len(want), tol.atol, tol.rtol, at, got[at], want[at], math.Abs(float64(got[at])-float64(want[at])))
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
