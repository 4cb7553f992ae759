// Package middleware owns the interceptor chain every RPC goes through, gRPC
// and REST alike (the gateway dials the gRPC server): recovery outermost, then
// request ids, then structured logging. It must not know about models.
package middleware
