package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/middleware"
)

// errDenied marks a request the policy refuses (PermissionDenied).
var errDenied = errors.New("permission denied")

// authorizer applies the authorization policy, identically to gRPC
// unary calls, each item of a Stream, REST (whose requests reach the API
// through the gateway's gRPC link, the caller's identity forwarded) and the
// model control service. A nil policy allows everything.
type authorizer struct {
	policy *auth.Policy
	log    *slog.Logger
}

// allow returns nil when the caller in ctx may do action on model, else an
// error wrapping errDenied naming the identity, the action and the model;
// a refusal is audited.
func (z authorizer) allow(ctx context.Context, action auth.Action, model string) error {
	if z.policy == nil {
		return nil
	}
	id, _ := middleware.IdentityFrom(ctx)
	if z.policy.Allow(id, action, model) {
		return nil
	}
	z.log.WarnContext(ctx, "audit", "identity", id.Name, "source", id.Source, "action", string(action),
		"model", model, "outcome", "denied by policy", "request_id", middleware.RequestID(ctx))
	return fmt.Errorf("%w: %s may not %s model %q", errDenied, middleware.DescribeIdentity(id), action, model)
}

// visible filters model names to those the caller may see (status).
func (z authorizer) visible(ctx context.Context, names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	if z.policy == nil {
		for _, n := range names {
			out[n] = true
		}
		return out
	}
	id, _ := middleware.IdentityFrom(ctx)
	for _, n := range z.policy.AllowedModels(id, auth.ActionStatus, names) {
		out[n] = true
	}
	return out
}
