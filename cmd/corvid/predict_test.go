package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

func TestParsePredictArgs(t *testing.T) {
	defaults := predictArgs{model: "digits", input: "req.json", addr: defaultAddr, timeout: 10 * time.Second}
	with := func(change func(*predictArgs)) predictArgs {
		a := defaults
		change(&a)
		return a
	}
	tests := []struct {
		name    string
		args    []string
		want    predictArgs
		wantErr string
	}{
		{name: "flags after MODEL", args: []string{"digits", "--input", "req.json"}, want: defaults},
		{name: "flags before MODEL", args: []string{"--input", "req.json", "digits"}, want: defaults},
		{
			name: "flags on both sides",
			args: []string{"-addr=host:9000", "digits", "--version", "3", "--input=req.json", "--timeout", "1s"},
			want: with(func(a *predictArgs) { a.addr, a.version, a.timeout = "host:9000", 3, time.Second }),
		},
		{
			name: "label and stdin",
			args: []string{"digits", "--label", "canary", "--input", "-"},
			want: with(func(a *predictArgs) { a.label, a.input = "canary", "-" }),
		},
		{
			name: "a MODEL that looks like a flag, after --",
			args: []string{"--input", "req.json", "--", "-odd"},
			want: with(func(a *predictArgs) { a.model = "-odd" }),
		},
		{name: "missing MODEL", args: []string{"--input", "req.json"}, wantErr: "predict: missing MODEL"},
		{name: "missing --input", args: []string{"digits"}, wantErr: "predict: missing --input FILE.json"},
		{name: "nothing", args: nil, wantErr: "predict: missing MODEL"},
		{name: "two models", args: []string{"a", "b", "--input", "x"}, wantErr: `predict: want one MODEL, got ["a" "b"]`},
		{
			name:    "version and label",
			args:    []string{"digits", "--input", "x", "--version", "2", "--label", "stable"},
			wantErr: "predict: --version and --label both choose the version; give one",
		},
		{
			name:    "negative version",
			args:    []string{"digits", "--input", "x", "--version", "-1"},
			wantErr: "predict: --version must be a positive version number, got -1",
		},
		{name: "unknown flag", args: []string{"digits", "--inptu", "x"}, wantErr: "flag provided but not defined: -inptu"},
		{name: "bad timeout", args: []string{"digits", "--input", "x", "--timeout", "soon"}, wantErr: `invalid value "soon" for flag -timeout: parse error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePredictArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(predictArgs{}, tlsFlags{})); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePredictArgsHelp(t *testing.T) {
	var usage strings.Builder
	_, err := parsePredictArgs([]string{"-h"}, &usage)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("error = %v, want flag.ErrHelp", err)
	}
	if !strings.HasPrefix(usage.String(), "Usage: corvid predict MODEL") {
		t.Errorf("usage = %q, want the predict usage", usage.String())
	}
}

// cliServer answers Predict with its inputs as raw-encoded outputs, as a
// real server does, and fails model "bad" with the details the server sends.
type cliServer struct {
	corvidv1.UnimplementedInferenceServiceServer
}

func (cliServer) Predict(_ context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	if req.GetModel() == "bad" {
		st, err := status.New(codes.InvalidArgument, `input "input": want shape [-1 64], got [1 63]`).
			WithDetails(&errdetails.ErrorInfo{Reason: "SHAPE_MISMATCH", Domain: "corvid.dev"})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	outputs := make(map[string]*corvidv1.Tensor)
	for name, in := range req.GetInputs() {
		v, err := corvid.AsFloat32(in)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		outputs[name] = corvid.Float32Tensor(v, in.GetShape()...)
	}
	outputs["flags"] = corvid.Int8Tensor([]int8{-1, 1})
	return &corvidv1.PredictResponse{
		Model: req.GetModel(), Version: max(req.GetVersion(), 2), Outputs: outputs, RequestId: "req-1",
	}, nil
}

func (cliServer) ModelStatus(_ context.Context, req *corvidv1.ModelStatusRequest) (*corvidv1.ModelStatusResponse, error) {
	for _, m := range statusModels {
		if m.GetName() == req.GetModel() {
			return &corvidv1.ModelStatusResponse{Model: m}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "model %q not found", req.GetModel())
}

func (cliServer) ListModels(context.Context, *corvidv1.ListModelsRequest) (*corvidv1.ListModelsResponse, error) {
	return &corvidv1.ListModelsResponse{Models: statusModels}, nil
}

// serveCLI starts cliServer on a loopback port for the test.
func serveCLI(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	corvidv1.RegisterInferenceServiceServer(s, cliServer{})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

const requestJSON = `{"inputs": {"input": {"dtype": "DATA_TYPE_FP32", "shape": [1, 3], "fp32Values": [0.5, -1, 2]}}}`

func TestPredict(t *testing.T) {
	addr := serveCLI(t)
	file := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(file, []byte(requestJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	want := &corvidv1.PredictResponse{
		Model:     "digits",
		Version:   2,
		RequestId: "req-1",
		Outputs: map[string]*corvidv1.Tensor{
			"input": {Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1, 3}, Fp32Values: []float32{0.5, -1, 2}},
			"flags": {Dtype: corvidv1.DataType_DATA_TYPE_INT8, Shape: []int64{2}, Int32Values: []int32{-1, 1}},
		},
	}

	tests := []struct {
		name  string
		args  []string
		stdin string
	}{
		{name: "file", args: []string{"digits", "--input", file, "--addr", addr}},
		{name: "stdin", args: []string{"--addr", addr, "--input", "-", "digits"}, stdin: requestJSON},
		{name: "model in the body too", args: []string{"digits", "--input", "-", "--addr", addr},
			stdin: `{"model": "digits", "inputs": {"input": {"dtype": "DATA_TYPE_FP32", "shape": [1, 3], "fp32Values": [0.5, -1, 2]}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := parsePredictArgs(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			if err := predict(t.Context(), a, strings.NewReader(tt.stdin), &stdout, &stderr); err != nil {
				t.Fatalf("predict: %v (stderr: %s)", err, stderr.String())
			}
			if strings.Contains(stdout.String(), `"raw"`) {
				t.Errorf("output still has raw tensors:\n%s", stdout.String())
			}
			got := new(corvidv1.PredictResponse)
			if err := protojson.Unmarshal([]byte(stdout.String()), got); err != nil {
				t.Fatalf("output is not a PredictResponse: %v\n%s", err, stdout.String())
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPredictErrors(t *testing.T) {
	addr := serveCLI(t)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{
			name:  "server error with details",
			args:  []string{"bad", "--input", "-", "--addr", addr},
			stdin: requestJSON,
			want:  `predict bad at ` + addr + `: InvalidArgument: input "input": want shape [-1 64], got [1 63] [SHAPE_MISMATCH]`,
		},
		{
			name:  "not JSON",
			args:  []string{"digits", "--input", "-", "--addr", addr},
			stdin: "inputs: {}",
			want:  "predict: standard input is not a PredictRequest in JSON: ",
		},
		{
			name:  "conflicting model",
			args:  []string{"digits", "--input", "-", "--addr", addr},
			stdin: `{"model": "iris"}`,
			want:  `predict: standard input names model "iris", the command line "digits"`,
		},
		{
			name: "missing file",
			args: []string{"digits", "--input", "/nonexistent/req.json", "--addr", addr},
			want: "predict: read request: open /nonexistent/req.json: no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := parsePredictArgs(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			err = predict(t.Context(), a, strings.NewReader(tt.stdin), io.Discard, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to start with %s", err, tt.want)
			}
		})
	}
}

// TestPredictErrorKeepsStatus: the readable error still carries the code.
func TestPredictErrorKeepsStatus(t *testing.T) {
	a, err := parsePredictArgs([]string{"bad", "--input", "-", "--addr", serveCLI(t)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = predict(t.Context(), a, strings.NewReader(requestJSON), io.Discard, io.Discard)
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Errorf("status.Code = %v, want %v", got, codes.InvalidArgument)
	}
}

func TestToTyped(t *testing.T) {
	tests := []struct {
		name string
		in   *corvidv1.Tensor
		want *corvidv1.Tensor
	}{
		{"fp32", corvid.Float32Tensor([]float32{1, 2}),
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{2}, Fp32Values: []float32{1, 2}}},
		{"fp64", corvid.Float64Tensor([]float64{1}),
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP64, Shape: []int64{1}, Fp64Values: []float64{1}}},
		{"int32", corvid.Int32Tensor([]int32{-3}),
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_INT32, Shape: []int64{1}, Int32Values: []int32{-3}}},
		{"int64", corvid.Int64Tensor([]int64{-3}),
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_INT64, Shape: []int64{1}, Int64Values: []int64{-3}}},
		{"int8", corvid.Int8Tensor([]int8{-128}),
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_INT8, Shape: []int64{1}, Int32Values: []int32{-128}}},
		{"uint8", corvid.Uint8Tensor([]uint8{255}),
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_UINT8, Shape: []int64{1}, Int32Values: []int32{255}}},
		{"bool", corvid.BoolTensor([]bool{true}),
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_BOOL, Shape: []int64{1}, BoolValues: []bool{true}}},
		{"typed already", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1}, Fp32Values: []float32{3}},
			&corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1}, Fp32Values: []float32{3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := toTyped(tt.in); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tt.in, protocmp.Transform()); diff != "" {
				t.Errorf("tensor (-want +got):\n%s", diff)
			}
		})
	}

	// A malformed tensor is left exactly as the server sent it.
	bad := &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{2}, Raw: []byte{1, 2, 3}}
	before := &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{2}, Raw: []byte{1, 2, 3}}
	if err := toTyped(bad); !errors.Is(err, corvid.ErrShape) {
		t.Errorf("malformed tensor: error = %v, want ErrShape", err)
	}
	if diff := cmp.Diff(before, bad, protocmp.Transform()); diff != "" {
		t.Errorf("toTyped changed a tensor it could not decode (-before +after):\n%s", diff)
	}
}
