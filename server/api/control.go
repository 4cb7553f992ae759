package api

import (
	"context"
	"log/slog"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/middleware"
	"github.com/corvidml/corvid/server/repository"
)

// Control implements corvid.v1.ModelControlService over a model repository.
type Control struct {
	corvidv1.UnimplementedModelControlServiceServer

	repo  *repository.Repository
	log   *slog.Logger
	authz authorizer
}

// NewControl returns the control service of repo, open to every caller
// until SetPolicy.
func NewControl(repo *repository.Repository, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Control{repo: repo, log: log, authz: authorizer{nil, log}}
}

// SetPolicy makes policy (nil: allow all) decide who may use the control
// service, per model. Call it before serving.
func (c *Control) SetPolicy(policy *auth.Policy) { c.authz.policy = policy }

// audit writes the one line every control action leaves: who, what, which
// model, and how it ended.
func (c *Control) audit(ctx context.Context, action, model string, err error) {
	id, _ := middleware.IdentityFrom(ctx)
	outcome := "ok"
	if err != nil {
		outcome = "error: " + err.Error()
	}
	c.log.InfoContext(ctx, "audit", "identity", id.Name, "source", id.Source, "action", action,
		"model", model, "outcome", outcome, "request_id", middleware.RequestID(ctx))
}

// LoadModel loads a model and reports it.
func (c *Control) LoadModel(ctx context.Context, req *corvidv1.LoadModelRequest) (*corvidv1.LoadModelResponse, error) {
	if err := c.authz.allow(ctx, auth.ActionControl, req.GetModel()); err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	ms, err := c.repo.LoadModel(ctx, req.GetModel())
	c.audit(ctx, "load", req.GetModel(), err)
	if err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	return &corvidv1.LoadModelResponse{Model: modelInfo(ms)}, nil
}

// UnloadModel unloads a model and reports it.
func (c *Control) UnloadModel(ctx context.Context, req *corvidv1.UnloadModelRequest) (*corvidv1.UnloadModelResponse, error) {
	if err := c.authz.allow(ctx, auth.ActionControl, req.GetModel()); err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	ms, err := c.repo.UnloadModel(req.GetModel())
	c.audit(ctx, "unload", req.GetModel(), err)
	if err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	return &corvidv1.UnloadModelResponse{Model: modelInfo(ms)}, nil
}

// ReloadModel reloads a model's versions and reports it.
func (c *Control) ReloadModel(ctx context.Context, req *corvidv1.ReloadModelRequest) (*corvidv1.ReloadModelResponse, error) {
	if err := c.authz.allow(ctx, auth.ActionControl, req.GetModel()); err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	ms, err := c.repo.ReloadModel(ctx, req.GetModel())
	c.audit(ctx, "reload", req.GetModel(), err)
	if err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	return &corvidv1.ReloadModelResponse{Model: modelInfo(ms)}, nil
}

// RepositoryIndex lists the repository's models.
func (c *Control) RepositoryIndex(ctx context.Context, _ *corvidv1.RepositoryIndexRequest) (*corvidv1.RepositoryIndexResponse, error) {
	if err := c.authz.allow(ctx, auth.ActionControl, auth.AllModels); err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	resp := &corvidv1.RepositoryIndexResponse{}
	for _, e := range c.repo.Index() {
		resp.Models = append(resp.Models, &corvidv1.RepositoryEntry{Model: modelInfo(e.ModelStatus), Unloaded: e.Unloaded})
	}
	return resp, nil
}
