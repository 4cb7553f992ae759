package api

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/middleware"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/repository"
	"github.com/corvidml/corvid/server/tensor"
)

// echo is a Servable returning its inputs.
type echo struct{}

func (echo) Run(_ context.Context, in map[string]*tensor.Tensor, _ []string) (map[string]*tensor.Tensor, error) {
	return in, nil
}
func (echo) Inputs() []onnx.ValueInfo  { return nil }
func (echo) Outputs() []onnx.ValueInfo { return nil }
func (echo) MaxBatch() int             { return 1 }
func (echo) ExecutionMode() string     { return "fp32" }
func (echo) Close()                    {}

// TestPolicy: the same policy decides Predict, ModelStatus, ListModels
// (filtered) and the control service; refusals are PermissionDenied naming
// who, what and which model, and are audited.
func TestPolicy(t *testing.T) {
	repo := repository.New(fstest.MapFS{
		"digits/1/model.onnx": {Data: []byte("x")},
		"fraud/1/model.onnx":  {Data: []byte("x")},
	}, func(context.Context, repository.LoadRequest) (repository.Servable, error) { return echo{}, nil }, repository.Options{})
	if _, err := repo.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	policy, err := auth.ParsePolicy([]byte(`rules:
  - {identity: "spiffe://corvid.local/team-a/*", models: [digits], actions: [predict, status]}
  - {identity: admin, source: mtls, models: ["*"], actions: [predict, status, control]}
`))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	s := New(repo, Options{Policy: policy, Logger: log, StreamConcurrency: 1})
	c := NewControl(repo, log)
	c.SetPolicy(policy)
	as := func(name, source string) context.Context {
		return middleware.WithIdentity(context.Background(), auth.Identity{Name: name, Source: source})
	}
	teamA := as("spiffe://corvid.local/team-a/svc", auth.SourceMTLS)
	admin := as("admin", auth.SourceMTLS)
	jwtAdmin := as("admin", auth.SourceJWT)
	in := map[string]*corvidv1.Tensor{"x": {Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1}, Fp32Values: []float32{1}}}

	if _, err := s.Predict(teamA, &corvidv1.PredictRequest{Model: "digits", Inputs: in}); err != nil {
		t.Errorf("team-a predict digits: %v", err)
	}
	for _, tc := range []struct {
		ctx   context.Context
		model string
	}{{teamA, "fraud"}, {jwtAdmin, "digits"}, {context.Background(), "digits"}} {
		_, err := s.Predict(tc.ctx, &corvidv1.PredictRequest{Model: tc.model, Inputs: in})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tc.model) {
			t.Errorf("predict %s: %v, want PermissionDenied naming the model", tc.model, err)
		}
	}
	if _, err := s.ModelStatus(teamA, &corvidv1.ModelStatusRequest{Model: "fraud"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("team-a status of fraud: %v", err)
	}
	list, err := s.ListModels(teamA, &corvidv1.ListModelsRequest{})
	if err != nil || len(list.GetModels()) != 1 || list.GetModels()[0].GetName() != "digits" {
		t.Errorf("team-a list: %v %v, want only digits", list, err)
	}
	if _, err := c.UnloadModel(teamA, &corvidv1.UnloadModelRequest{Model: "digits"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("team-a unload: %v, want PermissionDenied", err)
	}
	if _, err := c.ReloadModel(admin, &corvidv1.ReloadModelRequest{Model: "digits"}); err != nil {
		t.Errorf("admin reload: %v", err)
	}
	if _, err := c.RepositoryIndex(admin, &corvidv1.RepositoryIndexRequest{}); err != nil {
		t.Errorf("admin index: %v", err)
	}
	if _, err := c.RepositoryIndex(teamA, &corvidv1.RepositoryIndexRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("team-a index: %v", err)
	}
	audit := logs.String()
	for _, want := range []string{`"outcome":"denied by policy"`, `"action":"reload"`, `"outcome":"ok"`, `"identity":"admin"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %s:\n%s", want, audit)
		}
	}
}
