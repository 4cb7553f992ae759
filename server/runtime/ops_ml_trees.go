package runtime

import (
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"weak"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml 1 and 3):
// random forests and gradient boosting as scikit-learn, XGBoost or
// LightGBM export them.
//
// The trees are compiled at build time into one array of nodes whose
// children are indices, checked once (every child exists, no cycle, every
// leaf has a weight, feature indices fit the input), so that a run only
// walks. Thresholds, weights and sums are float32, or float64 when the
// input is double or the model gives its values as DOUBLE tensors (the
// *_as_tensor attributes of ai.onnx.ml 3): as in ONNX Runtime, a float
// model compares and adds in float. nodes_hitrates carries no meaning for
// inference and is ignored.

// nodeMode is the test a tree node applies to its feature; a leaf applies
// none.
type nodeMode uint8

const (
	modeLeaf nodeMode = iota
	modeLEQ
	modeLT
	modeGTE
	modeGT
	modeEQ
	modeNEQ
)

var nodeModes = map[string]nodeMode{
	"LEAF": modeLeaf, "BRANCH_LEQ": modeLEQ, "BRANCH_LT": modeLT, "BRANCH_GTE": modeGTE,
	"BRANCH_GT": modeGT, "BRANCH_EQ": modeEQ, "BRANCH_NEQ": modeNEQ,
}

// aggregateFunc combines the weights the trees give one target.
type aggregateFunc uint8

const (
	aggSum aggregateFunc = iota
	aggAverage
	aggMin
	aggMax
)

var aggregateFuncs = []string{"SUM", "AVERAGE", "MIN", "MAX"}

type treeFloat interface{ ~float32 | ~float64 }

type treeNode[T treeFloat] struct {
	threshold   T
	feature     int32
	mode        nodeMode
	missingTrue bool // a NaN feature takes the true branch (else it fails the test)
	// A branch continues at node onTrue or onFalse; a leaf's weights are
	// weights[first:end].
	onTrue, onFalse int32
	first, end      int32
}

type treeWeight[T treeFloat] struct {
	target int32
	value  T
}

// treeEnsemble is the compiled trees of one node; it is immutable, and
// shared by the graphs built from the node.
type treeEnsemble[T treeFloat] struct {
	nodes      []treeNode[T]
	roots      []int32 // each tree's first node in the attributes, as ONNX Runtime takes it
	weights    []treeWeight[T]
	targets    int // regression targets, or classes
	maxFeature int // the highest feature a branch reads, -1 if none does
}

// treeNodeKey identifies a node in the attributes: its tree's id and its
// own, which is unique within the tree.
type treeNodeKey struct{ tree, node int64 }

// treeWeightAttrs names the attributes of the leaves' weights: class_* in
// the classifier, target_* in the regressor.
type treeWeightAttrs struct{ ids, nodeIDs, treeIDs, weights string }

var (
	classWeightAttrs  = treeWeightAttrs{"class_ids", "class_nodeids", "class_treeids", "class_weights"}
	targetWeightAttrs = treeWeightAttrs{"target_ids", "target_nodeids", "target_treeids", "target_weights"}
)

// usesDouble tells whether a tree model computes in float64: its input is
// double, or it gives values as DOUBLE tensors. (ONNX Runtime requires the
// two to go together; Corvid takes either.)
func usesDouble(x *value, n *onnx.Node) bool {
	if x.dt == tensor.Float64 {
		return true
	}
	for _, name := range []string{"nodes_values_as_tensor", "base_values_as_tensor", "class_weights_as_tensor", "target_weights_as_tensor"} {
		if t := n.Tensor(name); t != nil && t.DType == tensor.Float64 {
			return true
		}
	}
	return false
}

// treeValues reads a FLOATS attribute or its *_as_tensor variant (a FLOAT
// or DOUBLE tensor, of any shape) as T; nil when neither is set.
func treeValues[T treeFloat](b *builder, n *onnx.Node, name string) ([]T, error) {
	t := n.Tensor(name + "_as_tensor")
	if t == nil {
		return convertSlice[T](n.Floats(name, nil)), nil
	}
	if n.Has(name) {
		return nil, b.errInvalid("both %s and %s_as_tensor are set, want one", name, name)
	}
	switch d := t.Data.(type) {
	case []float64:
		return convertSlice[T](d), nil
	case []float32:
		return convertSlice[T](d), nil
	}
	return nil, b.errInvalid("%s_as_tensor is a %v tensor, want DOUBLE or FLOAT", name, t.DType)
}

