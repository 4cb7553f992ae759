package onnx

import "fmt"

// Schemas of the ai.onnx.ml operators that scikit-learn models export to
// (through skl2onnx): linear models, tree ensembles and the preprocessing
// they are pipelined with. ArrayFeatureExtractor is in schema.go.

func init() {
	// The attributes the two tree ensembles share. The *_as_tensor
	// variants (ai.onnx.ml opset 3) carry the same values as DOUBLE
	// tensors, for models trained in double precision.
	treeAttrs := func(extra map[string]AttrType) map[string]AttrType {
		attrs := map[string]AttrType{
			"base_values": AttrFloats, "base_values_as_tensor": AttrTensor,
			"nodes_falsenodeids": AttrInts, "nodes_featureids": AttrInts,
			"nodes_hitrates": AttrFloats, "nodes_hitrates_as_tensor": AttrTensor,
			"nodes_missing_value_tracks_true": AttrInts, "nodes_modes": AttrStrings,
			"nodes_nodeids": AttrInts, "nodes_treeids": AttrInts, "nodes_truenodeids": AttrInts,
			"nodes_values": AttrFloats, "nodes_values_as_tensor": AttrTensor,
			"post_transform": AttrString,
		}
		for name, t := range extra {
			attrs[name] = t
		}
		return attrs
	}
	unaryML := func(attrs map[string]AttrType) opSchema {
		return opSchema{minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: attrs}
	}

	registerSchemas(DomainML, map[string]opSchema{
		// Classifiers output the label (Y) and the scores (Z); a graph that
		// reads only the label may leave Z unnamed.
		"LinearClassifier": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 2, check: refuseStringLabels, attrs: map[string]AttrType{
			"classlabels_ints": AttrInts, "classlabels_strings": AttrStrings,
			"coefficients": AttrFloats, "intercepts": AttrFloats,
			"multi_class": AttrInt, "post_transform": AttrString,
		}},
		"LinearRegressor": unaryML(map[string]AttrType{
			"coefficients": AttrFloats, "intercepts": AttrFloats,
			"post_transform": AttrString, "targets": AttrInt,
		}),
		"TreeEnsembleClassifier": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 2, check: refuseStringLabels, attrs: treeAttrs(map[string]AttrType{
			"class_ids": AttrInts, "class_nodeids": AttrInts, "class_treeids": AttrInts,
			"class_weights": AttrFloats, "class_weights_as_tensor": AttrTensor,
			"classlabels_int64s": AttrInts, "classlabels_strings": AttrStrings,
		})},
		"TreeEnsembleRegressor": unaryML(treeAttrs(map[string]AttrType{
			"aggregate_function": AttrString, "n_targets": AttrInt,
			"target_ids": AttrInts, "target_nodeids": AttrInts, "target_treeids": AttrInts,
			"target_weights": AttrFloats, "target_weights_as_tensor": AttrTensor,
		})),
		"Scaler":     unaryML(map[string]AttrType{"offset": AttrFloats, "scale": AttrFloats}),
		"Normalizer": unaryML(map[string]AttrType{"norm": AttrString}),
		"Binarizer":  unaryML(map[string]AttrType{"threshold": AttrFloat}),
	})

	registerRefusals(DomainML, map[string]string{
		"ZipMap": "ZipMap outputs a sequence of maps (class label -> probability), which Corvid's tensor API " +
			"cannot carry; export the classifier without it: skl2onnx's convert_sklearn(model, ..., " +
			"options={id(model): {'zipmap': False}}) outputs the probabilities as a float tensor [N, classes] instead",
	})
}

// refuseStringLabels refuses classifiers whose labels are strings: their
// label output is a string tensor, and Corvid's tensors have no string
// type. Refusing at load names the way out, where the string output would
// otherwise only be reported as an unsupported data type.
func refuseStringLabels(n *Node) error {
	if !n.Has("classlabels_strings") {
		return nil
	}
	return fmt.Errorf("%w: %s: string class labels (classlabels_strings) are not supported, as Corvid's tensors "+
		"have no string type; train and export the classifier with integer labels (for instance y encoded by "+
		"sklearn.preprocessing.LabelEncoder, whose classes_ map the integers back to names on the client)",
		ErrUnsupported, n.Describe())
}
