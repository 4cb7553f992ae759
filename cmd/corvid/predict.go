package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// defaultAddr is where `corvid serve` listens for gRPC by default.
const defaultAddr = "localhost:8500"

const predictUsage = `Usage: corvid predict MODEL --input FILE.json [flags]

Sends one prediction request and prints the response as JSON, with output
tensors in their typed fields (fp32Values, ...) so that they can be read.

FILE.json is the body of a REST predict call, a PredictRequest in protobuf
JSON; "-" reads it from standard input. For example:

  {"inputs": {"input": {"dtype": "DATA_TYPE_FP32", "shape": [1, 64], "fp32Values": [0.0, ...]}}}

Flags may come before or after MODEL.

Flags:
`

// predictArgs is a parsed `corvid predict` command line.
type predictArgs struct {
	model   string
	input   string // file name, or "-" for standard input
	addr    string
	version int64 // 0: not set
	label   string
	timeout time.Duration // 0: no deadline
	tls     tlsFlags
}

func parsePredictArgs(args []string, stderr io.Writer) (predictArgs, error) {
	var a predictArgs
	fs := flag.NewFlagSet("predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.input, "input", "", "request body: a JSON `FILE`, or \"-\" for standard input (required)")
	fs.StringVar(&a.addr, "addr", defaultAddr, "server gRPC address `HOST:PORT`")
	fs.Int64Var(&a.version, "version", 0, "model version `N` to ask for (default: the model's routing policy chooses)")
	fs.StringVar(&a.label, "label", "", "version `LABEL` to ask for, such as stable or canary")
	fs.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline for the call; 0 waits forever")
	a.tls.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), predictUsage)
		fs.PrintDefaults()
	}

	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return a, err
	}
	switch {
	case len(positional) == 0:
		err = errors.New("predict: missing MODEL")
	case len(positional) > 1:
		err = fmt.Errorf("predict: want one MODEL, got %q", positional)
	case a.input == "":
		err = errors.New("predict: missing --input FILE.json")
	case a.version < 0:
		err = fmt.Errorf("predict: --version must be a positive version number, got %d", a.version)
	case a.version != 0 && a.label != "":
		err = errors.New("predict: --version and --label both choose the version; give one")
	default:
		if e := a.tls.validate(); e != nil {
			err = fmt.Errorf("predict: %w", e)
		}
	}
	if err != nil {
		fs.Usage()
		return a, err
	}
	a.model = positional[0]
	return a, nil
}

// runPredict runs `corvid predict`: see predictUsage.
func runPredict(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, err := parsePredictArgs(args, stderr)
	if err != nil {
		return err
	}
	return predict(ctx, a, os.Stdin, stdout, stderr)
}

func predict(ctx context.Context, a predictArgs, stdin io.Reader, stdout, stderr io.Writer) error {
	req, err := readPredictRequest(a, stdin)
	if err != nil {
		return err
	}
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	opts, err := a.tls.options()
	if err != nil {
		return err
	}
	c, err := corvid.Dial(a.addr, opts...)
	if err != nil {
		return err
	}
	defer c.Close()

	resp, err := c.PredictRequest(ctx, req)
	if err != nil {
		return rpcError(fmt.Sprintf("predict %s at %s", a.model, a.addr), err)
	}
	for _, name := range slices.Sorted(maps.Keys(resp.GetOutputs())) {
		if err := toTyped(resp.Outputs[name]); err != nil {
			// Print the response anyway: raw bytes are still the answer.
			fmt.Fprintf(stderr, "corvid: output %s stays raw: %v\n", name, err)
		}
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(resp)
	if err != nil {
		return fmt.Errorf("predict: encode response: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// readPredictRequest reads the request body named by a.input and applies the
// command line to it: MODEL, --version and --label win over the body, as the
// URL path does over the body of a REST call.
func readPredictRequest(a predictArgs, stdin io.Reader) (*corvidv1.PredictRequest, error) {
	var (
		body []byte
		err  error
	)
	if a.input == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(a.input)
	}
	if err != nil {
		return nil, fmt.Errorf("predict: read request: %w", err)
	}
	req := new(corvidv1.PredictRequest)
	if err := protojson.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("predict: %s is not a PredictRequest in JSON: %w", inputName(a.input), err)
	}
	if req.Model != "" && req.Model != a.model {
		return nil, fmt.Errorf("predict: %s names model %q, the command line %q", inputName(a.input), req.Model, a.model)
	}
	req.Model = a.model
	switch {
	case a.version != 0:
		req.VersionSelector = &corvidv1.PredictRequest_Version{Version: a.version}
	case a.label != "":
		req.VersionSelector = &corvidv1.PredictRequest_VersionLabel{VersionLabel: a.label}
	}
	return req, nil
}

func inputName(input string) string {
	if input == "-" {
		return "standard input"
	}
	return input
}

// toTyped moves a tensor's elements from raw bytes into its typed field, the
// form people can read in JSON (protojson would print raw as base64). On
// error it leaves t as it was.
func toTyped(t *corvidv1.Tensor) error {
	if len(t.GetRaw()) == 0 {
		return nil // typed already, or no elements
	}
	// Decode first and assign after, so a failure changes nothing.
	var (
		assign func()
		err    error
	)
	switch t.GetDtype() {
	case corvidv1.DataType_DATA_TYPE_FP32:
		v, e := corvid.AsFloat32(t)
		assign, err = func() { t.Fp32Values = v }, e
	case corvidv1.DataType_DATA_TYPE_FP64:
		v, e := corvid.AsFloat64(t)
		assign, err = func() { t.Fp64Values = v }, e
	case corvidv1.DataType_DATA_TYPE_INT32:
		v, e := corvid.AsInt32(t)
		assign, err = func() { t.Int32Values = v }, e
	case corvidv1.DataType_DATA_TYPE_INT64:
		v, e := corvid.AsInt64(t)
		assign, err = func() { t.Int64Values = v }, e
	case corvidv1.DataType_DATA_TYPE_BOOL:
		v, e := corvid.AsBool(t)
		assign, err = func() { t.BoolValues = v }, e
	case corvidv1.DataType_DATA_TYPE_INT8:
		v, e := corvid.AsInt8(t)
		assign, err = func() { t.Int32Values = widen(v) }, e
	case corvidv1.DataType_DATA_TYPE_UINT8:
		v, e := corvid.AsUint8(t)
		assign, err = func() { t.Int32Values = widen(v) }, e
	default:
		return fmt.Errorf("unknown dtype %v", t.GetDtype())
	}
	if err != nil {
		return err
	}
	assign()
	t.Raw = nil
	return nil
}

// widen converts 8-bit elements to int32_values, their typed field.
func widen[T int8 | uint8](v []T) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, which the flag package alone does not allow (it
// stops at the first non-flag). After "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if parsed := len(args) - len(rest); parsed > 0 && args[parsed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// rpcError describes a failed call for people: the status code and message
// rather than "rpc error: code = ... desc = ...", followed by the details the
// server attached. The status stays reachable through errors.As and
// status.Code.
func rpcError(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: %s", op, st.Code(), st.Message())
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			fmt.Fprintf(&b, " [%s]", d.GetReason())
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  %s: %s", v.GetField(), v.GetDescription())
			}
		}
	}
	return &describedError{msg: b.String(), err: err}
}

type describedError struct {
	msg string
	err error
}

func (e *describedError) Error() string { return e.msg }
func (e *describedError) Unwrap() error { return e.err }
