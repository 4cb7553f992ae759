package onnx

// The neural-network operators: convolutions, pooling, normalisation and
// Dropout. Each lists the union of the attributes its opsets 7 to 28
// define; the runtime checks the values (and refuses the ones it does not
// implement, such as training modes) when it builds the node.
func init() {
	// Attributes every sliding-window operator shares.
	window := func(extra map[string]AttrType) map[string]AttrType {
		m := map[string]AttrType{
			"auto_pad": AttrString, "kernel_shape": AttrInts, "pads": AttrInts,
			"strides": AttrInts, "dilations": AttrInts,
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	registerSchemas(DomainDefault, map[string]opSchema{
		"Conv": {minIn: 2, maxIn: 3, minOut: 1, maxOut: 1, attrs: window(map[string]AttrType{
			"group": AttrInt,
		})},
		"ConvTranspose": {minIn: 2, maxIn: 3, minOut: 1, maxOut: 1, attrs: window(map[string]AttrType{
			"group": AttrInt, "output_padding": AttrInts, "output_shape": AttrInts,
		})},
		// Indices, the second output, exists from opset 8.
		"MaxPool": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 2, attrs: window(map[string]AttrType{
			"ceil_mode": AttrInt, "storage_order": AttrInt,
		})},
		// dilations is defined from opset 19, ceil_mode from 10.
		"AveragePool": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: window(map[string]AttrType{
			"ceil_mode": AttrInt, "count_include_pad": AttrInt,
		})},
		"GlobalAveragePool": unaryOp,
		"GlobalMaxPool":     unaryOp,
		// Outputs 2 to 5 (running and saved statistics) only exist in
		// training mode; spatial is opsets 7 and 8, training_mode 14 on.
		"BatchNormalization": {minIn: 5, maxIn: 5, minOut: 1, maxOut: 5, attrs: map[string]AttrType{
			"epsilon": AttrFloat, "momentum": AttrFloat, "spatial": AttrInt, "training_mode": AttrInt,
		}},
		"LayerNormalization": {minIn: 2, maxIn: 3, minOut: 1, maxOut: 3, attrs: map[string]AttrType{
			"axis": AttrInt, "epsilon": AttrFloat, "stash_type": AttrInt,
		}},
		"InstanceNormalization": {minIn: 3, maxIn: 3, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"epsilon": AttrFloat,
		}},
		// ratio is an attribute up to opset 10 and an input (with
		// training_mode) from 12; seed is 12 on.
		"Dropout": {minIn: 1, maxIn: 3, minOut: 1, maxOut: 2, attrs: map[string]AttrType{
			"ratio": AttrFloat, "seed": AttrInt,
		}},
	})
}
