package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/config"
)

// noKeepAlive leaves no idle connection behind for goleak to find.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func controlClient(t *testing.T, addr string) corvidv1.ModelControlServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return corvidv1.NewModelControlServiceClient(conn)
}

// TestModelControl drives ModelControlService on the admin port, over gRPC
// (cleartext HTTP/2) and REST: unload takes a model out of service until
// load, reload swaps in a fresh copy, the index lists every model; the main
// port does not serve it by default.
func TestModelControl(t *testing.T) {
	model := digitsModel(t)
	in := start(t, modelsDir(t, map[string][]byte{"digits/1/model.onnx": model, "other/1/model.onnx": model}))
	ctx := context.Background()
	h := loadHeldout(t)
	x := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 1), 1, 64)}
	ctl := controlClient(t, in.srv.AdminAddr())

	un, err := ctl.UnloadModel(ctx, &corvidv1.UnloadModelRequest{Model: "digits"})
	if err != nil {
		t.Fatal(err)
	}
	if st := un.GetModel().GetVersions()[0].GetState(); st != corvidv1.ModelState_MODEL_STATE_UNLOADING && st != corvidv1.ModelState_MODEL_STATE_UNLOADED {
		t.Errorf("after unload: %v", st)
	}
	if _, err := in.client.Predict(ctx, "digits", x); status.Code(err) != codes.Unavailable {
		t.Errorf("Predict after unload: %v, want Unavailable", err)
	}
	if _, err := in.client.Predict(ctx, "other", x); err != nil {
		t.Errorf("the other model: %v", err)
	}
	idx, err := ctl.RepositoryIndex(ctx, &corvidv1.RepositoryIndexRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.GetModels()) != 2 || !idx.GetModels()[0].GetUnloaded() || idx.GetModels()[1].GetUnloaded() {
		t.Errorf("index %v: want digits unloaded, other loaded", idx)
	}

	// REST on the admin port.
	post := func(path string) (int, string) { return postTo(t, in.admin+path) }
	if code, body := post("/v1/repository/models/digits:load"); code != 200 || !strings.Contains(body, "MODEL_STATE_AVAILABLE") {
		t.Fatalf("REST load: %d %s", code, body)
	}
	if _, err := in.client.Predict(ctx, "digits", x); err != nil {
		t.Errorf("Predict after load: %v", err)
	}
	before, _ := in.client.ModelStatus(ctx, "digits")
	re, err := ctl.ReloadModel(ctx, &corvidv1.ReloadModelRequest{Model: "digits"})
	if err != nil {
		t.Fatal(err)
	}
	v := re.GetModel().GetVersions()[0]
	if v.GetState() != corvidv1.ModelState_MODEL_STATE_AVAILABLE || !v.GetLoadedAt().AsTime().After(before.GetVersions()[0].GetLoadedAt().AsTime()) {
		t.Errorf("reload: %v loaded at %v, before %v", v.GetState(), v.GetLoadedAt().AsTime(), before.GetVersions()[0].GetLoadedAt().AsTime())
	}
	if code, body := post("/v1/repository/models/nope:load"); code != 404 || !strings.Contains(body, "not in the repository") {
		t.Errorf("REST load of an unknown model: %d %s", code, body)
	}
	resp, err := noKeepAlive.Get(in.admin + "/v1/repository/index")
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		Models []json.RawMessage `json:"models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&index); err != nil || len(index.Models) != 2 {
		t.Errorf("REST index: %v, %d models", err, len(index.Models))
	}
	resp.Body.Close()

	// Not on the main ports by default.
	if _, err := controlClient(t, in.srv.GRPCAddr()).RepositoryIndex(ctx, &corvidv1.RepositoryIndexRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("control on the gRPC port: %v, want Unimplemented", err)
	}
	if code, body := postTo(t, in.rest+"/v1/repository/models/digits:unload"); code != 404 {
		t.Errorf("control on the REST port: %d %s, want 404", code, body)
	}
}

// TestModelControlSettings: model_control on serves it on the main ports
// too; off serves it nowhere.
func TestModelControlSettings(t *testing.T) {
	dir := modelsDir(t, map[string][]byte{"digits/1/model.onnx": digitsModel(t)})
	on := start(t, dir, func(c *config.Config) { c.ModelControl = "on" })
	if _, err := controlClient(t, on.srv.GRPCAddr()).RepositoryIndex(context.Background(), &corvidv1.RepositoryIndexRequest{}); err != nil {
		t.Errorf("model_control on, gRPC port: %v", err)
	}
	if resp, err := noKeepAlive.Get(on.rest + "/v1/repository/index"); err != nil || resp.StatusCode != 200 {
		t.Errorf("model_control on, REST port: %v", err)
	} else {
		resp.Body.Close()
	}
	off := start(t, dir, func(c *config.Config) { c.ModelControl = "off" })
	if _, err := controlClient(t, off.srv.AdminAddr()).RepositoryIndex(context.Background(), &corvidv1.RepositoryIndexRequest{}); err == nil {
		t.Error("model_control off: the admin port still serves it")
	}
	if resp, err := noKeepAlive.Get(off.admin + "/v1/repository/index"); err != nil || resp.StatusCode != 404 {
		t.Errorf("model_control off, admin REST: %v", err)
	} else {
		resp.Body.Close()
	}
}

func postTo(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := noKeepAlive.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
