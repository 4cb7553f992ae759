package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/config"
)

func anyLoading(models []*corvidv1.ModelInfo) bool {
	for _, m := range models {
		for _, v := range m.GetVersions() {
			if v.GetState() == corvidv1.ModelState_MODEL_STATE_LOADING {
				return true
			}
		}
	}
	return false
}

func argmax(p []float32) int64 {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return int64(best)
}

// TestDefaultModelHeldout runs the held-out set through the embedded model in
// batches over gRPC and checks the outputs' consistency and the accuracy.
// (Numerical agreement with ONNX Runtime is tests/python/test_reference.py.)
func TestDefaultModelHeldout(t *testing.T) {
	in := start(t, "")
	h := loadHeldout(t)
	ctx := context.Background()
	correct := 0
	for lo := 0; lo < len(h.Inputs); lo += 50 {
		hi := min(lo+50, len(h.Inputs))
		resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{
			"input": corvid.Float32Tensor(h.flatten(lo, hi), int64(hi-lo), 64),
		})
		if err != nil {
			t.Fatalf("Predict rows %d..%d: %v", lo, hi, err)
		}
		if resp.GetModel() != "digits" || resp.GetVersion() != 1 || resp.GetRequestId() == "" {
			t.Fatalf("response names model %q version %d request %q, want digits, 1 and an id", resp.GetModel(), resp.GetVersion(), resp.GetRequestId())
		}
		labels, err := corvid.AsInt64(resp.GetOutputs()["label"])
		if err != nil {
			t.Fatal(err)
		}
		probs, err := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
		if err != nil {
			t.Fatal(err)
		}
		if len(labels) != hi-lo || len(probs) != (hi-lo)*10 {
			t.Fatalf("got %d labels and %d probabilities for %d rows", len(labels), len(probs), hi-lo)
		}
		for i, label := range labels {
			row := probs[i*10 : (i+1)*10]
			var sum float64
			for _, p := range row {
				sum += float64(p)
			}
			if math.Abs(sum-1) > 1e-4 {
				t.Errorf("row %d: probabilities sum to %v, want 1", lo+i, sum)
			}
			if got := argmax(row); got != label {
				t.Errorf("row %d: label %d but argmax(probabilities) %d", lo+i, label, got)
			}
			if label == h.Labels[lo+i] {
				correct++
			}
		}
	}
	acc := float64(correct) / float64(len(h.Labels))
	t.Logf("held-out accuracy: %.4f (%d/%d)", acc, correct, len(h.Labels))
	if acc < 0.95 {
		t.Errorf("accuracy %.4f, want >= 0.95", acc)
	}
}

// TestBatchSizes checks that every batch size from 1 to the maximum gives the
// same rows as batch 1 (padding to compiled buckets must not leak).
func TestBatchSizes(t *testing.T) {
	in := start(t, "")
	h := loadHeldout(t)
	ctx := context.Background()
	single := make([][]float32, 0, 64)
	for i := range 64 {
		resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[i], 1, 64)})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
		single = append(single, p)
	}
	for n := 1; n <= 64; n++ {
		resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, n), int64(n), 64)})
		if err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		p, _ := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
		for i := range n {
			for j := range 10 {
				if d := math.Abs(float64(p[i*10+j] - single[i][j])); d > 1e-6 {
					t.Fatalf("batch %d row %d class %d: %v, batch 1 gave %v", n, i, j, p[i*10+j], single[i][j])
				}
			}
		}
	}
}

