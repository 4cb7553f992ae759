// Package gateway owns the REST front: a grpc-gateway mux that dials the gRPC
// server (so REST requests go through the same interceptors as gRPC ones) and
// the OpenAPI document at /openapi.json. The server has it dial an
// in-process listener (package inproc), never the public gRPC port, and it
// forwards the REST caller's verified client certificate as metadata that
// only that connection can carry. It must not call the service
// implementation directly.
package gateway