func convertSlice[D, S treeFloat](s []S) []D {
	if s == nil {
		return nil
	}
	d := make([]D, len(s))
	for i, v := range s {
		d[i] = D(v)
	}
	return d
}

func treeDType[T treeFloat]() tensor.DType {
	var zero T
	if _, ok := any(zero).(float64); ok {
		return tensor.Float64
	}
	return tensor.Float32
}

// ensembles shares each node's compiled trees between the graphs built
// from it, one per worker and batch bucket: a forest's bulk is in its
// attributes, not in initializers that the plan already shares, and a
// large gradient-boosted model compiled once per graph would cost its size
// many times over. The key holds the node weakly (onnx.Graph is immutable),
// and the entry goes when the node is collected with its graph.
var ensembles sync.Map // ensembleKey -> *treeEnsemble[T]

type ensembleKey struct {
	node   weak.Pointer[onnx.Node]
	double bool
}

// compileTrees returns the compiled trees of node n, compiling them on
// first use.
func compileTrees[T treeFloat](b *builder, n *onnx.Node, targets int, wa treeWeightAttrs) (*treeEnsemble[T], error) {
	key := ensembleKey{weak.Make(n), treeDType[T]() == tensor.Float64}
	if e, ok := ensembles.Load(key); ok {
		return e.(*treeEnsemble[T]), nil
	}
	e, err := parseTrees[T](b, n, targets, wa)
	if err != nil {
		return nil, err
	}
	if prev, loaded := ensembles.LoadOrStore(key, e); loaded {
		return prev.(*treeEnsemble[T]), nil // built concurrently by another worker
	}
	goruntime.AddCleanup(n, func(k ensembleKey) { ensembles.Delete(k) }, key)
	return e, nil
}

// parseTrees compiles the nodes_* attributes and the leaves' weights of a
// tree ensemble with targets targets (or classes), checking that they
// describe trees.
func parseTrees[T treeFloat](b *builder, n *onnx.Node, targets int, wa treeWeightAttrs) (*treeEnsemble[T], error) {
	treeIDs, nodeIDs := n.Ints("nodes_treeids", nil), n.Ints("nodes_nodeids", nil)
	features := n.Ints("nodes_featureids", nil)
	trueIDs, falseIDs := n.Ints("nodes_truenodeids", nil), n.Ints("nodes_falsenodeids", nil)
	modes := n.Attrs["nodes_modes"].Strings
	missing := n.Ints("nodes_missing_value_tracks_true", nil)
	values, err := treeValues[T](b, n, "nodes_values")
	if err != nil {
		return nil, err
	}
	count := len(nodeIDs)
	if count == 0 {
		return nil, b.errInvalid("no tree nodes (nodes_nodeids is empty)")
	}
	if count > tensor.MaxElements {
		return nil, b.errUnsupported("%d tree nodes, more than %d", count, tensor.MaxElements)
	}
	for _, a := range []struct {
		name string
		n    int
	}{
		{"nodes_treeids", len(treeIDs)}, {"nodes_featureids", len(features)}, {"nodes_modes", len(modes)},
		{"nodes_truenodeids", len(trueIDs)}, {"nodes_falsenodeids", len(falseIDs)}, {"nodes_values", len(values)},
	} {
		if a.n != count {
			return nil, b.errInvalid("%s has %d values, want %d (one per node, as nodes_nodeids)", a.name, a.n, count)
		}
	}
	if len(missing) != 0 && len(missing) != count {
		return nil, b.errInvalid("nodes_missing_value_tracks_true has %d values, want none or %d (one per node)", len(missing), count)
	}

	index := make(map[treeNodeKey]int32, count)
	seen := make(map[int64]bool)
	e := &treeEnsemble[T]{nodes: make([]treeNode[T], count), targets: targets, maxFeature: -1}
	for i := range count {
		k := treeNodeKey{treeIDs[i], nodeIDs[i]}
		if _, dup := index[k]; dup {
			return nil, b.errInvalid("node %d of tree %d is defined twice", k.node, k.tree)
		}
		index[k] = int32(i)
		if !seen[k.tree] {
			seen[k.tree] = true
			e.roots = append(e.roots, int32(i))
		}
	}
	for i := range count {
		nd := &e.nodes[i]
		mode, ok := nodeModes[modes[i]]
		if !ok {
			return nil, b.errInvalid("nodes_modes[%d] is %q, want LEAF or BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ", i, modes[i])
		}
		nd.mode, nd.threshold = mode, values[i]
		nd.missingTrue = len(missing) > 0 && missing[i] == 1
		if mode == modeLeaf {
			continue
		}
		if features[i] < 0 || features[i] >= tensor.MaxElements {
			return nil, b.errInvalid("nodes_featureids[%d] is %d, want a feature index >= 0", i, features[i])
		}
		nd.feature = int32(features[i])
		e.maxFeature = max(e.maxFeature, int(nd.feature))
		for _, c := range []struct {
			attr string
			id   int64
			dst  *int32
		}{{"nodes_truenodeids", trueIDs[i], &nd.onTrue}, {"nodes_falsenodeids", falseIDs[i], &nd.onFalse}} {
			child, ok := index[treeNodeKey{treeIDs[i], c.id}]
			if !ok {
				return nil, b.errInvalid("%s[%d] is %d, which is not a node of tree %d", c.attr, i, c.id, treeIDs[i])
			}
			*c.dst = child
		}
	}
	if err := checkAcyclic(e.nodes); err != nil {
		return nil, b.errInvalid("%v", err)
	}
	if err := attachWeights(b, n, e, wa, index); err != nil {
		return nil, err
	}
	return e, nil
}

