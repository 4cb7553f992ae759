package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/config"
)

// versionState polls ModelStatus until version v of model is in state, or
// fails the test after 20 s.
func versionState(t *testing.T, in *instance, model string, v int64, state corvidv1.ModelState) *corvidv1.ModelVersionStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		info, err := in.client.ModelStatus(context.Background(), model)
		if err == nil {
			for _, vs := range info.GetVersions() {
				if vs.GetVersion() == v && vs.GetState() == state {
					return vs
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, _ := in.client.ModelStatus(context.Background(), model)
	t.Fatalf("%s v%d never became %v: %v", model, v, state, info)
	return nil
}

// TestHotReloadUnderLoad: clients predict without pause while v2 is copied
// in (slowly, in two halves, as a copy over the network would), v1 is
// removed and a corrupt v3 is added. No request fails, every response
// names a version that was serving, the swap to v2 happens, and v3 is
// FAILED with its error while v2 keeps serving (the default policy, latest
// 1, never lets a broken version replace a good one).
func TestHotReloadUnderLoad(t *testing.T) {
	model := digitsModel(t)
	dir := modelsDir(t, map[string][]byte{"digits/1/model.onnx": model})
	in := start(t, dir, func(c *config.Config) {
		c.RescanInterval = config.Duration(50 * time.Millisecond)
		c.Settle = config.Duration(300 * time.Millisecond)
	})
	h := loadHeldout(t)
	x := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 4), 4, 64)}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var total, failed atomic.Int64
	var seen sync.Map // version -> count
	var firstErr atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := in.client.Predict(context.Background(), "digits", x)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				n, _ := seen.LoadOrStore(resp.GetVersion(), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)

	// v2 arrives in two halves, 100 ms apart: it must not load half-written.
	v2 := filepath.Join(dir, "digits", "2", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(v2), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, model[:len(model)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	f, err := os.OpenFile(v2, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(model[len(model)/2:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	versionState(t, in, "digits", 2, corvidv1.ModelState_MODEL_STATE_AVAILABLE)

	if err := os.RemoveAll(filepath.Join(dir, "digits", "1")); err != nil {
		t.Fatal(err)
	}
	v3 := filepath.Join(dir, "digits", "3", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(v3), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v3, []byte("this is not an ONNX model"), 0o644); err != nil {
		t.Fatal(err)
	}
	failedV3 := versionState(t, in, "digits", 3, corvidv1.ModelState_MODEL_STATE_FAILED)
	time.Sleep(300 * time.Millisecond) // keep predicting after the failure
	cancel()
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the reload; first: %v", n, total.Load(), firstErr.Load())
	}
	counts := map[int64]int64{}
	seen.Range(func(k, v any) bool {
		counts[k.(int64)] = v.(*atomic.Int64).Load()
		return true
	})
	for v := range counts {
		if v != 1 && v != 2 {
			t.Errorf("a response names version %d, which never served", v)
		}
	}
	if counts[1] == 0 || counts[2] == 0 {
		t.Errorf("responses per version %v: want both v1 (before) and v2 (after the swap)", counts)
	}
	if e := failedV3.GetError(); !strings.Contains(e, "ONNX") && !strings.Contains(e, "onnx") {
		t.Errorf("v3 error %q, want one about the file not being ONNX", e)
	}
	info, err := in.client.ModelStatus(context.Background(), "digits")
	if err != nil {
		t.Fatal(err)
	}
	for _, vs := range info.GetVersions() {
		if vs.GetVersion() == 1 {
			t.Errorf("v1 still listed after its folder was removed: %v", vs)
		}
		if vs.GetVersion() == 2 && vs.GetState() != corvidv1.ModelState_MODEL_STATE_AVAILABLE {
			t.Errorf("v2 %v, want AVAILABLE", vs.GetState())
		}
	}
	t.Logf("%d requests, none failed; per version %v; v3: %s", total.Load(), counts, failedV3.GetError())

	// The whole model folder goes: the model drains and is then not found.
	if err := os.RemoveAll(filepath.Join(dir, "digits")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := in.client.Predict(context.Background(), "digits", x)
		return status.Code(err) == codes.NotFound
	})
}

// TestLabelsMetadataMLflow: labels route requests and move when model.yaml
// changes (a rejected edit keeps the previous settings and says why); a
// version's meta.yaml shows in ModelStatus; an MLflow model directory with
// the onnx flavor serves as it is.
func TestLabelsMetadataMLflow(t *testing.T) {
	model := digitsModel(t)
	dir := modelsDir(t, map[string][]byte{
		"digits/model.yaml":   []byte("labels: {stable: 1, canary: 2}\n"),
		"digits/1/model.onnx": model,
		"digits/1/meta.yaml":  []byte("training_data_sha256: 9f2c\nparams: {hidden: 64}\nsource_commit: abc123\n"),
		"digits/2/model.onnx": model,
		"digits/3/model.onnx": model,
		// MLflow's onnx flavor: MLmodel names the file.
		"mlflow/1/MLmodel":    []byte("artifact_path: model\nflavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.17.0\n  python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\n"),
		"mlflow/1/model.onnx": model,
		"notonnx/1/MLmodel":   []byte("flavors:\n  sklearn:\n    pickled_model: model.pkl\n"),
		"notonnx/1/model.pkl": []byte("pickle"),
	})
	in := start(t, dir, func(c *config.Config) {
		c.RescanInterval = config.Duration(50 * time.Millisecond)
		c.Settle = config.Duration(50 * time.Millisecond)
	})
	ctx := context.Background()
	h := loadHeldout(t)
	x := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 1), 1, 64)}
	predictLabel := func(label string) (int64, error) {
		resp, err := in.client.Predict(ctx, "digits", x, corvid.Label(label))
		if err != nil {
			return 0, err
		}
		return resp.GetVersion(), nil
	}
	for label, want := range map[string]int64{"stable": 1, "canary": 2, "": 3} {
		if v, err := predictLabel(label); err != nil || v != want {
			t.Errorf("label %q: version %d, %v; want %d", label, v, err, want)
		}
	}
	if _, err := predictLabel("nope"); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "canary, stable") {
		t.Errorf("unknown label: %v, want NotFound listing the labels", err)
	}
	info, err := in.client.ModelStatus(ctx, "digits")
	if err != nil {
		t.Fatal(err)
	}
	v1 := info.GetVersions()[0]
	if got := v1.GetLabels(); len(got) != 1 || got[0] != "stable" {
		t.Errorf("v1 labels %v, want [stable]", got)
	}
	if m := v1.GetMetadata(); m["source_commit"] != "abc123" || m["params"] != `{"hidden":64}` || m["training_data_sha256"] != "9f2c" {
		t.Errorf("v1 metadata %v", m)
	}
	if _, err := in.client.Predict(ctx, "mlflow", x); err != nil {
		t.Errorf("MLflow model: %v", err)
	}
	bad := versionState(t, in, "notonnx", 1, corvidv1.ModelState_MODEL_STATE_FAILED)
	if !strings.Contains(bad.GetError(), "no onnx flavor") {
		t.Errorf("MLflow model without the onnx flavor: %q", bad.GetError())
	}

	// Move stable to v3: atomic, no restart.
	write := func(text string) {
		p := filepath.Join(dir, "digits", "model.yaml")
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	write("labels: {stable: 3, canary: 2}\n")
	waitFor(t, func() bool { v, err := predictLabel("stable"); return err == nil && v == 3 })
	// A rejected edit keeps the labels and says why.
	write("labels: {stable: 1}\nbatching: {max_batch_size: -1}\n")
	waitFor(t, func() bool {
		info, err := in.client.ModelStatus(ctx, "digits")
		return err == nil && strings.Contains(info.GetConfigError(), "batching")
	})
	if v, err := predictLabel("stable"); err != nil || v != 3 {
		t.Errorf("after a rejected model.yaml, stable -> %d, %v; want 3", v, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not met within 20 s")
}

// TestConfigChangeReloads: a model.yaml edit that changes how versions
// load (batching here) reloads them in the background, and the new copy
// serves with it.
func TestConfigChangeReloads(t *testing.T) {
	dir := modelsDir(t, map[string][]byte{"digits/1/model.onnx": digitsModel(t)})
	in := start(t, dir, func(c *config.Config) {
		c.RescanInterval = config.Duration(50 * time.Millisecond)
		c.Settle = config.Duration(50 * time.Millisecond)
	})
	ctx := context.Background()
	info, err := in.client.ModelStatus(ctx, "digits")
	if err != nil {
		t.Fatal(err)
	}
	if info.GetVersions()[0].GetBatching() != nil {
		t.Fatal("batching before model.yaml asked for it")
	}
	if err := os.WriteFile(filepath.Join(dir, "digits", "model.yaml"), []byte("batching: {max_batch_size: 16, max_queue_delay: 1ms}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		info, err := in.client.ModelStatus(ctx, "digits")
		return err == nil && info.GetVersions()[0].GetBatching() != nil &&
			info.GetVersions()[0].GetState() == corvidv1.ModelState_MODEL_STATE_AVAILABLE
	})
	h := loadHeldout(t)
	if _, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 1), 1, 64)}); err != nil {
		t.Fatal(err)
	}
}