func TestModelStatusAndList(t *testing.T) {
	in := start(t, "")
	ctx := context.Background()
	info, err := in.client.ModelStatus(ctx, "digits")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(digitsModel(t))
	if len(info.GetVersions()) != 1 {
		t.Fatalf("digits has %d versions, want 1", len(info.GetVersions()))
	}
	v := info.GetVersions()[0]
	want := &corvidv1.ModelVersionStatus{
		Version: 1,
		State:   corvidv1.ModelState_MODEL_STATE_AVAILABLE,
		Sha256:  hex.EncodeToString(sum[:]),
		Inputs: []*corvidv1.TensorInfo{
			{Name: "input", Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{-1, 64}},
		},
		Outputs: []*corvidv1.TensorInfo{
			{Name: "label", Dtype: corvidv1.DataType_DATA_TYPE_INT64, Shape: []int64{-1}},
			{Name: "probabilities", Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{-1, 10}},
		},
		ExecutionMode: corvidv1.ExecutionMode_EXECUTION_MODE_FP32,
		MaxBatchSize:  64,
		KernelTier:    kernels.Active().String(),
	}
	if diff := cmp.Diff(want, v, protocmp.Transform(), protocmp.IgnoreFields(&corvidv1.ModelVersionStatus{}, "loaded_at", "load_duration")); diff != "" {
		t.Errorf("ModelStatus(digits) mismatch (-want +got):\n%s", diff)
	}
	if v.GetLoadedAt() == nil || v.GetLoadDuration() == nil {
		t.Errorf("loaded_at and load_duration must be set, got %v and %v", v.GetLoadedAt(), v.GetLoadDuration())
	}
	models, err := in.client.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 || models[0].GetName() != "digits" {
		t.Errorf("ListModels = %v, want just digits", models)
	}
}

func TestHealthAndAdmin(t *testing.T) {
	in := start(t, "")
	conn := grpcConn(t, in)
	// Reflection lists the API, so grpcurl and similar tools work unaided.
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	rs.CloseSend()
	for _, want := range []string{"corvid.v1.InferenceService", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v, want %s among them", services, want)
		}
	}
	if got := healthStatus(t, conn); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, want SERVING", got)
	}
	for _, tc := range []struct {
		url  string
		code int
		body string
	}{
		{in.admin + "/healthz", 200, "ok"},
		{in.admin + "/readyz", 200, "ready"},
		{in.rest + "/openapi.json", 200, `"/v1/models/{model}:predict"`},
	} {
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.url, resp.StatusCode, b, tc.code, tc.body)
		}
	}
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
}

// restPost sends body to path and decodes the JSON answer.
func restPost(t *testing.T, url string, body []byte, header map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST %s: %d, body %q is not JSON: %v", url, resp.StatusCode, b, err)
	}
	return resp.StatusCode, out, resp.Header
}

