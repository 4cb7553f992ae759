package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

var statusModels = []*corvidv1.ModelInfo{
	{Name: "digits", Versions: []*corvidv1.ModelVersionStatus{
		{
			Version:       1,
			State:         corvidv1.ModelState_MODEL_STATE_AVAILABLE,
			Sha256:        "3f2a9c1b4e5d60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef",
			ExecutionMode: corvidv1.ExecutionMode_EXECUTION_MODE_INT8_DYNAMIC,
			KernelTier:    "avx512vnni",
			Labels:        []string{"canary", "stable"},
			TrafficWeight: 90,
			Inputs:        []*corvidv1.TensorInfo{{Name: "input", Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{-1, 64}}},
			Outputs: []*corvidv1.TensorInfo{
				{Name: "probabilities", Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{-1, 10}},
				{Name: "label", Dtype: corvidv1.DataType_DATA_TYPE_INT64, Shape: []int64{-1}},
			},
		},
		{
			Version: 2,
			State:   corvidv1.ModelState_MODEL_STATE_FAILED,
			Sha256:  "b0b0",
			Error:   "onnx: node 3: unsupported op \"Foo\"\nsecond line",
		},
	}},
	{Name: "empty"},
}

func TestParseStatusArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    statusArgs
		wantErr string
	}{
		{name: "list", args: nil, want: statusArgs{addr: defaultAddr, timeout: 10 * time.Second}},
		{name: "model", args: []string{"digits"}, want: statusArgs{model: "digits", addr: defaultAddr, timeout: 10 * time.Second}},
		{name: "flag before", args: []string{"--addr", "h:1", "digits"}, want: statusArgs{model: "digits", addr: "h:1", timeout: 10 * time.Second}},
		{name: "flag after", args: []string{"digits", "--addr", "h:1", "--timeout=0"}, want: statusArgs{model: "digits", addr: "h:1"}},
		{name: "two models", args: []string{"a", "b"}, wantErr: `status: want at most one MODEL, got ["a" "b"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(statusArgs{}, tlsFlags{})); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunStatus(t *testing.T) {
	addr := serveCLI(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "one model",
			args: []string{"digits", "--addr", addr},
			want: `model digits

VERSION  STATE      SHA256        MODE          KERNELS     INPUTS             OUTPUTS
1        AVAILABLE  3f2a9c1b4e5d  int8-dynamic  avx512vnni  input fp32[-1,64]  probabilities fp32[-1,10], label int64[-1]
2        FAILED     b0b0          -             -           -                  -

version 1: labels canary, stable; traffic weight 90

version 2 failed to load: onnx: node 3: unsupported op "Foo"
  second line
`,
		},
		{
			name: "model without versions",
			args: []string{"--addr", addr, "empty"},
			want: "model empty\n\nno versions\n",
		},
		{
			name: "every model",
			args: []string{"--addr", addr},
			want: `MODEL   VERSION  STATE        SHA256        MODE
digits  1        AVAILABLE    3f2a9c1b4e5d  int8-dynamic
digits  2        FAILED       b0b0          -
empty   -        no versions  -             -

digits version 2 failed to load: onnx: node 3: unsupported op "Foo"
  second line
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout strings.Builder
			if err := runStatus(t.Context(), tt.args, &stdout, io.Discard); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, stdout.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunStatusNotFound(t *testing.T) {
	addr := serveCLI(t)
	err := runStatus(t.Context(), []string{"nope", "--addr", addr}, io.Discard, io.Discard)
	if got, want := err.Error(), `status of nope at `+addr+`: NotFound: model "nope" not found`; got != want {
		t.Errorf("error = %s, want %s", got, want)
	}
	if got := status.Code(err); got != codes.NotFound {
		t.Errorf("status.Code = %v, want %v", got, codes.NotFound)
	}
}
