package onnx

import (
	"bytes"
	"container/heap"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// MaxNodes bounds the node count of a graph. The file size already bounds
// it; this bound keeps decode and compile time of a pathological file
// predictable. Large transformer exports have a few tens of thousands.
const MaxNodes = 1 << 18

// Decode parses an ONNX model file and validates its graph. A model with
// external data is refused: DecodeWith reads it.
//
// Errors wrap ErrInvalidModel or ErrUnsupported and say which node, value
// or tensor is at fault.
func Decode(data []byte) (*Graph, error) { return DecodeWith(data, DecodeOptions{}) }

// DecodeWith is Decode with the model's external data read through
// opts.External.
func DecodeWith(data []byte, opts DecodeOptions) (*Graph, error) {
	if err := sniff(data); err != nil {
		return nil, err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: not an ONNX protobuf: %v", ErrInvalidModel, err)
	}
	if m.GetIrVersion() <= 0 && m.GetGraph() == nil {
		// Many byte strings parse as a protobuf of unknown fields; neither
		// of the two fields every ONNX writer sets is there.
		return nil, fmt.Errorf("%w: not an ONNX model (no ir_version and no graph)", ErrInvalidModel)
	}
	if m.GetGraph() == nil {
		return nil, fmt.Errorf("%w: model has no graph", ErrInvalidModel)
	}
	opsets, err := decodeOpsets(m.GetOpsetImport())
	if err != nil {
		return nil, err
	}
	if err := resolveExternal(m.GetGraph(), opts); err != nil {
		return nil, err
	}
	return decodeGraph(m.GetGraph(), opsets)
}

// magics are file signatures of formats people save models in that are not
// ONNX, with the name to tell the user.
var magics = []struct {
	prefix []byte
	what   string
}{
	{[]byte("PK\x03\x04"), "a zip archive (such as a PyTorch checkpoint or a Keras .keras file)"},
	{[]byte("\x89HDF\r\n\x1a\n"), "an HDF5 file (such as a Keras .h5 model)"},
	{[]byte("GGUF"), "a GGUF file"},
	{[]byte("\x1f\x8b"), "a gzip archive"},
	{[]byte("{"), "a JSON document"},
}

// sniff refuses bytes that are recognisably not ONNX protobuf before the
// protobuf parser sees them, so the error names what the file is.
func sniff(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty model file", ErrInvalidModel)
	}
	// A pickle starts with the PROTO opcode 0x80 and a protocol number
	// (2 to 5). No ONNX file does: 0x80 is not a valid protobuf tag byte
	// at the start of a message.
	if data[0] == 0x80 {
		return fmt.Errorf("%w: file is a Python pickle (protocol header \\x80), not ONNX protobuf; Corvid never loads pickles", ErrInvalidModel)
	}
	for _, m := range magics {
		if bytes.HasPrefix(data, m.prefix) {
			return fmt.Errorf("%w: file is %s, not ONNX protobuf", ErrInvalidModel, m.what)
		}
	}
	return nil
}

func decodeOpsets(imports []*onnxpb.OperatorSetIdProto) (map[string]int64, error) {
	opsets := make(map[string]int64, len(imports))
	for _, imp := range imports {
		domain := imp.GetDomain()
		if domain == "ai.onnx" {
			domain = DomainDefault
		}
		v := imp.GetVersion()
		if prev, dup := opsets[domain]; dup {
			if prev == v {
				continue // skl2onnx writes the default domain twice; the same version twice is harmless
			}
			return nil, fmt.Errorf("%w: operator set %q is imported twice, as versions %d and %d", ErrInvalidModel, imp.GetDomain(), prev, v)
		}
		switch domain {
		case DomainDefault:
			if v < MinOpset || v > MaxOpset {
				return nil, fmt.Errorf("%w: default operator set version %d, want %d to %d", ErrUnsupported, v, MinOpset, MaxOpset)
			}
		case DomainML:
			if v < MinMLOpset || v > MaxMLOpset {
				return nil, fmt.Errorf("%w: ai.onnx.ml operator set version %d, want %d to %d", ErrUnsupported, v, MinMLOpset, MaxMLOpset)
			}
		default:
			return nil, fmt.Errorf("%w: operator set domain %q (supported: \"\" or \"ai.onnx\", and \"ai.onnx.ml\")", ErrUnsupported, imp.GetDomain())
		}
		opsets[domain] = v
	}
	// A model of ai.onnx.ml operators alone (ONNX's own ML node tests are)
	// need not import the default domain; its nodes are checked against
	// the imports one by one.
	if len(opsets) == 0 {
		return nil, fmt.Errorf("%w: model imports no operator set; want the default operator set (domain \"\" or \"ai.onnx\"), ai.onnx.ml, or both", ErrInvalidModel)
	}
	return opsets, nil
}

