// Package routing owns how a model's traffic is spread across its versions:
// the weighted A/B split (sticky on a routing key) and the shadow copy of
// traffic to a version whose results are compared with the primary's and
// never returned.
//
// It knows nothing of the repository, gRPC or the runtime: a shadow version is
// reached through a RunFunc, and versions are plain int64 numbers, so the
// repository and the API layer can import this package without a cycle.
package routing