// attachWeights gives each leaf its weights, in attribute order. Weights
// on a branch are ignored, as ONNX Runtime does (old onnxmltools wrote
// them); a leaf without weights is refused, as ONNX Runtime refuses it.
func attachWeights[T treeFloat](b *builder, n *onnx.Node, e *treeEnsemble[T], wa treeWeightAttrs, index map[treeNodeKey]int32) error {
	ids, nodeIDs, treeIDs := n.Ints(wa.ids, nil), n.Ints(wa.nodeIDs, nil), n.Ints(wa.treeIDs, nil)
	values, err := treeValues[T](b, n, wa.weights)
	if err != nil {
		return err
	}
	for _, a := range []struct {
		name string
		n    int
	}{{wa.nodeIDs, len(nodeIDs)}, {wa.treeIDs, len(treeIDs)}, {wa.weights, len(values)}} {
		if a.n != len(ids) {
			return b.errInvalid("%s has %d values, want %d (one per weight, as %s)", a.name, a.n, len(ids), wa.ids)
		}
	}
	leafOf := make([]int32, len(ids))
	perLeaf := make([]int32, len(e.nodes))
	for j := range ids {
		i, ok := index[treeNodeKey{treeIDs[j], nodeIDs[j]}]
		if !ok {
			return b.errInvalid("weight %d is for node %d of tree %d, which does not exist", j, nodeIDs[j], treeIDs[j])
		}
		if ids[j] < 0 || ids[j] >= int64(e.targets) {
			return b.errInvalid("%s[%d] is %d, want 0 to %d", wa.ids, j, ids[j], e.targets-1)
		}
		leafOf[j] = -1
		if e.nodes[i].mode == modeLeaf {
			leafOf[j] = i
			perLeaf[i]++
		}
	}
	var next int32
	for i := range e.nodes {
		nd := &e.nodes[i]
		if nd.mode != modeLeaf {
			continue
		}
		if perLeaf[i] == 0 {
			return b.errInvalid("leaf %d of tree %d has no weight (no %s entry)", n.Ints("nodes_nodeids", nil)[i], n.Ints("nodes_treeids", nil)[i], wa.ids)
		}
		nd.first, nd.end = next, next
		next += perLeaf[i]
	}
	e.weights = make([]treeWeight[T], next)
	for j, i := range leafOf {
		if i < 0 {
			continue
		}
		nd := &e.nodes[i]
		e.weights[nd.end] = treeWeight[T]{target: int32(ids[j]), value: values[j]}
		nd.end++
	}
	return nil
}