func TestRESTPredict(t *testing.T) {
	in := start(t, "")
	h := loadHeldout(t)
	// The same request over gRPC gives the reference answer.
	want, err := in.client.Predict(context.Background(), "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[0], 1, 64)})
	if err != nil {
		t.Fatal(err)
	}
	wantProbs, _ := corvid.AsFloat32(want.GetOutputs()["probabilities"])
	wantLabel, _ := corvid.AsInt64(want.GetOutputs()["label"])

	body, err := os.ReadFile(filepath.Join("..", "examples", "digits", "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/models/digits:predict", "/v1/models/digits/versions/1:predict"} {
		code, got, hdr := restPost(t, in.rest+path, body, map[string]string{"X-Request-Id": "rest-1"})
		if code != 200 {
			t.Fatalf("POST %s = %d %v", path, code, got)
		}
		raw, _ := json.Marshal(got)
		var resp corvidv1.PredictResponse
		if err := protojson.Unmarshal(raw, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.GetVersion() != 1 || resp.GetRequestId() != "rest-1" || hdr.Get("X-Request-Id") != "rest-1" {
			t.Errorf("POST %s: version %d, request id %q, header %q; want 1, rest-1, rest-1", path, resp.GetVersion(), resp.GetRequestId(), hdr.Get("X-Request-Id"))
		}
		// A JSON caller gets typed fields, not raw bytes.
		probs := resp.GetOutputs()["probabilities"].GetFp32Values()
		labels := resp.GetOutputs()["label"].GetInt64Values()
		if diff := cmp.Diff(wantProbs, probs); diff != "" || !cmp.Equal(wantLabel, labels) {
			t.Errorf("POST %s outputs differ from gRPC: probabilities (-grpc +rest) %s, labels %v vs %v", path, diff, wantLabel, labels)
		}
	}
	resp, err := http.Get(in.rest + "/v1/models/digits")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "MODEL_STATE_AVAILABLE") {
		t.Errorf("GET /v1/models/digits = %d %s", resp.StatusCode, b)
	}
}

func raw(n int) []byte { return make([]byte, n) }

// TestErrors checks every error a caller can provoke, over gRPC and REST: the
// code, the HTTP status, and that the message names what was expected and what
// was received. The server keeps serving after each.
func TestErrors(t *testing.T) {
	dir := modelsDir(t, map[string][]byte{
		"digits/1/model.onnx": digitsModel(t),
		"broken/1/model.onnx": digitsModel(t)[:100],
	})
	in := start(t, dir)
	fp32 := func(shape ...int64) *corvidv1.Tensor {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		if n < 0 || n > 1<<20 {
			n = 0
		}
		return &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: shape, Raw: raw(int(4 * n))}
	}
	good := map[string]*corvidv1.Tensor{"input": fp32(1, 64)}
	tests := []struct {
		name     string
		req      *corvidv1.PredictRequest
		code     codes.Code
		httpCode int
		contains []string
	}{
		{"unknown model", &corvidv1.PredictRequest{Model: "nope", Inputs: good}, codes.NotFound, 404, []string{`"nope"`}},
		{"unknown version", &corvidv1.PredictRequest{Model: "digits", VersionSelector: &corvidv1.PredictRequest_Version{Version: 7}, Inputs: good}, codes.NotFound, 404, []string{"version 7", "versions: 1"}},
		{"unknown label", &corvidv1.PredictRequest{Model: "digits", VersionSelector: &corvidv1.PredictRequest_VersionLabel{VersionLabel: "canary"}, Inputs: good}, codes.NotFound, 404, []string{`"canary"`}},
		{"invalid model name", &corvidv1.PredictRequest{Model: "../x", Inputs: good}, codes.InvalidArgument, 400, []string{`"../x"`}},
		{"long model name", &corvidv1.PredictRequest{Model: strings.Repeat("a", 1024), Inputs: good}, codes.InvalidArgument, 400, []string{"64 characters"}},
		{"model failed to load", &corvidv1.PredictRequest{Model: "broken", Inputs: good}, codes.Unavailable, 503, []string{"FAILED"}},
		{"no inputs", &corvidv1.PredictRequest{Model: "digits"}, codes.InvalidArgument, 400, []string{"no inputs", `"input"`}},
		{"wrong input name", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"pixels": fp32(1, 64)}}, codes.InvalidArgument, 400, []string{`"pixels"`, "inputs: input"}},
		{"wrong dtype", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": {Dtype: corvidv1.DataType_DATA_TYPE_INT64, Shape: []int64{1, 64}, Raw: raw(512)}}}, codes.InvalidArgument, 400, []string{"int64", "fp32"}},
		{"wrong rank", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": fp32(64)}}, codes.InvalidArgument, 400, []string{"[64]", "64"}},
		{"wrong width", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": fp32(1, 63)}}, codes.InvalidArgument, 400, []string{"63", "64"}},
		{"batch over max", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": fp32(65, 64)}}, codes.InvalidArgument, 400, []string{"65", "64"}},
		{"empty batch", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": fp32(0, 64)}}, codes.InvalidArgument, 400, []string{"0"}},
		{"negative dim", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": {Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{-1, 64}}}}, codes.InvalidArgument, 400, []string{"-1"}},
		{"overflowing shape", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": {Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1 << 40, 1 << 40}}}}, codes.InvalidArgument, 400, []string{"elements"}},
		{"raw length", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": {Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1, 64}, Raw: raw(255)}}}, codes.InvalidArgument, 400, []string{"255 bytes", "256"}},
		{"typed count", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": {Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1, 64}, Fp32Values: make([]float32, 10)}}}, codes.InvalidArgument, 400, []string{"10 elements", "64"}},
		{"typed field of another dtype", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": {Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1, 2}, Int64Values: []int64{1, 2}}}}, codes.InvalidArgument, 400, []string{"int64_values", "fp32_values"}},
		{"no dtype", &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": {Shape: []int64{1, 64}, Raw: raw(256)}}}, codes.InvalidArgument, 400, []string{"DATA_TYPE_UNSPECIFIED"}},
		{"unknown output", &corvidv1.PredictRequest{Model: "digits", Inputs: good, OutputFilter: []string{"logits"}}, codes.InvalidArgument, 400, []string{`"logits"`, "probabilities"}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := in.client.PredictRequest(ctx, tt.req)
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("gRPC code = %v (%q), want %v", st.Code(), st.Message(), tt.code)
			}
			for _, s := range tt.contains {
				if !strings.Contains(st.Message(), s) {
					t.Errorf("gRPC message %q does not mention %q", st.Message(), s)
				}
			}
			// The same request over REST (model and version travel in the path).
			path := "/v1/models/" + tt.req.GetModel() + ":predict"
			if v := tt.req.GetVersion(); v != 0 {
				path = fmt.Sprintf("/v1/models/%s/versions/%d:predict", tt.req.GetModel(), v)
			}
			if strings.Contains(tt.req.GetModel(), "/") {
				return // not expressible as a single path segment
			}
			body, err := protojson.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			code, got, _ := restPost(t, in.rest+path, body, nil)
			if code != tt.httpCode {
				t.Errorf("REST %s = %d %v, want %d", path, code, got, tt.httpCode)
			}
			if msg, _ := got["message"].(string); msg != st.Message() {
				t.Errorf("REST message %q, gRPC message %q: want the same", msg, st.Message())
			}
		})
	}
	// The server still serves after all of that.
	if _, err := in.client.Predict(ctx, "digits", good); err != nil {
		t.Fatalf("Predict after errors: %v", err)
	}
	// ModelStatus of the broken model says why.
	info, err := in.client.ModelStatus(ctx, "broken")
	if err != nil {
		t.Fatal(err)
	}
	if v := info.GetVersions()[0]; v.GetState() != corvidv1.ModelState_MODEL_STATE_FAILED || v.GetError() == "" {
		t.Errorf("broken v1: state %v error %q, want FAILED with an error", v.GetState(), v.GetError())
	}
	if _, err := in.client.ModelStatus(ctx, "nope"); status.Code(err) != codes.NotFound {
		t.Errorf("ModelStatus(nope) = %v, want NotFound", err)
	}
}

func TestRESTBadBodies(t *testing.T) {
	in := start(t, "", func(c *config.Config) { c.MaxRecvMsgBytes = 64 << 10 })
	for _, tc := range []struct {
		name string
		body []byte
		code int
	}{
		{"truncated JSON", []byte(`{"inputs": {"input": {"dtype": "DATA_TYPE_FP32", "shape": [1, 64], "fp32Values": [1, 2`), 400},
		{"deeply nested", []byte(strings.Repeat(`{"inputs":`, 5000) + strings.Repeat("}", 5000)), 400},
		{"unknown field", []byte(`{"inptus": {}}`), 400},
		{"over the limit", []byte(`{"requestId": "` + strings.Repeat("x", 70<<10) + `"}`), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, got, _ := restPost(t, in.rest+"/v1/models/digits:predict", tc.body, nil)
			if code != tc.code {
				t.Errorf("status %d %v, want %d", code, got, tc.code)
			}
		})
	}
	t.Run("over the limit, chunked", func(t *testing.T) {
		body := io.MultiReader(strings.NewReader(`{"requestId": "`), strings.NewReader(strings.Repeat("x", 70<<10)), strings.NewReader(`"}`))
		resp, err := http.Post(in.rest+"/v1/models/digits:predict", "application/json", body) // unknown length: chunked
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	})
	body, _ := os.ReadFile(filepath.Join("..", "examples", "digits", "request.json"))
	if code, got, _ := restPost(t, in.rest+"/v1/models/digits:predict", body, nil); code != 200 {
		t.Errorf("good request after bad ones: %d %v", code, got)
	}
	// gRPC: a message over the limit is refused before it is decoded.
	big := &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{300, 64}, Raw: make([]byte, 300*64*4)}
	_, err := in.client.Predict(context.Background(), "digits", map[string]*corvidv1.Tensor{"input": big})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("Predict with a 77 KB message and a 64 KB limit = %v, want ResourceExhausted", err)
	}
	if _, err := in.client.Predict(context.Background(), "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(make([]float32, 64), 1, 64)}); err != nil {
		t.Errorf("Predict after an oversized message: %v", err)
	}
}

// TestGracefulShutdown: on stop, health goes NOT_SERVING at once, an open
// stream still gets its answers, and Serve returns once it closes.
func TestGracefulShutdown(t *testing.T) {
	in := start(t, "", func(c *config.Config) { c.ShutdownGrace = config.Duration(20 * time.Second) })
	ctx := context.Background()
	stream, err := corvidv1.NewInferenceServiceClient(grpcConn(t, in)).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &corvidv1.StreamRequest{Request: &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(make([]float32, 64), 1, 64)}}}
	roundTrip := func() {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || resp.GetResponse() == nil {
			t.Fatalf("stream round trip: %v %v", resp, err)
		}
	}
	roundTrip()
	stopped := make(chan error, 1)
	begun := time.Now()
	go func() { stopped <- in.stop() }()
	for {
		resp, err := http.Get(in.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Since(begun) > 10*time.Second {
			t.Fatal("/readyz still ready 10 s after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while a stream was open", err)
	default:
	}
	roundTrip() // the in-flight stream is still served
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("Recv after CloseSend = %v, want EOF", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if took := time.Since(begun); took > 15*time.Second {
		t.Errorf("shutdown took %v, want it to end when the stream closed", took)
	}
}

// TestStream sends 1,000 requests on one stream, one in ten malformed: every
// request gets exactly one response with its id; good ones carry the outputs
// unary Predict gives.
func TestStream(t *testing.T) {
	in := start(t, "")
	h := loadHeldout(t)
	ctx := context.Background()
	want := make([]*corvidv1.PredictResponse, 50)
	for i := range want {
		resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[i], 1, 64)})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = resp
	}
	stream, err := corvidv1.NewInferenceServiceClient(grpcConn(t, in)).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	go func() {
		for i := range n {
			req := &corvidv1.PredictRequest{Model: "digits", RequestId: fmt.Sprintf("r%d", i),
				Inputs: map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[i%50], 1, 64)}}
			if i%10 == 3 {
				req.Inputs["input"].Shape = []int64{1, 63}
			}
			if err := stream.Send(&corvidv1.StreamRequest{Request: req}); err != nil {
				t.Errorf("Send %d: %v", i, err)
				return
			}
		}
		stream.CloseSend()
	}()
	seen := map[string]bool{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Recv after %d responses: %v", len(seen), err)
		}
		id := resp.GetRequestId()
		if seen[id] {
			t.Fatalf("second response for %s", id)
		}
		seen[id] = true
		var i int
		if _, err := fmt.Sscanf(id, "r%d", &i); err != nil {
			t.Fatalf("unexpected id %q", id)
		}
		if i%10 == 3 {
			if c := codes.Code(resp.GetError().GetCode()); c != codes.InvalidArgument || !strings.Contains(resp.GetError().GetMessage(), "63") {
				t.Errorf("%s: got %v %q, want InvalidArgument naming 63", id, c, resp.GetError().GetMessage())
			}
			continue
		}
		got := resp.GetResponse()
		if got == nil {
			t.Fatalf("%s: error %v, want outputs", id, resp.GetError())
		}
		w := want[i%50]
		if diff := cmp.Diff(w.GetOutputs(), got.GetOutputs(), protocmp.Transform()); diff != "" || got.GetVersion() != 1 {
			t.Fatalf("%s: outputs differ from unary Predict (-unary +stream):\n%s", id, diff)
		}
	}
	if len(seen) != n {
		t.Errorf("got %d responses, want %d", len(seen), n)
	}
}

