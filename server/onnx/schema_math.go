package onnx

import "math"

// Schemas of the elementwise math, activation, reduction and logic
// operators. Where an operator's attributes changed between opsets (Clip's
// bounds became inputs in 11, the reductions' axes became an input in 18,
// TopK's k an input in 10), the schema takes the union and the runtime
// refuses an attribute the model's opset does not define.

func init() {
	// Sum, Mean, Min and Max take any number of inputs. (A local constant:
	// each family's file is written independently.)
	const unbounded = math.MaxInt32
	variadicOp := opSchema{minIn: 1, maxIn: unbounded, minOut: 1, maxOut: 1}
	floatAttrs := func(names ...string) opSchema {
		s := opSchema{minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: make(map[string]AttrType, len(names))}
		for _, n := range names {
			s.attrs[n] = AttrFloat
		}
		return s
	}
	reduce := opSchema{minIn: 1, maxIn: 2, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
		"axes": AttrInts, "keepdims": AttrInt, "noop_with_empty_axes": AttrInt,
	}}

	registerSchemas(DomainDefault, map[string]opSchema{
		// math
		"Pow":        binaryOp,
		"Sqrt":       unaryOp,
		"Exp":        unaryOp,
		"Log":        unaryOp,
		"Abs":        unaryOp,
		"Neg":        unaryOp,
		"Reciprocal": unaryOp,
		"Erf":        unaryOp,
		"Floor":      unaryOp,
		"Ceil":       unaryOp,
		"Round":      unaryOp,
		"Sign":       unaryOp,
		"Clip": {minIn: 1, maxIn: 3, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"min": AttrFloat, "max": AttrFloat, // before opset 11
		}},
		"Min":  variadicOp,
		"Max":  variadicOp,
		"Sum":  variadicOp,
		"Mean": variadicOp,

		// activations
		"LeakyRelu":   floatAttrs("alpha"),
		"PRelu":       binaryOp,
		"Elu":         floatAttrs("alpha"),
		"Selu":        floatAttrs("alpha", "gamma"),
		"HardSigmoid": floatAttrs("alpha", "beta"),
		"HardSwish":   unaryOp,
		"Softplus":    unaryOp,
		"LogSoftmax": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axis": AttrInt,
		}},
		"Gelu": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"approximate": AttrString,
		}},

		// reductions
		"ReduceMean": reduce,
		"ReduceSum":  reduce,
		"ReduceMax":  reduce,
		"ReduceMin":  reduce,
		"ReduceProd": reduce,
		"ReduceL2":   reduce,
		"ArgMin": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axis": AttrInt, "keepdims": AttrInt, "select_last_index": AttrInt,
		}},
		"TopK": {minIn: 1, maxIn: 2, minOut: 2, maxOut: 2, attrs: map[string]AttrType{
			"k":    AttrInt, // before opset 10
			"axis": AttrInt, "largest": AttrInt, "sorted": AttrInt,
		}},

		// comparison and logic
		"Equal":          binaryOp,
		"Less":           binaryOp,
		"Greater":        binaryOp,
		"LessOrEqual":    binaryOp,
		"GreaterOrEqual": binaryOp,
		"Not":            unaryOp,
		"And":            binaryOp,
		"Or":             binaryOp,
		"Where":          {minIn: 3, maxIn: 3, minOut: 1, maxOut: 1},
	})
}
