// Package gateway owns the REST front: a grpc-gateway mux that dials the gRPC
// server (so REST requests go through the same interceptors as gRPC ones) and
// the OpenAPI document at /openapi.json. It must not call the service
// implementation directly.
package gateway