// checkAcyclic refuses nodes whose branches loop, which would make a walk
// never end: Kahn's algorithm removes nodes nothing points to until none
// is left, or a cycle remains.
func checkAcyclic[T treeFloat](nodes []treeNode[T]) error {
	in := make([]int32, len(nodes))
	for _, nd := range nodes {
		if nd.mode != modeLeaf {
			in[nd.onTrue]++
			in[nd.onFalse]++
		}
	}
	free := make([]int32, 0, len(nodes))
	for i, d := range in {
		if d == 0 {
			free = append(free, int32(i))
		}
	}
	removed := 0
	for len(free) > 0 {
		i := free[len(free)-1]
		free = free[:len(free)-1]
		removed++
		if nd := nodes[i]; nd.mode != modeLeaf {
			for _, c := range []int32{nd.onTrue, nd.onFalse} {
				if in[c]--; in[c] == 0 {
					free = append(free, c)
				}
			}
		}
	}
	if removed < len(nodes) {
		return fmt.Errorf("the tree nodes form a cycle (%d of %d nodes are on or below one)", len(nodes)-removed, len(nodes))
	}
	return nil
}

// findLeaf walks one tree from node i for the sample x. The feature is
// converted to T before the test, as C++ converts it in ONNX Runtime.
func findLeaf[I number, T treeFloat](e *treeEnsemble[T], i int32, x []I) *treeNode[T] {
	for {
		nd := &e.nodes[i]
		if nd.mode == modeLeaf {
			return nd
		}
		v := T(x[nd.feature])
		var pass bool
		switch nd.mode {
		case modeLEQ:
			pass = v <= nd.threshold
		case modeLT:
			pass = v < nd.threshold
		case modeGTE:
			pass = v >= nd.threshold
		case modeGT:
			pass = v > nd.threshold
		case modeEQ:
			pass = v == nd.threshold
		case modeNEQ:
			pass = v != nd.threshold
		}
		if pass || (nd.missingTrue && v != v) {
			i = nd.onTrue
		} else {
			i = nd.onFalse
		}
	}
}

// accumulateLeaves aggregates the weights of the leaves sample x reaches: sums
// gets each target's aggregate and has whether any leaf gave it a weight.
func accumulateLeaves[I number, T treeFloat](e *treeEnsemble[T], agg aggregateFunc, x []I, sums []T, has []bool) {
	clear(sums)
	clear(has)
	for _, root := range e.roots {
		leaf := findLeaf(e, root, x)
		for _, w := range e.weights[leaf.first:leaf.end] {
			s := &sums[w.target]
			switch agg {
			case aggSum, aggAverage:
				*s += w.value
			case aggMin:
				if !has[w.target] || w.value < *s {
					*s = w.value
				}
			case aggMax:
				if !has[w.target] || w.value > *s {
					*s = w.value
				}
			}
			has[w.target] = true
		}
	}
}

// checkFeatures refuses an input with fewer features than the trees read.
func (e *treeEnsemble[T]) checkFeatures(b *builder, x *value, features int) error {
	if e.maxFeature >= features {
		return b.errInvalid("a node reads feature %d, but input X %v has %d features", e.maxFeature, x.shape, features)
	}
	return nil
}

// ---- TreeEnsembleRegressor --------------------------------------------------

func buildTreeEnsembleRegressor(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if usesDouble(in[0], n) {
		return buildTreeRegressor[float64](b, n, in[0])
	}
	return buildTreeRegressor[float32](b, n, in[0])
}

