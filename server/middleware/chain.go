package middleware

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServerOptions returns the interceptor chain as server options, built once
// and identical for unary and streaming RPCs. With Chain*Interceptor the first
// interceptor is the outermost.
//
// guard, when set, authenticates every RPC (and applies the rate limit)
// after logging, so refusals are logged with their request ids.
func ServerOptions(log *slog.Logger, guard *Authenticator) []grpc.ServerOption {
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		// The stack goes to the log, never to the caller.
		log.ErrorContext(ctx, "panic in handler", "panic", p, "request_id", RequestID(ctx), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			if id := RequestID(ctx); id != "" {
				return logging.Fields{"request_id", id}
			}
			return nil
		}),
		// Health checks are polled constantly; logging them drowns the rest.
		logging.WithLevels(func(c codes.Code) logging.Level {
			if c == codes.OK {
				return logging.LevelDebug
			}
			return logging.DefaultServerCodeToLevel(c)
		}),
	}
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(recoverOpt),
		unaryRequestID,
		logging.UnaryServerInterceptor(logger, logOpts...),
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(recoverOpt),
		streamRequestID,
		logging.StreamServerInterceptor(logger, logOpts...),
	}
	if guard != nil {
		unary = append(unary, guard.Unary())
		stream = append(stream, guard.Stream())
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
}
