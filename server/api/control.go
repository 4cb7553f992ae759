package api

import (
	"context"
	"log/slog"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/repository"
)

// Control implements corvid.v1.ModelControlService over a model repository.
type Control struct {
	corvidv1.UnimplementedModelControlServiceServer

	repo *repository.Repository
	log  *slog.Logger
}

// NewControl returns the control service of repo.
func NewControl(repo *repository.Repository, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Control{repo: repo, log: log}
}

// LoadModel loads a model and reports it.
func (c *Control) LoadModel(ctx context.Context, req *corvidv1.LoadModelRequest) (*corvidv1.LoadModelResponse, error) {
	ms, err := c.repo.LoadModel(ctx, req.GetModel())
	if err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	c.log.InfoContext(ctx, "model loaded by request", "model", req.GetModel())
	return &corvidv1.LoadModelResponse{Model: modelInfo(ms)}, nil
}

// UnloadModel unloads a model and reports it.
func (c *Control) UnloadModel(ctx context.Context, req *corvidv1.UnloadModelRequest) (*corvidv1.UnloadModelResponse, error) {
	ms, err := c.repo.UnloadModel(req.GetModel())
	if err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	c.log.InfoContext(ctx, "model unloaded by request", "model", req.GetModel())
	return &corvidv1.UnloadModelResponse{Model: modelInfo(ms)}, nil
}

// ReloadModel reloads a model's versions and reports it.
func (c *Control) ReloadModel(ctx context.Context, req *corvidv1.ReloadModelRequest) (*corvidv1.ReloadModelResponse, error) {
	ms, err := c.repo.ReloadModel(ctx, req.GetModel())
	if err != nil {
		return nil, toStatus(ctx, c.log, err)
	}
	c.log.InfoContext(ctx, "model reloaded by request", "model", req.GetModel())
	return &corvidv1.ReloadModelResponse{Model: modelInfo(ms)}, nil
}

// RepositoryIndex lists the repository's models.
func (c *Control) RepositoryIndex(context.Context, *corvidv1.RepositoryIndexRequest) (*corvidv1.RepositoryIndexResponse, error) {
	resp := &corvidv1.RepositoryIndexResponse{}
	for _, e := range c.repo.Index() {
		resp.Models = append(resp.Models, &corvidv1.RepositoryEntry{Model: modelInfo(e.ModelStatus), Unloaded: e.Unloaded})
	}
	return resp, nil
}
