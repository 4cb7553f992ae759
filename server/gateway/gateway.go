package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/gen/openapi"
	"github.com/corvidml/corvid/server/gateway/inproc"
	"github.com/corvidml/corvid/server/middleware"
)

// Options configures the REST handler.
type Options struct {
	// MaxBodyBytes bounds a request body; larger bodies get 413 before any
	// JSON is decoded (decoding amplifies memory several times).
	MaxBodyBytes int64
	// DialOptions are used to reach the gRPC server (credentials, limits).
	DialOptions []grpc.DialOption
	// ModelControl adds ModelControlService's routes (/v1/repository/...).
	ModelControl bool
}

// New returns the REST handler for the gRPC server at grpcTarget. The
// connection it dials is closed when ctx is cancelled. The server dials its
// own in-process listener (package inproc), where the REST caller's
// verified client certificate, forwarded as inproc.ClientCertKey metadata,
// can be believed.
func New(ctx context.Context, grpcTarget string, opts Options) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false},
				// A misspelt field is an error, not a silently empty input.
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
			},
		}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithMetadata(clientCert),
	)
	if err := corvidv1.RegisterInferenceServiceHandlerFromEndpoint(ctx, mux, grpcTarget, opts.DialOptions); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}
	if opts.ModelControl {
		if err := corvidv1.RegisterModelControlServiceHandlerFromEndpoint(ctx, mux, grpcTarget, opts.DialOptions); err != nil {
			return nil, fmt.Errorf("register gateway: %w", err)
		}
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Document)
	})
	root.Handle("/", mux)
	return limitBody(root, opts.MaxBodyBytes), nil
}

// incomingHeader forwards x-request-id besides grpc-gateway's defaults (the
// permanent HTTP headers, as grpcgateway-*; Grpc-Metadata-* is not
// forwarded). A header that would pose as the client certificate the
// gateway forwards is dropped, should the defaults ever map one there.
func incomingHeader(key string) (string, bool) {
	if strings.EqualFold(key, middleware.RequestIDHeader) {
		return middleware.RequestIDHeader, true
	}
	md, ok := runtime.DefaultHeaderMatcher(key)
	if ok && strings.EqualFold(md, inproc.ClientCertKey) {
		return "", false
	}
	return md, ok
}

// clientCert forwards the verified client certificate of the REST
// connection, if any, so that the gRPC side knows the caller as it would
// over a direct mTLS connection.
func clientCert(_ context.Context, r *http.Request) metadata.MD {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return metadata.Pairs(inproc.ClientCertKey, string(r.TLS.VerifiedChains[0][0].Raw))
}

// outgoingHeader returns x-request-id as itself rather than as
// Grpc-Metadata-X-Request-Id.
func outgoingHeader(key string) (string, bool) {
	if key == middleware.RequestIDHeader {
		return textproto.CanonicalMIMEHeaderKey(key), true
	}
	return fmt.Sprintf("%s%s", runtime.MetadataHeaderPrefix, key), true
}

// limitBody answers 413 for a body over max bytes: at once when the declared
// length says so, and after reading at most max+1 bytes for a body of unknown
// length (chunked), which is buffered here so the gateway never sees more.
func limitBody(next http.Handler, max int64) http.Handler {
	if max <= 0 {
		return next
	}
	tooLarge := func(w http.ResponseWriter, size string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		// Code 8 is RESOURCE_EXHAUSTED, as the gRPC size limit reports it.
		fmt.Fprintf(w, `{"code":8,"message":"request body is %s bytes, the limit is %d"}`+"\n", size, max)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.ContentLength > max:
			tooLarge(w, fmt.Sprint(r.ContentLength))
			return
		case r.ContentLength < 0:
			body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
			r.Body.Close()
			if err != nil {
				http.Error(w, "cannot read request body", http.StatusBadRequest)
				return
			}
			if int64(len(body)) > max {
				tooLarge(w, "more than "+fmt.Sprint(max))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		default:
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		next.ServeHTTP(w, r)
	})
}
