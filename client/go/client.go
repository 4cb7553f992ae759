package corvid

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/codec"
)

// Client calls a Corvid server's InferenceService. It is safe for concurrent
// use; make one per server and share it.
type Client struct {
	rpc      corvidv1.InferenceServiceClient
	conn     *grpc.ClientConn // non-nil only when Dial made the connection
	timeout  time.Duration
	callOpts []grpc.CallOption
}

// Dial returns a Client for the server at target, in grpc-go's target syntax
// ("localhost:8500", "dns:///corvid.internal:8500", "unix:///run/corvid.sock").
//
// Like grpc.NewClient, Dial does not wait for the connection: the first call
// connects, and a server that cannot be reached shows up as a
// codes.Unavailable error from that call. Without [WithTLS] or
// [WithTransportCredentials] the connection is plaintext.
func Dial(target string, opts ...Option) (*Client, error) {
	o := collect(opts)
	creds := o.creds
	switch {
	case creds != nil:
	case o.tlsFiles != nil:
		cfg, err := o.tlsFiles.config()
		if err != nil {
			return nil, fmt.Errorf("corvid: dial %s: %w", target, err)
		}
		creds = credentials.NewTLS(cfg)
	default:
		creds = insecure.NewCredentials()
	}
	// The caller's dial options go last so that they win over ours.
	dialOpts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, o.dialOptions...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("corvid: dial %s: %w", target, err)
	}
	c := newClient(conn, target, o)
	c.conn = conn
	return c, nil
}

// NewFromConn returns a Client that calls the server over cc, a connection
// the caller made and keeps owning: [Client.Close] leaves it open.
// [WithBearerToken] and [WithTimeout] apply; [WithTransportCredentials] and
// [WithDialOptions] do not, as cc is already configured.
func NewFromConn(cc grpc.ClientConnInterface, opts ...Option) *Client {
	var target string
	if conn, ok := cc.(*grpc.ClientConn); ok {
		target = conn.Target()
	}
	return newClient(cc, target, collect(opts))
}

func collect(opts []Option) *options {
	o := new(options)
	for _, opt := range opts {
		opt.apply(o)
	}
	return o
}

func newClient(cc grpc.ClientConnInterface, target string, o *options) *Client {
	c := &Client{rpc: corvidv1.NewInferenceServiceClient(cc), timeout: o.timeout}
	// The server's own codec: it encodes large tensors without clearing a
	// 1 MiB buffer for each (see package codec); the bytes on the wire are
	// grpc-go's protobuf, the same as any client sends.
	c.callOpts = append(c.callOpts, grpc.ForceCodecV2(codec.Codec{}))
	if o.token != "" {
		// Call credentials rather than dial credentials, so that NewFromConn
		// gets them too; grpc-go refuses per call to send credentials that
		// require transport security over a plaintext connection.
		creds := bearerToken{token: o.token, requireTLS: !isLoopback(target)}
		c.callOpts = append(c.callOpts, grpc.PerRPCCredentials(creds))
	}
	return c
}

// Close closes the connection made by [Dial]. A Client from [NewFromConn]
// leaves its connection to its owner, and Close does nothing.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Predict runs inputs through a version of model. Without [Version] or
// [Label], the model's routing policy picks the version; the response names
// the version that served it.
//
// An error from the server is a gRPC status error: codes.InvalidArgument for
// a missing input or a wrong shape or dtype (the message names what was
// expected and what was received), codes.NotFound for an unknown model or
// version, codes.Unavailable or codes.FailedPrecondition while it loads,
// codes.ResourceExhausted when the server is saturated.
func (c *Client) Predict(ctx context.Context, model string, inputs map[string]*corvidv1.Tensor, opts ...CallOption) (*corvidv1.PredictResponse, error) {
	req := &corvidv1.PredictRequest{Model: model, Inputs: inputs}
	for _, opt := range opts {
		opt.applyCall(req)
	}
	return c.PredictRequest(ctx, req)
}

// PredictRequest sends req as it is, for callers that build requests
// themselves (or decode them from JSON). Errors are as for [Client.Predict].
func (c *Client) PredictRequest(ctx context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	// Status errors go back unwrapped, as from any gRPC client, so that
	// status.FromError returns the server's message and details untouched.
	return c.rpc.Predict(ctx, req, c.callOpts...)
}

// ModelStatus reports every version of model: its state, the SHA-256 of its
// file, its inputs and outputs, and why it failed to load if it did. An
// unknown model is codes.NotFound.
func (c *Client) ModelStatus(ctx context.Context, model string) (*corvidv1.ModelInfo, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.rpc.ModelStatus(ctx, &corvidv1.ModelStatusRequest{Model: model}, c.callOpts...)
	if err != nil {
		return nil, err
	}
	return resp.GetModel(), nil
}

// ListModels reports every model the server knows, sorted by name, with
// their versions.
func (c *Client) ListModels(ctx context.Context) ([]*corvidv1.ModelInfo, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.rpc.ListModels(ctx, &corvidv1.ListModelsRequest{}, c.callOpts...)
	if err != nil {
		return nil, err
	}
	return resp.GetModels(), nil
}

// Stream opens a bidirectional stream for many predictions over one call; see
// [Stream]. ctx bounds the whole stream: cancelling it ends the stream and
// fails every prediction still waiting. [WithTimeout] applies to each
// [Stream.Predict], not to the stream. Call [Stream.Close] when done: until
// then, or until ctx ends, the stream holds a goroutine.
func (c *Client) Stream(ctx context.Context) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	bidi, err := c.rpc.Stream(ctx, c.callOpts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return newStream(bidi, cancel, c.timeout), nil
}

// withTimeout applies the default deadline to a context that has none; a
// deadline the caller chose, longer or shorter, is theirs to keep.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return withDefaultTimeout(ctx, c.timeout)
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// bearerToken is a credentials.PerRPCCredentials sending a fixed token.
type bearerToken struct {
	token      string
	requireTLS bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.requireTLS }

// isLoopback reports whether a gRPC target can only reach this machine, where
// a token sent in plaintext is not exposed to the network. Unknown forms
// count as remote.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	if scheme, rest, ok := strings.Cut(target, "://"); ok {
		if scheme != "dns" && scheme != "passthrough" {
			return false
		}
		// "dns://[authority]/host:port": the endpoint follows the authority.
		_, endpoint, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		target = endpoint
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
