package runtime_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// mathOps are the operators of ops_math.go, ops_activation.go,
// ops_reduce.go and ops_logic.go.
var mathOps = []string{
	"Pow", "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal", "Erf", "Clip", "Min", "Max", "Sum", "Mean",
	"Floor", "Ceil", "Round", "Sign",
	"LeakyRelu", "PRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "LogSoftmax", "Softplus", "Gelu",
	"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ArgMin", "TopK",
	"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Where",
}

// mathShapeInputs are the inputs of those operators that Corvid needs as
// constants, because they decide the output's shape: the reductions' axes
// and TopK's k. ONNX's node tests feed them as graph inputs; a served model
// has them as initializers or Constants.
var mathShapeInputs = map[string]int{
	"ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceL2": 1, "TopK": 1,
}

// TestMathNodeTests runs ONNX's node tests of the operators above (alone or
// with others, as in the "_expanded" tests), with the graph inputs of
// mathShapeInputs made initializers holding the test's data, so that the
// kernels of every case are checked, not only of those whose axes are
// already constants. CORVID_NODE_TEST_PREFIX=test_reduce_ (say) narrows
// the run. TestONNXNodeConformance runs the tests unchanged.
func TestMathNodeTests(t *testing.T) {
	dir := cmp.Or(os.Getenv("CORVID_ONNX_NODE_TESTS"), "../../.build/onnx-node-tests")
	var models []string
	for _, name := range nodeTestNames(t, dir) {
		models = append(models, filepath.Join(dir, name, "model.onnx"))
	}
	prefix := os.Getenv("CORVID_NODE_TEST_PREFIX")
	mine := make(map[string]bool, len(mathOps))
	for _, op := range mathOps {
		mine[op] = true
	}
	var ran, unsupported int
	for _, model := range models {
		caseDir := filepath.Dir(model)
		name := filepath.Base(caseDir)
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		ops, err := nodeTestOps(model)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ops, func(op string) bool { return mine[op] }) {
			continue
		}
		ran++
		t.Run(name, func(t *testing.T) {
			if skip := runMathNodeTest(t, caseDir); skip != "" {
				unsupported++
				t.Skip(skip)
			}
		})
	}
	t.Logf("%d node tests use the math, activation, reduction and logic operators; %d are unsupported", ran, unsupported)
}

// runMathNodeTest runs one node test, returning why Corvid does not support
// it, if it does not.
func runMathNodeTest(t *testing.T, dir string) (unsupported string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := onnx.Decode(data)
	if errors.Is(err, onnx.ErrUnsupported) {
		return err.Error()
	}
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	sets, err := loadDataSets(dir)
	if errors.Is(err, onnx.ErrUnsupported) {
		return err.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		pg := promoteMathShapeInputs(g, s)
		m, err := runtime.Compile(pg, runtime.Options{Workers: 1, Logger: slog.New(slog.DiscardHandler)})
		if errors.Is(err, onnx.ErrUnsupported) {
			return err.Error()
		}
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		got, err := m.Run(context.Background(), s.inputs, nil)
		m.Close()
		if err != nil {
			t.Fatalf("%s: Run: %v", s.dir, err)
		}
		for _, want := range s.outputs {
			if err := compareTensorsWithin(got[want.name], want.t, tolerance{rtol: 1e-3, atol: 1e-5}); err != nil {
				t.Errorf("%s: output %q: %v", s.dir, want.name, err)
			}
		}
	}
	return ""
}

// promoteMathShapeInputs returns g with the graph inputs that feed a
// mathShapeInputs slot turned into initializers holding the data set's values,
// which it removes from s.inputs.
func promoteMathShapeInputs(g *onnx.Graph, s dataSet) *onnx.Graph {
	promote := map[string]bool{}
	for _, n := range g.Nodes {
		if i, ok := mathShapeInputs[n.OpType]; ok && n.Domain == onnx.DomainDefault && n.Input(i) != "" {
			promote[n.Input(i)] = true
		}
	}
	pg := *g
	pg.Initializers = maps.Clone(g.Initializers)
	if pg.Initializers == nil {
		pg.Initializers = map[string]*tensor.Tensor{}
	}
	pg.Inputs = nil
	for _, in := range g.Inputs {
		if t, ok := s.inputs[in.Name]; ok && promote[in.Name] {
			pg.Initializers[in.Name] = t
			delete(s.inputs, in.Name)
			continue
		}
		pg.Inputs = append(pg.Inputs, in)
	}
	return &pg
}

// nodeTestOps lists the default-domain operators of a node test's model,
// read from the protobuf: Decode refuses models with operators Corvid does
// not run.
func nodeTestOps(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ops []string
	for _, n := range m.GetGraph().GetNode() {
		if d := n.GetDomain(); d == "" || d == "ai.onnx" {
			ops = append(ops, n.GetOpType())
		}
	}
	return ops, nil
}