// producer records where a value comes from, for duplicate-name messages.
type producer struct {
	what string // "graph input", "initializer" or a node description
}

func decodeGraph(gp *onnxpb.GraphProto, opsets map[string]int64) (*Graph, error) {
	g := &Graph{
		Name:         gp.GetName(),
		Opsets:       opsets,
		Initializers: make(map[string]*tensor.Tensor, len(gp.GetInitializer())),
	}
	if len(gp.GetSparseInitializer()) > 0 {
		return nil, fmt.Errorf("%w: sparse initializers are not supported", ErrUnsupported)
	}
	if n := len(gp.GetNode()); n > MaxNodes {
		return nil, fmt.Errorf("%w: graph has %d nodes, more than the limit of %d", ErrUnsupported, n, MaxNodes)
	}

	produced := make(map[string]producer)
	define := func(name string, p producer) error {
		if name == "" {
			return fmt.Errorf("%w: %s has an empty name", ErrInvalidModel, p.what)
		}
		if prev, dup := produced[name]; dup {
			return fmt.Errorf("%w: value %q is produced twice (by %s and by %s)", ErrInvalidModel, name, prev.what, p.what)
		}
		produced[name] = p
		return nil
	}

	for _, tp := range gp.GetInitializer() {
		name := tp.GetName()
		if err := define(name, producer{"initializer"}); err != nil {
			return nil, err
		}
		t, err := tensorFromProto(tp)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", name, err)
		}
		g.Initializers[name] = t
	}

	seenInput := make(map[string]bool)
	for _, vi := range gp.GetInput() {
		name := vi.GetName()
		if seenInput[name] {
			return nil, fmt.Errorf("%w: graph input %q is declared twice", ErrInvalidModel, name)
		}
		seenInput[name] = true
		if _, isInit := g.Initializers[name]; isInit {
			// IR < 4 writers list initializers as inputs too; the
			// initializer is the value, not something a caller feeds.
			continue
		}
		info, err := valueInfo(vi, true)
		if err != nil {
			return nil, fmt.Errorf("graph input %q: %w", name, err)
		}
		if err := define(name, producer{"graph input"}); err != nil {
			return nil, err
		}
		g.Inputs = append(g.Inputs, info)
	}

	nodes, err := decodeNodes(gp.GetNode(), opsets)
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		n := &nodes[i]
		for _, out := range n.Outputs {
			if out == "" {
				continue // an omitted optional output
			}
			if err := define(out, producer{n.Describe()}); err != nil {
				return nil, err
			}
		}
	}
	for i := range nodes {
		n := &nodes[i]
		for _, in := range n.Inputs {
			if in == "" {
				continue // an omitted optional input
			}
			if _, ok := produced[in]; !ok {
				return nil, fmt.Errorf("%w: %s: input %q is not produced by any node, initializer or graph input", ErrInvalidModel, n.Describe(), in)
			}
		}
	}
	if g.Nodes, err = topoSort(nodes); err != nil {
		return nil, err
	}

	seenOutput := make(map[string]bool)
	for _, vi := range gp.GetOutput() {
		name := vi.GetName()
		if seenOutput[name] {
			return nil, fmt.Errorf("%w: graph output %q is declared twice", ErrInvalidModel, name)
		}
		seenOutput[name] = true
		if _, ok := produced[name]; !ok {
			return nil, fmt.Errorf("%w: graph output %q is not produced by any node, initializer or graph input", ErrInvalidModel, name)
		}
		info, err := valueInfo(vi, false)
		if err != nil {
			return nil, fmt.Errorf("graph output %q: %w", name, err)
		}
		g.Outputs = append(g.Outputs, info)
	}
	if len(g.Outputs) == 0 {
		return nil, fmt.Errorf("%w: graph has no outputs", ErrInvalidModel)
	}
	return g, nil
}

