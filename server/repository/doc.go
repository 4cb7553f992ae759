// Package repository owns the model repository: discovering models and their
// versions in a folder (<model>/<version>/model.onnx), loading each version
// through a Loader, recording its state, hash and signature, and resolving a
// request to the version that serves it. A version that fails to load is
// FAILED with its error while the others keep serving. It knows nothing of
// gRPC; the API layer maps its errors to status codes.
package repository
