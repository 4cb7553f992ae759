// Package api implements corvid.v1.InferenceService. It is the only package
// that speaks gRPC status codes: it decodes wire tensors, asks the repository
// for the version that serves a request, runs it, and maps domain errors to
// codes with messages that say what was expected and what was received.
package api