// valueInfo converts a graph input or output declaration. Inputs must
// declare their rank: the runtime sizes and checks request tensors by it.
func valueInfo(vi *onnxpb.ValueInfoProto, needShape bool) (ValueInfo, error) {
	info := ValueInfo{Name: vi.GetName()}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		if vi.GetType().GetValue() != nil {
			return info, fmt.Errorf("%w: only tensor values are supported (not sequences, maps or optionals)", ErrUnsupported)
		}
		return info, fmt.Errorf("%w: no type", ErrInvalidModel)
	}
	dt, err := dtypeFromProto(tt.GetElemType())
	if err != nil {
		return info, err
	}
	info.DType = dt
	if tt.GetShape() == nil {
		if needShape {
			return info, fmt.Errorf("%w: no shape; Corvid needs the rank of every input", ErrUnsupported)
		}
		return info, nil
	}
	info.Shape = make([]int64, 0, len(tt.GetShape().GetDim()))
	static := make([]int64, 0, len(tt.GetShape().GetDim()))
	for i, d := range tt.GetShape().GetDim() {
		v, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue)
		if !ok {
			info.Shape = append(info.Shape, -1) // dim_param, or no value
			continue
		}
		if v.DimValue < 0 {
			return info, fmt.Errorf("%w: dimension %d is %d", ErrInvalidModel, i, v.DimValue)
		}
		info.Shape = append(info.Shape, v.DimValue)
		static = append(static, v.DimValue)
	}
	if _, err := tensor.NumElements(static); err != nil {
		return info, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	return info, nil
}

