// Package auth owns who a caller is and what it may do: it verifies bearer
// JWTs against pinned public keys (a JWKS or PEM file, never fetched from a
// URL), names the identity behind a verified client certificate, and
// evaluates the authorization policy file (identity x model x action).
//
// It is transport-independent: it takes header strings, certificates and
// model names, never a gRPC or HTTP type, so the server applies the same
// checks to unary calls, Stream, REST (through the gateway's forwarded
// metadata) and the model control API. It must not import gRPC, other server
// packages, or log anything: tokens and metadata never reach a log from here.
// Errors wrap ErrUnauthenticated or ErrPermissionDenied; server/api maps them
// to status codes.
package auth
