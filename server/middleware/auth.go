package middleware

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
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
	"github.com/corvidml/corvid/server/gateway/inproc"
	"github.com/corvidml/corvid/server/ratelimit"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// Authenticator finds who calls: the verified client certificate (mTLS),
// on the public port or, for REST, the one the gateway forwards over its
// in-process connection (believed only there); else a bearer JWT. It then applies the per-identity rate
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
	forwarded := md.Get(inproc.ClientCertKey)
	internal := a.Internal != nil && a.Internal(ctx)
	if len(forwarded) > 0 {
		if !internal {
			return auth.Identity{}, status.Error(codes.InvalidArgument, inproc.ClientCertKey+" may not be set by a caller")
		}
		cert, err := x509.ParseCertificate([]byte(forwarded[0]))
		if err != nil {
			return auth.Identity{}, status.Error(codes.Internal, "the gateway forwarded an unreadable client certificate")
		}
		if id, ok := auth.IdentityFromCertificate(cert); ok {
			return id, nil
		}
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

// HTTP applies the authenticator to REST handlers that call the API in
// process rather than through the gateway's gRPC link (the admin port's
// control routes): the caller's identity comes from its verified client
// certificate or its bearer token, and the same refusals apply, as JSON
// errors with the matching HTTP status.
func (a *Authenticator) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id auth.Identity
		var err error
		if r.TLS != nil {
			if name, ok := tlsconfig.Identity(r.TLS); ok {
				id = auth.Identity{Name: name, Source: auth.SourceMTLS}
			}
		}
		if id.Name == "" {
			if h := r.Header.Get("Authorization"); h != "" {
				if a.JWT == nil {
					err = status.Error(codes.Unauthenticated, "bearer tokens are not accepted by this server")
				} else if id, err = a.JWT.Verify(h); err != nil {
					err = status.Error(codes.Unauthenticated, err.Error())
				}
			}
		}
		if err == nil && id.Name == "" && a.Required {
			err = status.Error(codes.Unauthenticated, "this server needs a client certificate or a bearer token")
		}
		if err == nil && a.Limit != nil {
			if ok, wait := a.Limit.Allow(id.Source + ":" + id.Name); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				err = status.Error(codes.ResourceExhausted, "rate limit exceeded for this caller; retry later")
			}
		}
		if err != nil {
			a.audit(r.Context(), id, r.Method+" "+r.URL.Path, "denied: "+status.Convert(err).Message())
			st := status.Convert(err)
			code := http.StatusUnauthorized
			if st.Code() == codes.ResourceExhausted {
				code = http.StatusTooManyRequests
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, "{\"code\":%d,\"message\":%q}\n", st.Code(), st.Message())
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}
