// Package inproc owns the connection through which REST requests enter the
// gRPC server: an in-process listener (no address any other process can
// reach) and the server transport credentials that tell its connections
// apart from those accepted on the public ports.
//
// The REST gateway dials the gRPC server over this listener, never over the
// public gRPC port, so it needs no client certificate however the public
// port authenticates callers. A connection from here carries [AuthInfo]
// instead of TLS state; [FromGateway] reports it. That is the one place
// where identity metadata the gateway sets on behalf of a REST caller may be
// trusted: the same metadata on any other connection comes from the caller
// itself.
//
// It must not import any other server package, so that the interceptors
// and the authorization code can import it.
package inproc
