package corvid

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// An Option configures a [Client] built by [Dial] or [NewFromConn].
type Option interface {
	apply(*options)
}

type options struct {
	creds       credentials.TransportCredentials // nil: tlsFiles, or plaintext
	tlsFiles    *tlsFiles                        // set by WithTLS
	dialOptions []grpc.DialOption
	token       string
	timeout     time.Duration
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithTransportCredentials sets the transport security of a connection made
// by [Dial], for instance credentials.NewTLS(cfg) for TLS or mTLS. The default
// is plaintext, meant for a development server on a loopback address.
// It replaces an earlier [WithTLS], and is replaced by a later one.
// [NewFromConn] ignores this option: the connection's security is already set.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return optionFunc(func(o *options) { o.creds, o.tlsFiles = creds, nil })
}

// WithDialOptions passes options through to grpc.NewClient when [Dial] makes
// the connection, after the ones this package sets, so they take precedence
// (for example a larger grpc.MaxCallRecvMsgSize for big output tensors, or
// interceptors). [NewFromConn] ignores this option.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(o *options) { o.dialOptions = append(o.dialOptions, opts...) })
}

// WithBearerToken sends "authorization: Bearer <token>" with every call.
//
// The token is sent only over a connection with transport security, or to a
// loopback target (localhost, 127.0.0.0/8, ::1, a Unix socket), where
// plaintext does not leave the machine. Elsewhere, calls over a plaintext
// connection fail with codes.Unauthenticated instead of leaking the token.
func WithBearerToken(token string) Option {
	return optionFunc(func(o *options) { o.token = token })
}

// WithTimeout sets the deadline of every unary call, and of every
// [Stream.Predict] call, whose context has none. Zero, the default, sets no
// deadline. It does not bound the lifetime of a [Stream] itself.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.timeout = d })
}

// A CallOption adjusts one [Client.Predict] request.
type CallOption interface {
	applyCall(*corvidv1.PredictRequest)
}

type callOptionFunc func(*corvidv1.PredictRequest)

func (f callOptionFunc) applyCall(r *corvidv1.PredictRequest) { f(r) }

// Version asks for an explicit model version. It replaces an earlier [Label]:
// a request names a version or a label, not both. Without either, the
// model's routing policy chooses.
func Version(v int64) CallOption {
	return callOptionFunc(func(r *corvidv1.PredictRequest) {
		r.VersionSelector = &corvidv1.PredictRequest_Version{Version: v}
	})
}

// Label asks for the version a label such as "stable" or "canary" points to.
// It replaces an earlier [Version].
func Label(label string) CallOption {
	return callOptionFunc(func(r *corvidv1.PredictRequest) {
		r.VersionSelector = &corvidv1.PredictRequest_VersionLabel{VersionLabel: label}
	})
}

// Outputs limits the response to the named outputs. Without it the server
// returns every output of the model. Repeated uses add up.
func Outputs(names ...string) CallOption {
	return callOptionFunc(func(r *corvidv1.PredictRequest) {
		r.OutputFilter = append(r.OutputFilter, names...)
	})
}

// RequestID sets the id the server echoes in the response and writes to its
// logs; a later feedback call can refer to it. Without it the server makes one.
func RequestID(id string) CallOption {
	return callOptionFunc(func(r *corvidv1.PredictRequest) { r.RequestId = id })
}

// RoutingKey makes routing sticky when traffic is split between versions:
// requests with the same key (a user or session id, say) reach the same
// version.
func RoutingKey(key string) CallOption {
	return callOptionFunc(func(r *corvidv1.PredictRequest) { r.RoutingKey = key })
}
