package onnx

import "slices"

// The operator set versions Decode accepts. Opset 7 is where the arithmetic
// operators took up numpy broadcasting (before it they had "broadcast" and
// "axis" attributes Corvid does not implement); 28 is the newest ONNX (1.23)
// defines. ai.onnx.ml is accepted in every version ONNX defines.
const (
	MinOpset   = 7
	MaxOpset   = 28
	MinMLOpset = 1
	MaxMLOpset = 5
)

// opSchema is what Decode checks of a node before the runtime sees it: its
// input and output counts and the type of every attribute it may carry.
// Semantics (shapes, dtypes, axis ranges) are checked by the runtime, which
// knows the shapes.
type opSchema struct {
	minIn, maxIn   int
	minOut, maxOut int
	attrs          map[string]AttrType
	// check, when set, validates what counts and types cannot express
	// (an attribute value Corvid refuses, say). It runs once the
	// attributes are decoded; its error names the node.
	check func(n *Node) error
}

type opKey struct{ domain, opType string }

var (
	unaryOp  = opSchema{minIn: 1, maxIn: 1, minOut: 1, maxOut: 1}
	binaryOp = opSchema{minIn: 2, maxIn: 2, minOut: 1, maxOut: 1}
)

// schemas lists every operator Corvid runs; an operator missing here is
// refused at decode time, so the runtime never meets an op it cannot build.
// The operators of each family are added by registerSchemas in their own
// file's init.
var schemas = map[opKey]opSchema{
	{DomainDefault, "Add"}:      binaryOp,
	{DomainDefault, "Sub"}:      binaryOp,
	{DomainDefault, "Mul"}:      binaryOp,
	{DomainDefault, "Div"}:      binaryOp,
	{DomainDefault, "MatMul"}:   binaryOp,
	{DomainDefault, "Relu"}:     unaryOp,
	{DomainDefault, "Sigmoid"}:  unaryOp,
	{DomainDefault, "Tanh"}:     unaryOp,
	{DomainDefault, "Identity"}: unaryOp,
	{DomainDefault, "Gemm"}: {minIn: 2, maxIn: 3, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		"alpha": AttrFloat, "beta": AttrFloat, "transA": AttrInt, "transB": AttrInt,
	}},
	{DomainDefault, "Softmax"}: {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		"axis": AttrInt,
	}},
	{DomainDefault, "Flatten"}: {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		"axis": AttrInt,
	}},
	{DomainDefault, "Reshape"}: {minIn: 2, maxIn: 2, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		"allowzero": AttrInt,
	}},
	{DomainDefault, "Constant"}: {minIn: 0, maxIn: 0, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		"value": AttrTensor, "value_float": AttrFloat, "value_floats": AttrFloats,
		"value_int": AttrInt, "value_ints": AttrInts,
		"value_string": AttrString, "value_strings": AttrStrings,
	}},
	{DomainDefault, "Cast"}: {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		// saturate and round_mode only affect float8 targets, which are
		// refused by the runtime; they are accepted so that exporters that
		// always write them still load.
		"to": AttrInt, "saturate": AttrInt, "round_mode": AttrString,
	}},
	{DomainDefault, "ArgMax"}: {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		"axis": AttrInt, "keepdims": AttrInt, "select_last_index": AttrInt,
	}},
	{DomainML, "ArrayFeatureExtractor"}: binaryOp,
}

// registerSchemas adds a family of operators; a name registered twice is a
// programming error.
func registerSchemas(domain string, m map[string]opSchema) {
	for op, s := range m {
		k := opKey{domain, op}
		if _, dup := schemas[k]; dup {
			panic("onnx: operator " + domain + "." + op + " registered twice")
		}
		schemas[k] = s
	}
}

// refusals are operators Corvid recognises but does not run, each with
// what the user can do instead: Decode gives that advice rather than a bare
// "not supported". They are not in schemas, so Supported reports false.
var refusals = map[opKey]string{}

// registerRefusals adds operators Corvid refuses, with the advice for each.
func registerRefusals(domain string, m map[string]string) {
	for op, advice := range m {
		refusals[opKey{domain, op}] = advice
	}
}

// Supported reports whether Corvid runs the operator; domain is
// DomainDefault or DomainML.
func Supported(domain, opType string) bool {
	_, ok := schemas[opKey{domain, opType}]
	return ok
}

// SupportedOps lists the operators Corvid runs, sorted, those of the ML
// domain prefixed with "ai.onnx.ml.".
func SupportedOps() []string {
	ops := make([]string, 0, len(schemas))
	for k := range schemas {
		if k.domain == DomainDefault {
			ops = append(ops, k.opType)
		} else {
			ops = append(ops, k.domain+"."+k.opType)
		}
	}
	slices.Sort(ops)
	return ops
}