func buildTreeRegressor[T treeFloat](b *builder, n *onnx.Node, x *value) ([]*value, error) {
	rows, features, err := b.samples(x)
	if err != nil {
		return nil, err
	}
	k := &treeRegressorKernel[T]{features: features}
	name := n.String("aggregate_function", "SUM")
	if i := slices.Index(aggregateFuncs, name); i >= 0 {
		k.agg = aggregateFunc(i)
	} else {
		return nil, b.errInvalid("aggregate_function %q is not one of %s", name, strings.Join(aggregateFuncs, ", "))
	}
	if k.post, err = b.postTransform(n); err != nil {
		return nil, err
	}
	// ONNX Runtime requires n_targets; without it Corvid counts the
	// targets the weights name.
	targets := n.Int("n_targets", 0)
	if !n.Has("n_targets") {
		for _, id := range n.Ints("target_ids", nil) {
			targets = max(targets, id+1)
		}
	}
	if targets < 1 || targets > tensor.MaxElements {
		return nil, b.errInvalid("n_targets is %d, want >= 1", targets)
	}
	if k.e, err = compileTrees[T](b, n, int(targets), targetWeightAttrs); err != nil {
		return nil, err
	}
	if err := k.e.checkFeatures(b, x, features); err != nil {
		return nil, err
	}
	if k.base, err = treeValues[T](b, n, "base_values"); err != nil {
		return nil, err
	}
	if len(k.base) != 0 && len(k.base) != int(targets) {
		return nil, b.errInvalid("%d base_values, want none or %d (one per target)", len(k.base), targets)
	}
	k.sums, k.has = make([]T, targets), make([]bool, targets)
	return one(b.apply(k, tensor.Float32, []int{rows, int(targets)}, x))
}

// treeRegressorKernel computes float32 [N targets]: each target's
// aggregate (AVERAGE divides the sum by the number of trees), plus its
// base value, then the post_transform. As in ONNX Runtime, a target no
// leaf gave a weight to is 0, base value or not, when there are several
// targets; a single target gets its base value.
type treeRegressorKernel[T treeFloat] struct {
	e        *treeEnsemble[T]
	agg      aggregateFunc
	base     []T
	post     scoreTransform
	features int
	sums     []T    // one sample's, reused
	has      []bool // one sample's, reused
}

func (k *treeRegressorKernel[T]) String() string {
	return fmt.Sprintf("TreeEnsembleRegressor(%d trees, %s, %v)", len(k.e.roots), aggregateFuncs[k.agg], k.post)
}

