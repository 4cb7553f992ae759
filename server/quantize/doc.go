// Package quantize rewrites float32 ONNX models into int8 ones that both
// Corvid and ONNX Runtime run, and calibrates the activation ranges that
// static quantization needs.
//
// Quantize rewrites MatMul and Gemm nodes with a constant weight matrix and
// Conv nodes with constant weights. Weights become per-output-channel
// symmetric int8 initializers (zero point 0). With a calibration set the
// result is static QDQ: each quantized op reads DequantizeLinear(
// QuantizeLinear(x)) with a uint8 scale and zero point fixed from the
// calibrated range of x, and DequantizeLinear of its int8 weights; without
// one it is ONNX Runtime's dynamic form: DynamicQuantizeLinear, then
// MatMulInteger or ConvInteger, a cast and the product of the two scales.
// Everything else in the model (other nodes, names, inputs and outputs,
// metadata) is kept.
//
// Calibrate runs a model through server/runtime with chosen intermediate
// values added as outputs and records their ranges; the server uses it for
// int8-static at load time, the CLI through Quantize.
//
// The package works on model bytes and tensors: it knows nothing of files,
// command lines or the model repository.
package quantize
