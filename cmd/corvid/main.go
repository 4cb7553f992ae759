// Command corvid is the Corvid model server and its command-line client.
//
//	corvid serve   [--grpc-addr :8500] [--http-addr :8501] [--admin-addr :8502] [--models DIR] [--config FILE]
//	corvid predict MODEL --input FILE.json [--addr localhost:8500]
//	corvid status  [MODEL] [--addr localhost:8500]
//	corvid inspect MODEL.onnx
//	corvid quantize [--calibration DATA.npz] IN.onnx OUT.onnx
//	corvid certs   [--out DIR] [--hosts NAME,...] [--client IDENTITY]...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `corvid serves ONNX models over gRPC and REST.

Usage:
  corvid serve   [flags]              serve models (the embedded digits model by default)
  corvid predict MODEL --input FILE   send one prediction request (JSON body as for REST)
  corvid status  [MODEL]              show a model's versions, or list all models
  corvid inspect MODEL.onnx           describe a model file and whether Corvid can serve it
  corvid quantize IN.onnx OUT.onnx    write an int8 copy of a model (--calibration DATA.npz: static)
  corvid certs   [--client ID]...     create a development CA, server and client certificates for mTLS

Run 'corvid COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "corvid:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "predict":
		return runPredict(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "inspect":
		return runInspect(args[1:], stdout, stderr)
	case "quantize":
		return runQuantize(ctx, args[1:], stdout, stderr)
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