// TestSDKStream checks the SDK's stream helper against the real server.
func TestSDKStream(t *testing.T) {
	in := start(t, "")
	h := loadHeldout(t)
	ctx := context.Background()
	s, err := in.client.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shape := []int64{1, 64}
			if i%4 == 0 {
				shape = []int64{2, 32}
			}
			resp, err := s.Predict(ctx, &corvidv1.PredictRequest{Model: "digits", Inputs: map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[i], shape...)}})
			if i%4 == 0 {
				if status.Code(err) != codes.InvalidArgument {
					t.Errorf("request %d: %v, want InvalidArgument", i, err)
				}
				return
			}
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			labels, _ := corvid.AsInt64(resp.GetOutputs()["label"])
			probs, _ := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
			if len(labels) != 1 || labels[0] != argmax(probs) {
				t.Errorf("request %d: label %v, probabilities %v", i, labels, probs)
			}
		}()
	}
	wg.Wait()
}

// TestConcurrentPredict: 64 goroutines x 200 Predicts, every output checked
// against the serial answer for the same input.
func TestConcurrentPredict(t *testing.T) {
	in := start(t, "")
	h := loadHeldout(t)
	ctx := context.Background()
	const samples = 32
	want := make([][]float32, samples)
	for i := range want {
		resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[i], 1, 64)})
		if err != nil {
			t.Fatal(err)
		}
		want[i], _ = corvid.AsFloat32(resp.GetOutputs()["probabilities"])
	}
	var wg sync.WaitGroup
	var failures sync.Map
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				i := (g*7 + k) % samples
				resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.Inputs[i], 1, 64)})
				if err != nil {
					failures.Store(fmt.Sprintf("g%d k%d", g, k), err.Error())
					return
				}
				got, err := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
				if err != nil || !cmp.Equal(got, want[i]) {
					failures.Store(fmt.Sprintf("g%d k%d", g, k), fmt.Sprintf("sample %d: got %v, want %v (%v)", i, got, want[i], err))
					return
				}
			}
		}()
	}
	wg.Wait()
	failures.Range(func(k, v any) bool {
		t.Errorf("%v: %v", k, v)
		return true
	})
}

