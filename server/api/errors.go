package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/repository"
	"github.com/corvidml/corvid/server/runtime"
)

// ErrorDomain is the domain of every google.rpc.ErrorInfo Corvid returns.
const ErrorDomain = "corvid"

// Reasons in google.rpc.ErrorInfo, stable for callers to switch on.
const (
	ReasonModelNotFound    = "MODEL_NOT_FOUND"
	ReasonModelUnavailable = "MODEL_UNAVAILABLE"
	ReasonInvalidInput     = "INVALID_INPUT"
	ReasonInvalidRequest   = "INVALID_REQUEST"
	ReasonInternal         = "INTERNAL"
	ReasonQueueFull        = "QUEUE_FULL"
	ReasonPermissionDenied = "PERMISSION_DENIED"
	ReasonTooLarge         = "REQUEST_TOO_LARGE"
)

// errInvalidRequest marks a malformed request (not its tensors).
var errInvalidRequest = errors.New("invalid request")

// errTooLarge marks a request over a size limit (RESOURCE_EXHAUSTED).
var errTooLarge = errors.New("request too large")

// toStatus is the one place where domain errors become gRPC status errors.
// errors.Is keeps wrapped errors' codes; messages are the domain errors' own,
// which say what was expected and what was received. Errors that are not the
// caller's fault are logged and reported without internals.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	var reason string
	msg := err.Error()
	switch {
	case errors.Is(err, repository.ErrNotFound):
		code, reason = codes.NotFound, ReasonModelNotFound
	case errors.Is(err, repository.ErrUnavailable), errors.Is(err, runtime.ErrClosed), errors.Is(err, batching.ErrClosed):
		code, reason = codes.Unavailable, ReasonModelUnavailable
	case errors.Is(err, batching.ErrQueueFull):
		code, reason = codes.Unavailable, ReasonQueueFull
	case errors.Is(err, errTooLarge):
		code, reason = codes.ResourceExhausted, ReasonTooLarge
	case errors.Is(err, errDenied):
		code, reason = codes.PermissionDenied, ReasonPermissionDenied
	case errors.Is(err, repository.ErrInvalidName), errors.Is(err, errInvalidRequest):
		code, reason = codes.InvalidArgument, ReasonInvalidRequest
	case errors.Is(err, errInvalidTensor), errors.Is(err, runtime.ErrInvalidInput):
		code, reason = codes.InvalidArgument, ReasonInvalidInput
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded before the prediction finished")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	default:
		log.ErrorContext(ctx, "request failed", "error", err.Error())
		code, reason, msg = codes.Internal, ReasonInternal, "internal error while running the model"
	}
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}