func (k *treeRegressorKernel[T]) run(out *gt.Dense, ins []*gt.Dense) error {
	switch x := ins[0]; x.Dtype() {
	case gt.Float32:
		regressSamples(k, out.Float32s(), x.Float32s())
	case gt.Float64:
		regressSamples(k, out.Float32s(), x.Float64s())
	case gt.Int32:
		regressSamples(k, out.Float32s(), x.Int32s())
	case gt.Int64:
		regressSamples(k, out.Float32s(), x.Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

func regressSamples[I number, T treeFloat](k *treeRegressorKernel[T], out []float32, x []I) {
	targets := k.e.targets
	for r := range len(out) / targets {
		accumulateLeaves(k.e, k.agg, x[r*k.features:(r+1)*k.features], k.sums, k.has)
		o := out[r*targets : (r+1)*targets]
		for j := range o {
			if !k.has[j] && targets > 1 {
				o[j] = 0
				continue
			}
			var v T
			if k.has[j] {
				v = k.sums[j]
			}
			if k.agg == aggAverage {
				v /= T(len(k.e.roots))
			}
			if k.base != nil {
				v += k.base[j]
			}
			o[j] = float32(v)
		}
		k.post.apply(o)
	}
}

// ---- TreeEnsembleClassifier -------------------------------------------------

func buildTreeEnsembleClassifier(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if usesDouble(in[0], n) {
		return buildTreeClassifier[float64](b, n, in[0])
	}
	return buildTreeClassifier[float32](b, n, in[0])
}

// buildTreeClassifier sums the class weights once, into an internal
// [N 2 classes] value holding each sample's sums and, as 0 or 1, whether
// any leaf gave the class a weight (the finishing rules below tell the
// two apart); the label and the scores are two ops on it.
func buildTreeClassifier[T treeFloat](b *builder, n *onnx.Node, x *value) ([]*value, error) {
	rows, features, err := b.samples(x)
	if err != nil {
		return nil, err
	}
	if !n.Has("classlabels_int64s") {
		return nil, b.errInvalid("attribute classlabels_int64s is required")
	}
	c := &treeClasses[T]{labels: n.Ints("classlabels_int64s", nil)}
	classes := len(c.labels)
	if classes < 2 {
		return nil, b.errInvalid("%d class labels, want at least 2", classes)
	}
	if c.post, err = b.postTransform(n); err != nil {
		return nil, err
	}
	e, err := compileTrees[T](b, n, classes, classWeightAttrs)
	if err != nil {
		return nil, err
	}
	if err := e.checkFeatures(b, x, features); err != nil {
		return nil, err
	}
	if c.base, err = treeValues[T](b, n, "base_values"); err != nil {
		return nil, err
	}
	if len(c.base) != 0 && len(c.base) != classes && !(classes == 2 && len(c.base) == 1) {
		return nil, b.errInvalid("%d base_values, want none or %d (one per class)", len(c.base), classes)
	}
	// A binary classifier whose weights all go to one class scores that
	// class alone; ONNX Runtime then derives the other class's score, in a
	// way that depends on whether the weights are all positive
	// (probabilities) or not (margins).
	ids := n.Ints("class_ids", nil)
	c.binary = classes == 2 && len(ids) > 0 && !slices.ContainsFunc(ids, func(id int64) bool { return id != ids[0] })
	weights, _ := treeValues[T](b, n, "class_weights") // parseTrees has read them
	c.allPositive = !slices.ContainsFunc(weights, func(w T) bool { return w < 0 })

	sums, err := b.apply(&treeSumsKernel[T]{e: e, features: features}, treeDType[T](), []int{rows, 2, classes}, x)
	if err != nil {
		return nil, err
	}
	label, err := b.apply(&treeFinishKernel[T]{c: c, labels: true}, tensor.Int64, []int{rows}, sums)
	if err != nil {
		return nil, err
	}
	if len(n.Outputs) < 2 {
		return []*value{label}, nil // the scores are not wanted
	}
	scores, err := b.apply(&treeFinishKernel[T]{c: c}, tensor.Float32, []int{rows, classes}, sums)
	if err != nil {
		return nil, err
	}
	return []*value{label, scores}, nil
}

// treeSumsKernel writes, for each sample, the sums of the class weights of
// the leaves it reaches, then 1 for each class some leaf gave a weight to
// and 0 for the others.
type treeSumsKernel[T treeFloat] struct {
	e        *treeEnsemble[T]
	features int
	has      []bool // one sample's, reused
}

func (k *treeSumsKernel[T]) String() string {
	return fmt.Sprintf("TreeEnsembleClassifier(%d trees)", len(k.e.roots))
}

func (k *treeSumsKernel[T]) run(out *gt.Dense, ins []*gt.Dense) error {
	var o []T
	switch d := denseSlice(out).(type) {
	case []T:
		o = d
	default:
		return fmt.Errorf("output is %v, want %v", out.Dtype(), treeDType[T]())
	}
	switch x := ins[0]; x.Dtype() {
	case gt.Float32:
		sumClasses(k, o, x.Float32s())
	case gt.Float64:
		sumClasses(k, o, x.Float64s())
	case gt.Int32:
		sumClasses(k, o, x.Int32s())
	case gt.Int64:
		sumClasses(k, o, x.Int64s())
	default:
		return fmt.Errorf("dtype %v not supported", x.Dtype())
	}
	return nil
}

func sumClasses[I number, T treeFloat](k *treeSumsKernel[T], out []T, x []I) {
	classes := k.e.targets
	if k.has == nil {
		k.has = make([]bool, classes)
	}
	for r := range len(out) / (2 * classes) {
		row := out[r*2*classes : (r+1)*2*classes]
		sums, flags := row[:classes], row[classes:]
		accumulateLeaves(k.e, aggSum, x[r*k.features:(r+1)*k.features], sums, k.has)
		for j, h := range k.has {
			flags[j] = 0
			if h {
				flags[j] = 1
			}
		}
	}
}

// treeClasses holds what turns a sample's class sums into its label and
// scores.
type treeClasses[T treeFloat] struct {
	labels      []int64
	base        []T
	post        scoreTransform
	binary      bool // two classes, and every weight is for the same one
	allPositive bool // no class weight is negative
}

// finish computes one sample's label and scores z from its class sums s
// and flags has (both modified), following ONNX Runtime's
// TreeAggregatorClassifier, the reference for cases the specification
// leaves open. A class without any weight scores 0. With more than two
// classes, base values are added, the label is the class with the highest
// sum, and the post_transform makes the scores. With two, the base values
// and the binary case decide which score is the positive class's, and when
// only one class has a score the other's is derived from it.
func (c *treeClasses[T]) finish(s []T, has []bool, z []float32) (label int64) {
	score := func(k int) float32 {
		if has[k] {
			return float32(s[k])
		}
		return 0
	}
	if len(c.labels) > 2 {
		for k, bv := range c.base {
			if has[k] {
				s[k] += bv
			} else {
				s[k], has[k] = bv, true
			}
		}
		best := -1
		for k := range s {
			if has[k] && (best < 0 || s[k] > s[best]) {
				best = k
			}
		}
		for k := range z {
			z[k] = score(k)
		}
		c.post.apply(z)
		if best < 0 {
			return c.labels[0] // unreachable: every tree's leaves give some class a weight
		}
		return c.labels[best]
	}

	// Two classes. second is how ONNX Runtime derives a missing score: 0
	// and 1 (probabilities) as 1-p, 2 and 3 (margins) as -m.
	second, both := -1, true
	switch len(c.base) {
	case 2:
		if has[1] {
			// ONNX Runtime uses base_values[1] only, taking class 0's
			// sum as the margin: the specification says nothing here.
			s[1] = c.base[1] + s[0]
			s[0] = -s[1]
		} else {
			s[0] += c.base[0]
			s[1] += c.base[1]
		}
	case 1:
		s[0] += c.base[0]
		both = has[1]
	case 0:
		second, both = 3, has[1]
	}
	var positive T
	switch {
	case both && has[1]:
		positive = s[1]
	case has[0]:
		positive = s[0]
	}
	switch {
	case c.binary && c.allPositive && positive > 0.5:
		second, label = 0, c.labels[1]
	case c.binary && c.allPositive:
		second, label = 1, c.labels[0]
	case c.binary && positive > 0:
		second, label = 2, c.labels[1]
	case c.binary:
		second, label = 3, c.labels[0]
	case positive > 0:
		// ONNX Runtime returns the literal labels 1 and 0 here, not
		// classlabels_int64s; they agree for the usual labels [0 1], and
		// Corvid keeps to the labels the model declares.
		label = c.labels[1]
	default:
		label = c.labels[0]
	}

	if both {
		z[0], z[1] = score(0), score(1)
		c.post.apply(z)
		return label
	}
	v := score(0)
	switch {
	case c.post == transformProbit:
		z[0], z[1] = probit(v), 0 // ONNX Runtime leaves z[1] unwritten
	case second < 0:
		z[0], z[1] = v, 0 // ONNX Runtime leaves z[1] unwritten
	case c.post == transformLogistic:
		z[0], z[1] = logistic(-v), logistic(v)
	case second <= 1:
		z[0], z[1] = 1-v, v
	default:
		z[0], z[1] = -v, v
	}
	return label
}

// treeFinishKernel writes the labels (int64 [N]) or the scores (float32
// [N classes]) from the class sums of treeSumsKernel.
type treeFinishKernel[T treeFloat] struct {
	c      *treeClasses[T]
	labels bool
	// one sample's, reused
	sums []T
	has  []bool
	z    []float32
}

func (k *treeFinishKernel[T]) String() string {
	if k.labels {
		return "TreeEnsembleClassifier.labels"
	}
	return "TreeEnsembleClassifier.scores(" + k.c.post.String() + ")"
}

func (k *treeFinishKernel[T]) run(out *gt.Dense, ins []*gt.Dense) error {
	in, ok := denseSlice(ins[0]).([]T)
	if !ok {
		return fmt.Errorf("input is %v, want %v", ins[0].Dtype(), treeDType[T]())
	}
	classes := len(k.c.labels)
	if k.sums == nil {
		k.sums, k.has, k.z = make([]T, classes), make([]bool, classes), make([]float32, classes)
	}
	var labels []int64
	var scores []float32
	if k.labels {
		labels = out.Int64s()
	} else {
		scores = out.Float32s()
	}
	for r := range len(in) / (2 * classes) {
		row := in[r*2*classes : (r+1)*2*classes]
		copy(k.sums, row[:classes])
		for j, f := range row[classes:] {
			k.has[j] = f != 0
		}
		z := k.z
		if scores != nil {
			z = scores[r*classes : (r+1)*classes]
		}
		label := k.c.finish(k.sums, k.has, z)
		if labels != nil {
			labels[r] = label
		}
	}
	return nil
}