// TestBadVersionBesideGood: a truncated version 2 next to a good version 1 —
// version 1 serves, version 2 is FAILED with a readable error.
func TestBadVersionBesideGood(t *testing.T) {
	good := digitsModel(t)
	dir := modelsDir(t, map[string][]byte{
		"digits/1/model.onnx":  good,
		"digits/2/model.onnx":  good[:len(good)/2],
		"digits/notaversion/x": []byte("ignored"),
	})
	in := start(t, dir)
	ctx := context.Background()
	resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(make([]float32, 64), 1, 64)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion() != 1 {
		t.Errorf("served by version %d, want 1 (2 failed)", resp.GetVersion())
	}
	_, err = in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(make([]float32, 64), 1, 64)}, corvid.Version(2))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Predict on version 2 = %v, want Unavailable", err)
	}
	info, err := in.client.ModelStatus(ctx, "digits")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.GetVersions()) != 2 {
		t.Fatalf("versions %v, want 1 and 2", info.GetVersions())
	}
	v1, v2 := info.GetVersions()[0], info.GetVersions()[1]
	if v1.GetState() != corvidv1.ModelState_MODEL_STATE_AVAILABLE {
		t.Errorf("v1 state %v, want AVAILABLE", v1.GetState())
	}
	if v2.GetState() != corvidv1.ModelState_MODEL_STATE_FAILED || v2.GetError() == "" || v2.GetSha256() == "" {
		t.Errorf("v2 = %v, want FAILED with an error and a hash", v2)
	}
	t.Logf("v2 error: %s", v2.GetError())
	// A model whose every version serves keeps the server ready.
	if got := healthStatus(t, grpcConn(t, in)); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, want SERVING (v1 serves)", got)
	}
}

