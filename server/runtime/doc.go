// Package runtime executes decoded ONNX graphs with Gorgonia.
//
// It owns the path from an onnx.Graph to outputs: constant folding,
// building one Gorgonia expression graph per batch bucket and per worker
// (never per request), the pool of workers that hands those graphs to
// requests, request validation (names, dtypes, shapes, batch size),
// padding a batch up to its bucket and slicing results back, and the ops
// Gorgonia lacks, written as custom gorgonia.Ops.
//
// After folding, the MatMul, Gemm and Conv nodes with constant weights are
// fused with their bias and Relu into ops of Corvid's own over weights
// packed once per model (fuse.go), computed in float32 or, per
// Options.Quantization, on the int8 GEMM of package kernels (int8-dynamic,
// int8-static); QDQ chains of pre-quantized models run on the int8 GEMM
// whatever the mode.
//
// Gorgonia keeps values on graph nodes, so a graph and its runner belong to
// one worker and serve one request at a time. The runner (lean.go) walks the
// compiled graph in topological order on the caller's goroutine, calling each
// op into buffers allocated once per graph: no goroutine, no Reset, no
// allocation per run. Gorgonia's TapeMachine remains selectable with
// CORVID_RUNNER=tape, for comparison. Every op recovers its own panics inside
// Do (the TapeMachine runs ops on a goroutine of its own, where a panic
// would kill the process), and a worker whose graph panicked rebuilds it.
//
// The package knows nothing of gRPC, files or model versions; errors are
// its own sentinels (ErrInvalidInput, ErrInternal, ErrClosed) or the onnx
// package's, for server/api to map to status codes.
package runtime
