package middleware

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/ratelimit"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// Metadata keys by which the REST front, after authenticating its caller,
// tells the gRPC server who the caller is. They are believed only on the
// in-process connection the gateway uses (Authenticator.Internal); on any
// other connection they are refused.
const (
	IdentityHeader       = "x-corvid-identity"
	IdentitySourceHeader = "x-corvid-identity-source"
)

// Authenticator finds who calls: the verified client certificate (mTLS),
// else a bearer JWT, else, on the gateway's in-process connection, the
// identity the REST front forwarded. It then applies the per-identity rate
// limit. The identity goes into the context for the API's per-model
// authorization (IdentityFrom).
type Authenticator struct {
	// JWT verifies bearer tokens; nil accepts none.
	JWT *auth.Verifier
	// Required refuses callers with no identity (Unauthenticated). It is
	// set whenever a policy is configured.
	Required bool
	// Limit, when set, bounds each identity's request rate.
	Limit *ratelimit.Limiter
	// Internal reports whether the RPC came over the gateway's in-process
	// connection.
	Internal func(ctx context.Context) bool
	// Open lists full method names that need no identity (health checks).
	Open []string
	Log  *slog.Logger
}

type identityKey struct{}

// IdentityFrom returns the caller's identity, if it has one.
func IdentityFrom(ctx context.Context) (auth.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(auth.Identity)
	return id, ok
}

// WithIdentity returns ctx carrying id (the REST front and tests use it).
func WithIdentity(ctx context.Context, id auth.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// Identify works out the identity of the RPC in ctx. An empty identity
// with a nil error means an anonymous caller.
func (a *Authenticator) Identify(ctx context.Context) (auth.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	forwarded := md.Get(IdentityHeader)
	internal := a.Internal != nil && a.Internal(ctx)
	if len(forwarded) > 0 && !internal {
		return auth.Identity{}, status.Error(codes.InvalidArgument, IdentityHeader+" may not be set by a caller")
	}
	if internal && len(forwarded) > 0 {
		src := auth.SourceMTLS
		if s := md.Get(IdentitySourceHeader); len(s) > 0 {
			src = s[0]
		}
		return auth.Identity{Name: forwarded[0], Source: src}, nil
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			if name, ok := tlsconfig.Identity(&info.State); ok {
				return auth.Identity{Name: name, Source: auth.SourceMTLS}, nil
			}
		}
	}
	if h := md.Get("authorization"); len(h) > 0 {
		if a.JWT == nil {
			return auth.Identity{}, status.Error(codes.Unauthenticated, "bearer tokens are not accepted by this server")
		}
		id, err := a.JWT.Verify(h[0])
		if err != nil {
			return auth.Identity{}, status.Error(codes.Unauthenticated, err.Error())
		}
		return id, nil
	}
	return auth.Identity{}, nil
}

// admit authenticates one RPC and applies the rate limit.
func (a *Authenticator) admit(ctx context.Context, method string) (context.Context, error) {
	for _, m := range a.Open {
		if m == method {
			return ctx, nil
		}
	}
	id, err := a.Identify(ctx)
	if err != nil {
		a.audit(ctx, id, method, "denied: "+status.Convert(err).Message())
		return nil, err
	}
	if id.Name == "" && a.Required {
		a.audit(ctx, id, method, "denied: no identity")
		return nil, status.Error(codes.Unauthenticated, "this server needs a client certificate or a bearer token")
	}
	if a.Limit != nil {
		key := id.Source + ":" + id.Name
		if ok, wait := a.Limit.Allow(key); !ok {
			a.audit(ctx, id, method, "denied: rate limit")
			st := status.New(codes.ResourceExhausted, "rate limit exceeded for this caller; retry later")
			if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait.Round(time.Millisecond))}); err == nil {
				st = d
			}
			return nil, st.Err()
		}
	}
	return WithIdentity(ctx, id), nil
}

func (a *Authenticator) audit(ctx context.Context, id auth.Identity, method, outcome string) {
	if a.Log == nil {
		return
	}
	a.Log.WarnContext(ctx, "audit", "identity", id.Name, "source", id.Source, "action", method,
		"outcome", outcome, "request_id", RequestID(ctx))
}

// Unary is the unary interceptor.
func (a *Authenticator) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.admit(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream is the streaming interceptor: one admission per stream.
func (a *Authenticator) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.admit(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// ErrDenied is what the API wraps when the policy refuses an identity.
var ErrDenied = errors.New("permission denied")

// DescribeIdentity names an identity for messages: "mtls:spiffe://..." or
// "anonymous".
func DescribeIdentity(id auth.Identity) string {
	if id.Name == "" {
		return "anonymous"
	}
	return strings.TrimSpace(id.Source + " " + id.Name)
}
