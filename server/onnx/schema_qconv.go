package onnx

// The integer convolutions of ONNX Runtime's quantized models: ConvInteger
// (opset 10) and QLinearConv (opset 10). Both take every attribute Conv
// does; the runtime checks their values.
func init() {
	attrs := func() map[string]AttrType {
		return map[string]AttrType{
			"auto_pad": AttrString, "kernel_shape": AttrInts, "pads": AttrInts,
			"strides": AttrInts, "dilations": AttrInts, "group": AttrInt,
		}
	}
	registerSchemas(DomainDefault, map[string]opSchema{
		// x, w, x_zero_point, w_zero_point.
		"ConvInteger": {minIn: 2, maxIn: 4, minOut: 1, maxOut: 1, attrs: attrs()},
		// x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
		// y_zero_point, B.
		"QLinearConv": {minIn: 8, maxIn: 9, minOut: 1, maxOut: 1, attrs: attrs()},
	})
}
