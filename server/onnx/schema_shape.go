package onnx

import "math"

// variadic is the input or output count of an operator ONNX does not bound
// (Concat's inputs, Split's outputs).
const variadic = math.MaxInt32

// The shape and indexing operators. Each schema is the union of the
// operator's versions from opset 7 on: an attribute or input that only some
// versions define (Unsqueeze's axes moved from an attribute to an input in
// opset 13) is accepted here, and the runtime refuses it in the versions
// that do not define it.
func init() {
	registerSchemas(DomainDefault, map[string]opSchema{
		"Transpose": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"perm": AttrInts,
		}},
		// axes: an attribute before opset 13, the optional input 1 from 13.
		"Squeeze": {minIn: 1, maxIn: 2, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axes": AttrInts,
		}},
		"Unsqueeze": {minIn: 1, maxIn: 2, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axes": AttrInts,
		}},
		"Concat": {minIn: 1, maxIn: variadic, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axis": AttrInt,
		}},
		// split: an attribute before opset 13, the optional input 1 from 13;
		// num_outputs from opset 18.
		"Split": {minIn: 1, maxIn: 2, minOut: 1, maxOut: variadic, attrs: map[string]AttrType{
			"axis": AttrInt, "split": AttrInts, "num_outputs": AttrInt,
		}},
		// starts, ends and axes are attributes before opset 10, inputs 1 to
		// 3 (with steps, input 4) from 10.
		"Slice": {minIn: 1, maxIn: 5, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"starts": AttrInts, "ends": AttrInts, "axes": AttrInts,
		}},
		"Gather": {minIn: 2, maxIn: 2, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axis": AttrInt,
		}},
		"GatherElements": {minIn: 2, maxIn: 2, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"axis": AttrInt,
		}},
		// start and end from opset 15.
		"Shape": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"start": AttrInt, "end": AttrInt,
		}},
		"Size":   unaryOp,
		"Expand": binaryOp,
		"Tile":   binaryOp,
		// pads and value are attributes before opset 11; pads and
		// constant_value are inputs 1 and 2 from 11, axes input 3 from 18.
		"Pad": {minIn: 1, maxIn: 4, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"mode": AttrString, "pads": AttrInts, "value": AttrFloat,
		}},
		"ConstantOfShape": {minIn: 1, maxIn: 1, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"value": AttrTensor,
		}},
		// stash_type (opset 27) only matters for float16 and bfloat16,
		// which Corvid does not compute with.
		"Range": {minIn: 3, maxIn: 3, minOut: 1, maxOut: 1, attrs: map[string]AttrType{
			"stash_type": AttrInt,
		}},
	})
}
