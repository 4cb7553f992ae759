// Package server wires Corvid together: configuration, the model repository,
// the gRPC server with its limits, interceptors, health and reflection, the
// REST gateway and the admin endpoints, and the orderly shutdown of all of
// them. It is the one place that knows every other server package.
package server
