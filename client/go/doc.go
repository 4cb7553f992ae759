// Package corvid is the Go SDK for Corvid, a model server. It wraps the
// generated corvid.v1 gRPC client with what every caller would otherwise write
// again: dialing with sensible defaults, bearer tokens, a default per-call
// deadline, tensor construction and decoding, and request/response matching
// on the bidirectional Stream RPC.
//
// # Connecting
//
// [Dial] connects to a server. Without options it uses plaintext, which suits
// a development server on localhost; production callers pass [WithTLS]
// (a CA file, and a client certificate and key for mTLS) or
// [WithTransportCredentials]. [WithBearerToken] attaches a token
// to every call, and only sends it over a secure transport unless the target
// is a loopback address. [NewFromConn] wraps a connection the caller already
// owns, for instance one shared with other services or built with interceptors.
//
//	c, err := corvid.Dial("localhost:8500", corvid.WithTimeout(2*time.Second))
//	if err != nil { ... }
//	defer c.Close()
//
// # Tensors
//
// Tensors travel as a dtype, a shape and the elements, either as raw
// little-endian bytes (the fast path) or in a typed repeated field (the form
// JSON callers use). Constructors such as [Float32Tensor] build the raw form;
// accessors such as [AsFloat32] read either form and check the dtype and the
// element count against the shape.
//
//	resp, err := c.Predict(ctx, "digits", map[string]*corvidv1.Tensor{
//		"input": corvid.Float32Tensor(pixels, 1, 64),
//	}, corvid.Label("stable"))
//	if err != nil { ... }
//	probs, err := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
//
// # Streaming
//
// [Client.Stream] opens one bidirectional stream and returns a [Stream] whose
// Predict method may be called from many goroutines at once: each call sends
// its request and waits for the response that carries its request id, so
// responses may come back in any order.
//
// # Errors
//
// Errors from the server are gRPC status errors, returned unchanged so that
// [google.golang.org/grpc/status.Code] and the error details (which name the
// expected and the received shape, dtype or input) work on them. A failed
// item on a Stream is returned as a status error with the same code and
// message Predict would have returned. Errors found locally, such as a tensor
// whose dtype does not match, wrap the sentinels [ErrDType], [ErrShape],
// [ErrEncoding] and [ErrStreamClosed].
//
// This package depends only on the generated API in gen/go/corvid/v1 and on
// grpc-go; it must not import anything under server/.
package corvid