func decodeNodes(nps []*onnxpb.NodeProto, opsets map[string]int64) ([]Node, error) {
	nodes := make([]Node, len(nps))
	names := make(map[string]bool, len(nps))
	for _, np := range nps {
		names[np.GetName()] = true
	}
	taken := make(map[string]bool, len(nps))
	for i, np := range nps {
		n := &nodes[i]
		n.Name = uniqueName(np.GetName(), np.GetOpType(), i, names, taken)
		n.OpType = np.GetOpType()
		n.Domain = np.GetDomain()
		if n.Domain == "ai.onnx" {
			n.Domain = DomainDefault
		}
		n.Inputs = np.GetInput()
		n.Outputs = np.GetOutput()
		if err := checkNode(n, np, opsets); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

// uniqueName keeps a node's own name when it is set and not already taken,
// and otherwise makes one from the op type and position that no other node
// in the file uses.
func uniqueName(name, opType string, i int, names, taken map[string]bool) string {
	if name != "" && !taken[name] {
		taken[name] = true
		return name
	}
	base := name
	if base == "" {
		base = opType + "_" + strconv.Itoa(i)
	}
	candidate := base
	for k := 2; names[candidate] && candidate != name || taken[candidate]; k++ {
		candidate = base + "_" + strconv.Itoa(k)
	}
	taken[candidate] = true
	return candidate
}

func checkNode(n *Node, np *onnxpb.NodeProto, opsets map[string]int64) error {
	switch _, imported := opsets[n.Domain]; {
	case n.Domain != DomainDefault && n.Domain != DomainML:
		return fmt.Errorf("%w: %s: operator domain %q is not supported (supported: \"\" or \"ai.onnx\", and \"ai.onnx.ml\")", ErrUnsupported, n.Describe(), n.Domain)
	case !imported:
		return fmt.Errorf("%w: %s is in domain %q, which the model does not import", ErrInvalidModel, n.Describe(), n.Domain)
	}
	schema, ok := schemas[opKey{n.Domain, n.OpType}]
	if !ok {
		if advice, refused := refusals[opKey{n.Domain, n.OpType}]; refused {
			return fmt.Errorf("%w: %s: %s", ErrUnsupported, n.Describe(), advice)
		}
		op := n.OpType
		if n.Domain != DomainDefault {
			op = n.Domain + "." + op
		}
		return fmt.Errorf("%w: %s: operator %s (opset %d) is not supported; `corvid inspect` lists a model's unsupported operators", ErrUnsupported, n.Describe(), op, opsets[n.Domain])
	}
	if len(n.Inputs) < schema.minIn || len(n.Inputs) > schema.maxIn {
		return fmt.Errorf("%w: %s has %d inputs, want %s", ErrInvalidModel, n.Describe(), len(n.Inputs), countRange(schema.minIn, schema.maxIn))
	}
	for i := 0; i < schema.minIn; i++ {
		if n.Inputs[i] == "" {
			return fmt.Errorf("%w: %s: required input %d is empty", ErrInvalidModel, n.Describe(), i)
		}
	}
	if len(n.Outputs) < schema.minOut || len(n.Outputs) > schema.maxOut {
		return fmt.Errorf("%w: %s has %d outputs, want %s", ErrInvalidModel, n.Describe(), len(n.Outputs), countRange(schema.minOut, schema.maxOut))
	}
	for i := 0; i < schema.minOut; i++ {
		if n.Outputs[i] == "" {
			return fmt.Errorf("%w: %s: required output %d is empty", ErrInvalidModel, n.Describe(), i)
		}
	}

	n.Attrs = make(map[string]Attr, len(np.GetAttribute()))
	for _, ap := range np.GetAttribute() {
		name := ap.GetName()
		want, known := schema.attrs[name]
		if !known && n.OpType == "Constant" && name == "sparse_value" {
			return fmt.Errorf("%w: %s: sparse constants are not supported", ErrUnsupported, n.Describe())
		}
		if !known {
			return fmt.Errorf("%w: %s: unknown attribute %q", ErrInvalidModel, n.Describe(), name)
		}
		if _, dup := n.Attrs[name]; dup {
			return fmt.Errorf("%w: %s: attribute %q is set twice", ErrInvalidModel, n.Describe(), name)
		}
		a, err := decodeAttr(ap)
		if err != nil {
			return fmt.Errorf("%s: attribute %q: %w", n.Describe(), name, err)
		}
		if a.Type != want {
			return fmt.Errorf("%w: %s: attribute %q is %v, want %v", ErrInvalidModel, n.Describe(), name, a.Type, want)
		}
		n.Attrs[name] = a
	}
	if n.OpType == "Constant" && n.Domain == DomainDefault {
		return checkConstant(n)
	}
	if schema.check != nil {
		return schema.check(n)
	}
	return nil
}

func countRange(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

// checkConstant requires exactly one value attribute, of a type Corvid can
// hold.
func checkConstant(n *Node) error {
	if len(n.Attrs) != 1 {
		return fmt.Errorf("%w: %s has %d value attributes, want exactly one", ErrInvalidModel, n.Describe(), len(n.Attrs))
	}
	if n.Has("value_string") || n.Has("value_strings") {
		return fmt.Errorf("%w: %s: string constants are not supported", ErrUnsupported, n.Describe())
	}
	return nil
}

func decodeAttr(ap *onnxpb.AttributeProto) (Attr, error) {
	if ap.GetRefAttrName() != "" {
		return Attr{}, fmt.Errorf("%w: attribute references (functions) are not supported", ErrUnsupported)
	}
	switch ap.GetType() {
	case onnxpb.AttributeProto_FLOAT:
		return Attr{Type: AttrFloat, Float: ap.GetF()}, nil
	case onnxpb.AttributeProto_INT:
		return Attr{Type: AttrInt, Int: ap.GetI()}, nil
	case onnxpb.AttributeProto_STRING:
		return Attr{Type: AttrString, String: string(ap.GetS())}, nil
	case onnxpb.AttributeProto_FLOATS:
		return Attr{Type: AttrFloats, Floats: ap.GetFloats()}, nil
	case onnxpb.AttributeProto_INTS:
		return Attr{Type: AttrInts, Ints: ap.GetInts()}, nil
	case onnxpb.AttributeProto_STRINGS:
		ss := make([]string, len(ap.GetStrings()))
		for i, s := range ap.GetStrings() {
			ss[i] = string(s)
		}
		return Attr{Type: AttrStrings, Strings: ss}, nil
	case onnxpb.AttributeProto_TENSOR:
		if ap.GetT() == nil {
			return Attr{}, fmt.Errorf("%w: TENSOR attribute without a tensor", ErrInvalidModel)
		}
		t, err := tensorFromProto(ap.GetT())
		if err != nil {
			return Attr{}, err
		}
		return Attr{Type: AttrTensor, Tensor: t}, nil
	case onnxpb.AttributeProto_UNDEFINED:
		// proto3 cannot tell an unset int from a zero one, so the type
		// cannot be guessed from the value fields.
		return Attr{}, fmt.Errorf("%w: attribute has no type", ErrInvalidModel)
	case onnxpb.AttributeProto_SPARSE_TENSOR, onnxpb.AttributeProto_SPARSE_TENSORS:
		return Attr{}, fmt.Errorf("%w: sparse tensors are not supported", ErrUnsupported)
	case onnxpb.AttributeProto_GRAPH, onnxpb.AttributeProto_GRAPHS:
		return Attr{}, fmt.Errorf("%w: subgraph attributes are not supported", ErrUnsupported)
	default:
		return Attr{}, fmt.Errorf("%w: attribute type %v is not supported", ErrUnsupported, ap.GetType())
	}
}

// topoSort orders nodes so that every node comes after the producers of its
// inputs, keeping the file's order where it already is one (Kahn's
// algorithm, always taking the earliest ready node). A cycle is refused,
// naming a node on it.
func topoSort(nodes []Node) ([]Node, error) {
	producerOf := make(map[string]int, len(nodes))
	for i := range nodes {
		for _, out := range nodes[i].Outputs {
			if out != "" {
				producerOf[out] = i
			}
		}
	}
	pending := make([]int, len(nodes)) // inputs not yet produced, per node
	consumers := make([][]int, len(nodes))
	for i := range nodes {
		for _, in := range nodes[i].Inputs {
			if p, ok := producerOf[in]; ok && in != "" {
				pending[i]++
				consumers[p] = append(consumers[p], i)
			}
		}
	}
	ready := &indexHeap{}
	for i := range nodes {
		if pending[i] == 0 {
			ready.a = append(ready.a, i) // ascending: already a heap
		}
	}
	sorted := make([]Node, 0, len(nodes))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		sorted = append(sorted, nodes[i])
		for _, c := range consumers[i] {
			if pending[c]--; pending[c] == 0 {
				heap.Push(ready, c)
			}
		}
	}
	if len(sorted) == len(nodes) {
		return sorted, nil
	}
	// Every node left has an unproduced input made by another node left:
	// walking from one to such a producer must come back to a node already
	// seen, which is on a cycle.
	start := slices.IndexFunc(pending, func(p int) bool { return p > 0 })
	seen := make(map[int]bool)
	for i := start; ; {
		if seen[i] {
			return nil, fmt.Errorf("%w: graph has a cycle through %s", ErrInvalidModel, nodes[i].Describe())
		}
		seen[i] = true
		for _, in := range nodes[i].Inputs {
			if p, ok := producerOf[in]; ok && in != "" && pending[p] > 0 {
				i = p
				break
			}
		}
	}
}

// indexHeap is a min-heap of node indices for container/heap.
type indexHeap struct{ a []int }

func (h *indexHeap) Len() int           { return len(h.a) }
func (h *indexHeap) Less(i, j int) bool { return h.a[i] < h.a[j] }
func (h *indexHeap) Swap(i, j int)      { h.a[i], h.a[j] = h.a[j], h.a[i] }
func (h *indexHeap) Push(x any)         { h.a = append(h.a, x.(int)) }
func (h *indexHeap) Pop() any {
	v := h.a[len(h.a)-1]
	h.a = h.a[:len(h.a)-1]
	return v
}

// DecodeTensor parses one serialized TensorProto, as ONNX's backend test
// data stores inputs and outputs (input_0.pb, output_0.pb), and returns its
// name and value.
func DecodeTensor(data []byte) (string, *tensor.Tensor, error) {
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(data, &tp); err != nil {
		return "", nil, fmt.Errorf("%w: not a TensorProto: %v", ErrInvalidModel, err)
	}
	t, err := tensorFromProto(&tp)
	if err != nil {
		return tp.GetName(), nil, fmt.Errorf("tensor %q: %w", tp.GetName(), err)
	}
	return tp.GetName(), t, nil
}
