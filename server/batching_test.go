package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// TestDynamicBatching: 200 concurrent single-row requests to a model with
// batching on are run in batches of more than one row (ModelStatus says
// so), and every caller gets exactly the outputs its row gets alone; a
// request whose deadline passes in the queue gets DeadlineExceeded; a full
// queue refuses at once with UNAVAILABLE and says why.
func TestDynamicBatching(t *testing.T) {
	model := digitsModel(t)
	in := start(t, modelsDir(t, map[string][]byte{
		"digits/1/model.onnx":  model,
		"batched/1/model.onnx": model,
		"batched/model.yaml":   []byte("batching: {max_batch_size: 32, max_queue_delay: 5ms}\n"),
		"slow/1/model.onnx":    model,
		"slow/model.yaml":      []byte("instances: 1\nbatching: {max_batch_size: 8, max_queue_delay: 2s, max_queue_size: 2}\n"),
	}))
	ctx := context.Background()
	h := loadHeldout(t)
	const n = 200
	want := make([][]float32, n)
	for i := range n {
		resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(i%len(h.Labels), i%len(h.Labels)+1), 1, 64)})
		if err != nil {
			t.Fatal(err)
		}
		want[i], _ = corvid.AsFloat32(resp.GetOutputs()["probabilities"])
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := i % len(h.Labels)
			resp, err := in.client.Predict(ctx, "batched", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(row, row+1), 1, 64)})
			if err != nil {
				errs <- err.Error()
				return
			}
			got, _ := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
			for j := range got {
				if d := got[j] - want[i][j]; d > 1e-6 || d < -1e-6 {
					errs <- "a caller got another row's outputs"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	info, err := in.client.ModelStatus(ctx, "batched")
	if err != nil {
		t.Fatal(err)
	}
	b := info.GetVersions()[0].GetBatching()
	if b == nil || b.GetRequests() != n || b.GetBatches() >= n || b.GetMaxBatchRows() < 2 {
		t.Fatalf("batching status %v: want %d requests in fewer batches", b, n)
	}
	t.Logf("%d requests in %d batches, mean %.1f rows, largest %d; queue time p50 %v",
		b.GetRequests(), b.GetBatches(), b.GetMeanBatchRows(), b.GetMaxBatchRows(), b.GetQueueTimeP50().AsDuration())

	// The slow model waits 2 s for more rows before it runs a batch.
	x := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 1), 1, 64)}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = in.client.Predict(short, "slow", x)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("deadline in the queue: %v, want DeadlineExceeded", err)
	}
	// Fill the queue (2 requests), then one more is refused at once.
	var fill sync.WaitGroup
	for range 2 {
		fill.Add(1)
		go func() {
			defer fill.Done()
			in.client.Predict(ctx, "slow", x)
		}()
	}
	waitFor(t, func() bool {
		info, err := in.client.ModelStatus(ctx, "slow")
		return err == nil && info.GetVersions()[0].GetBatching().GetQueueDepth() == 2
	})
	start := time.Now()
	_, err = in.client.Predict(ctx, "slow", x)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "queue is full") || time.Since(start) > time.Second {
		t.Errorf("full queue: %v after %v, want UNAVAILABLE at once saying the queue is full", err, time.Since(start))
	}
	fill.Wait()
}
