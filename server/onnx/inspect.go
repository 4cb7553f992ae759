package onnx

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
)

// Summary describes a model file for a person deciding whether Corvid can
// serve it: what it takes and returns, what it is made of, and, unlike
// Decode, every operator it uses that Corvid lacks rather than the first.
type Summary struct {
	IRVersion    int64
	Producer     string // "name version", as the exporter wrote it
	Graph        string
	Opsets       map[string]int64 // domain ("" is the default) -> version
	Inputs       []ValueSummary   // graph inputs that are not initializers
	Outputs      []ValueSummary
	Nodes        int
	Initializers int
	Parameters   int64     // elements in initializers, Constant nodes and weight attributes
	Ops          []OpCount // sorted by domain, then op type
	// Err is Decode's verdict on the whole file: nil when Corvid can load
	// it (the runtime may still refuse an attribute value or shape).
	Err error
}

// ValueSummary is one graph input or output, with its type as text
// ("fp32 [-1 64]", "float16 [1 3]" for a dtype Corvid lacks, "sequence").
type ValueSummary struct {
	Name string
	Type string
}

// OpCount is how many nodes use one operator.
type OpCount struct {
	Domain    string // "" for the default domain
	OpType    string
	Count     int
	Supported bool
}

// Unsupported lists the operators Corvid does not run, as domain.op for
// domains other than the default one.
func (s *Summary) Unsupported() []string {
	var out []string
	for _, op := range s.Ops {
		if !op.Supported {
			out = append(out, qualified(op.Domain, op.OpType))
		}
	}
	return out
}

func qualified(domain, op string) string {
	if domain == DomainDefault {
		return op
	}
	return domain + "." + op
}

// Inspect reads a model file leniently. It fails only when the bytes are not
// an ONNX model at all; everything Decode would refuse is reported in
// Summary.Err and, for operators, in Summary.Ops.
func Inspect(data []byte) (*Summary, error) {
	if err := sniff(data); err != nil {
		return nil, err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: not an ONNX protobuf: %v", ErrInvalidModel, err)
	}
	gp := m.GetGraph()
	if gp == nil {
		return nil, fmt.Errorf("%w: model has no graph", ErrInvalidModel)
	}
	s := &Summary{
		IRVersion:    m.GetIrVersion(),
		Producer:     strings.TrimSpace(m.GetProducerName() + " " + m.GetProducerVersion()),
		Graph:        gp.GetName(),
		Opsets:       map[string]int64{},
		Nodes:        len(gp.GetNode()),
		Initializers: len(gp.GetInitializer()),
	}
	for _, o := range m.GetOpsetImport() {
		d := o.GetDomain()
		if d == "ai.onnx" {
			d = DomainDefault
		}
		s.Opsets[d] = o.GetVersion()
	}
	inits := make(map[string]bool, len(gp.GetInitializer()))
	for _, t := range gp.GetInitializer() {
		inits[t.GetName()] = true
		s.Parameters += elements(t.GetDims())
	}
	for _, vi := range gp.GetInput() {
		if !inits[vi.GetName()] {
			s.Inputs = append(s.Inputs, ValueSummary{vi.GetName(), describeType(vi.GetType())})
		}
	}
	for _, vi := range gp.GetOutput() {
		s.Outputs = append(s.Outputs, ValueSummary{vi.GetName(), describeType(vi.GetType())})
	}
	counts := map[opKey]int{}
	for _, n := range gp.GetNode() {
		d := n.GetDomain()
		if d == "ai.onnx" {
			d = DomainDefault
		}
		counts[opKey{d, n.GetOpType()}]++
		// Weights live in tensor attributes (Constant's value) and, for
		// ai.onnx.ml models, in float lists (coefficients, tree weights).
		for _, a := range n.GetAttribute() {
			if a.GetT() != nil {
				s.Parameters += elements(a.GetT().GetDims())
			}
			s.Parameters += int64(len(a.GetFloats()))
		}
	}
	for k, c := range counts {
		s.Ops = append(s.Ops, OpCount{Domain: k.domain, OpType: k.opType, Count: c, Supported: Supported(k.domain, k.opType)})
	}
	slices.SortFunc(s.Ops, func(a, b OpCount) int {
		return cmp.Or(cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.OpType, b.OpType))
	})
	_, s.Err = Decode(data)
	return s, nil
}

// elements is the product of dims, saturating instead of overflowing: the
// count is for display, and a file may lie.
func elements(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		if d <= 0 {
			return 0
		}
		if n > (1<<62)/d {
			return 1 << 62
		}
		n *= d
	}
	return n
}

// describeType renders a value's type for people.
func describeType(t *onnxpb.TypeProto) string {
	switch v := t.GetValue().(type) {
	case *onnxpb.TypeProto_TensorType:
		name := strings.ToLower(onnxpb.TensorProto_DataType(v.TensorType.GetElemType()).String())
		if dt, err := dtypeFromProto(v.TensorType.GetElemType()); err == nil {
			name = dt.String()
		}
		if v.TensorType.GetShape() == nil {
			return name + " (rank unknown)"
		}
		dims := make([]string, 0, len(v.TensorType.GetShape().GetDim()))
		for _, d := range v.TensorType.GetShape().GetDim() {
			switch dv := d.GetValue().(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				dims = append(dims, fmt.Sprint(dv.DimValue))
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				dims = append(dims, dv.DimParam)
			default:
				dims = append(dims, "?")
			}
		}
		return name + " [" + strings.Join(dims, " ") + "]"
	case *onnxpb.TypeProto_SequenceType:
		return "sequence"
	case *onnxpb.TypeProto_MapType:
		return "map"
	case *onnxpb.TypeProto_OptionalType:
		return "optional"
	case *onnxpb.TypeProto_SparseTensorType:
		return "sparse tensor"
	}
	return "unknown type"
}
