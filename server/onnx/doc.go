// Package onnx decodes ONNX model files into a validated intermediate graph.
//
// It owns everything between the bytes of a model file and a Graph the
// executor can trust: recognising that the bytes are ONNX protobuf at all
// (and naming what they are when they are not: a pickle, a zip archive), the
// operator sets and operators Corvid supports, attribute types, tensor data
// whose length must match its declared shape before anything is allocated,
// the names that connect nodes, and a topological order of the nodes.
//
// Model files are untrusted input: every refusal wraps ErrInvalidModel (the
// file is malformed or inconsistent) or ErrUnsupported (the file is valid
// ONNX that uses something Corvid does not run), and nothing in this package
// panics on any input.
//
// The package knows nothing of Gorgonia or of how a graph is executed (that
// is server/runtime), nor of files, paths and versions (server/repository):
// it reads bytes it is handed and never touches the file system, which is why
// tensors stored as external data are refused here.
package onnx
