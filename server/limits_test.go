package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/config"
)

// TestMaxRequestElements: a request whose shapes declare more elements
// than max_request_elements is refused before decoding, as
// RESOURCE_EXHAUSTED naming the limit; a shape whose element count
// overflows int64 is an invalid argument.
func TestMaxRequestElements(t *testing.T) {
	in := start(t, "", func(c *config.Config) { c.MaxRequestElements = 100 })
	ctx := context.Background()
	h := loadHeldout(t)
	if _, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 1), 1, 64)}); err != nil {
		t.Fatalf("64 elements: %v", err)
	}
	_, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 2), 2, 64)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_request_elements") {
		t.Errorf("128 elements: %v, want RESOURCE_EXHAUSTED naming max_request_elements", err)
	}
	huge := &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1 << 40, 1 << 40}, Raw: make([]byte, 4)}
	if _, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": huge}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("overflowing shape: %v, want INVALID_ARGUMENT", err)
	}
}
