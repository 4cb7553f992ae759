// Package tensor owns Corvid's host tensor: a dense, row-major array with an
// element type and a shape, the form in which inputs enter the runtime and
// outputs leave it. It knows nothing of gRPC, ONNX or Gorgonia; the API layer
// converts wire tensors to and from it, and the runtime converts it to and from
// Gorgonia values.
package tensor
