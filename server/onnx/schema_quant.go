package onnx

// Schemas of the quantization operators: the QDQ pair, DynamicQuantizeLinear
// and the integer matrix products written by ONNX Runtime's quantization
// tools. Attributes are the union over the opsets that define them; the
// runtime refuses one the model's opset lacks.

func init() {
	registerSchemas(DomainDefault, map[string]opSchema{
		"QuantizeLinear": {minIn: 2, maxIn: 3, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axis":         AttrInt, // 13
			"saturate":     AttrInt, // 19 (float8 targets only)
			"block_size":   AttrInt, // 21
			"output_dtype": AttrInt, // 21
			"precision":    AttrInt, // 23
		}},
		"DequantizeLinear": {minIn: 2, maxIn: 3, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axis":         AttrInt, // 13
			"block_size":   AttrInt, // 21
			"output_dtype": AttrInt, // 23
		}},
		"DynamicQuantizeLinear": {minIn: 1, maxIn: 1, minOut: 3, maxOut: 3},
		"MatMulInteger":         {minIn: 2, maxIn: 4, minOut: 1, maxOut: 1},
		"QLinearMatMul":         {minIn: 8, maxIn: 8, minOut: 1, maxOut: 1},
	})
}
