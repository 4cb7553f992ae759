package onnx

import (
	"fmt"
	"strings"

	"github.com/corvidml/corvid/server/tensor"
)

// The operator set domains Corvid reads. ONNX spells the default domain
// either "" or "ai.onnx"; Decode normalises both to DomainDefault.
const (
	DomainDefault = ""
	DomainML      = "ai.onnx.ml"
)

// Graph is a decoded, validated ONNX graph.
//
// Every node input names a graph input, an initializer or an output of an
// earlier node in Nodes; value names are unique; initializer data matches
// its shape. A Graph is immutable once decoded and may be shared.
type Graph struct {
	// Name is the graph's name in the model file (may be empty).
	Name string
	// Opsets maps each imported domain (DomainDefault, DomainML) to its
	// operator set version.
	Opsets map[string]int64
	// Inputs are the graph inputs a caller must feed: initializers listed
	// among the inputs (as IR version < 4 writers do) are not included.
	Inputs []ValueInfo
	// Outputs are the graph outputs, in declaration order.
	Outputs []ValueInfo
	// Initializers are the constant tensors, by name.
	Initializers map[string]*tensor.Tensor
	// Nodes are in topological order: each node's inputs are produced before
	// it.
	Nodes []Node
}

// Opset returns the version of the default operator set, 0 when the
// model imports only ai.onnx.ml.
func (g *Graph) Opset() int64 { return g.Opsets[DomainDefault] }

// ValueInfo describes a graph input or output.
type ValueInfo struct {
	Name  string
	DType tensor.DType
	// Shape has -1 for a dynamic dimension (a dim_param such as "N", or a
	// dimension without a value). An output whose shape the model does not
	// declare has a nil Shape; a declared scalar has an empty, non-nil one.
	Shape []int64
}

// String formats v as "name fp32[N 64]", dynamic dimensions as N, for
// messages.
func (v ValueInfo) String() string {
	return fmt.Sprintf("%s %v%s", v.Name, v.DType, FormatShape(v.Shape))
}

// FormatShape formats a shape as "[N 64]", writing dynamic (-1) dimensions
// as N.
func FormatShape(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(' ')
		}
		if d < 0 {
			b.WriteByte('N')
		} else {
			fmt.Fprint(&b, d)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Node is one operator invocation.
type Node struct {
	// Name is unique within the graph; nodes the model left unnamed get a
	// generated name such as "Relu_3".
	Name string
	// OpType is the operator, e.g. "Gemm".
	OpType string
	// Domain is DomainDefault or DomainML.
	Domain string
	// Inputs name the values the node reads, in order; "" marks an omitted
	// optional input.
	Inputs []string
	// Outputs name the values the node writes; "" marks an omitted optional
	// output.
	Outputs []string
	// Attrs holds the node's attributes, already checked against the
	// operator's schema: each has the type the operator expects.
	Attrs map[string]Attr
}

// Describe names the node and its operator for error messages:
// `node "fc1" (Gemm)`.
func (n *Node) Describe() string { return fmt.Sprintf("node %q (%s)", n.Name, n.OpType) }

// Input returns the i-th input name, or "" when the node has fewer inputs.
func (n *Node) Input(i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

// Has reports whether the attribute is set.
func (n *Node) Has(name string) bool {
	_, ok := n.Attrs[name]
	return ok
}

// Int returns an INT attribute, or def when it is not set.
func (n *Node) Int(name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrInt {
		return a.Int
	}
	return def
}

// Ints returns an INTS attribute, or def when it is not set.
func (n *Node) Ints(name string, def []int64) []int64 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrInts {
		return a.Ints
	}
	return def
}

// Float returns a FLOAT attribute, or def when it is not set.
func (n *Node) Float(name string, def float32) float32 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrFloat {
		return a.Float
	}
	return def
}

// Floats returns a FLOATS attribute, or def when it is not set.
func (n *Node) Floats(name string, def []float32) []float32 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrFloats {
		return a.Floats
	}
	return def
}

// String returns a STRING attribute, or def when it is not set.
func (n *Node) String(name string, def string) string {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrString {
		return a.String
	}
	return def
}

// Tensor returns a TENSOR attribute, or nil when it is not set.
func (n *Node) Tensor(name string) *tensor.Tensor {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrTensor {
		return a.Tensor
	}
	return nil
}

// AttrType is the type of an attribute's value.
type AttrType uint8

// The attribute types Corvid reads; the values match ONNX's
// AttributeProto.AttributeType.
const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrTensor  AttrType = 4
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
)

var attrTypeNames = map[AttrType]string{
	AttrFloat: "FLOAT", AttrInt: "INT", AttrString: "STRING", AttrTensor: "TENSOR",
	AttrFloats: "FLOATS", AttrInts: "INTS", AttrStrings: "STRINGS",
}

func (t AttrType) String() string {
	if s, ok := attrTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("AttrType(%d)", uint8(t))
}

// Attr is one attribute value; the field named by Type holds it.
type Attr struct {
	Type    AttrType
	Float   float32
	Int     int64
	String  string
	Tensor  *tensor.Tensor
	Floats  []float32
	Ints    []int64
	Strings []string
}