// TestNotReadyWhenAModelCannotServe: strict readiness — a model with no
// available version keeps /readyz and gRPC health from reporting ready, while
// the good model still serves.
func TestNotReadyWhenAModelCannotServe(t *testing.T) {
	dir := modelsDir(t, map[string][]byte{
		"digits/1/model.onnx": digitsModel(t),
		"broken/1/model.onnx": []byte("\x80\x04\x95pickle"),
	})
	in := start(t, dir)
	if got := healthStatus(t, grpcConn(t, in)); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health = %v, want NOT_SERVING", got)
	}
	resp, err := http.Get(in.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"broken"`) {
		t.Errorf("/readyz = %d %q, want 503 naming broken", resp.StatusCode, b)
	}
	if _, err := in.client.Predict(context.Background(), "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(make([]float32, 64), 1, 64)}); err != nil {
		t.Errorf("digits must still serve: %v", err)
	}
	info, err := in.client.ModelStatus(context.Background(), "broken")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("broken v1 error: %s", info.GetVersions()[0].GetError())
}

// TestPrequantizedModel serves a model quantized before export (one
// MatMulInteger with int8 weights, as ONNX Runtime's quantize_dynamic writes
// them): ModelStatus names the mode and kernel tier, and Predict computes the
// exact integer product.
func TestPrequantizedModel(t *testing.T) {
	w := []int8{1, -2, 3, -128, 127, 0, 5, 6, -7, 8, 9, 10}
	raw := make([]byte, len(w))
	for i, v := range w {
		raw[i] = byte(v)
	}
	info := valueInfo
	model := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
		Name:        "mmi",
		Node:        []*onnxpb.NodeProto{{Name: "mm", OpType: "MatMulInteger", Input: []string{"a", "w", "az"}, Output: []string{"y"}}},
		Initializer: []*onnxpb.TensorProto{{Name: "w", Dims: []int64{4, 3}, DataType: 3, RawData: raw}, {Name: "az", DataType: 2, RawData: []byte{128}}},
		Input:       []*onnxpb.ValueInfoProto{info("a", 2, -1, 4)},
		Output:      []*onnxpb.ValueInfoProto{info("y", 6, -1, 3)},
	}}
	data, err := proto.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	in := start(t, modelsDir(t, map[string][]byte{"mmi/1/model.onnx": data}))
	ctx := context.Background()
	info2, err := in.client.ModelStatus(ctx, "mmi")
	if err != nil {
		t.Fatal(err)
	}
	v := info2.GetVersions()[0]
	if v.GetExecutionMode() != corvidv1.ExecutionMode_EXECUTION_MODE_INT8_PREQUANTIZED || v.GetKernelTier() != kernels.Active().String() {
		t.Errorf("mode %v tier %q, want INT8_PREQUANTIZED and %q", v.GetExecutionMode(), v.GetKernelTier(), kernels.Active())
	}
	a := []uint8{0, 255, 128, 7, 200, 1, 64, 128}
	resp, err := in.client.Predict(ctx, "mmi", map[string]*corvidv1.Tensor{"a": corvid.Uint8Tensor(a, 2, 4)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := corvid.AsInt32(resp.GetOutputs()["y"])
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		for j := range 3 {
			want := int32(0)
			for k := range 4 {
				want += (int32(a[i*4+k]) - 128) * int32(w[k*3+j])
			}
			if got[i*3+j] != want {
				t.Errorf("y[%d][%d] = %d, want %d", i, j, got[i*3+j], want)
			}
		}
	}
}
