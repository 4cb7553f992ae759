package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/corvidml/corvid/server/npz"
	"github.com/corvidml/corvid/server/quantize"
)

const quantizeUsage = `Usage: corvid quantize [--calibration DATA.npz] IN.onnx OUT.onnx

Writes an int8 copy of a float32 model that Corvid and ONNX Runtime both
run: MatMul, Gemm and Conv nodes with constant weights get per-channel int8
weights. Without --calibration the activations are quantized at run time
(dynamic: DynamicQuantizeLinear, MatMulInteger, ConvInteger); with it they
get fixed scales from the calibration rows (static: QuantizeLinear and
DequantizeLinear pairs).

DATA.npz is a numpy archive (np.savez) with one array per model input, keyed
by the input's name, samples along the first axis:

  np.savez("calibration.npz", input=rows)   # rows: float32 [128, 64]

Flags may come before or after the files.

Flags:
`

// calibrationMaxBytes bounds the arrays read from a calibration file.
const calibrationMaxBytes = 4 << 30

type quantizeArgs struct {
	in, out     string
	calibration string // "" for dynamic
}

func parseQuantizeArgs(args []string, stderr io.Writer) (quantizeArgs, error) {
	var a quantizeArgs
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.calibration, "calibration", "", "numpy `DATA.npz` of calibration rows, one array per input: quantize activations statically")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), quantizeUsage)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return a, err
	}
	if len(positional) != 2 {
		fs.Usage()
		return a, fmt.Errorf("quantize: want IN.onnx and OUT.onnx, got %q", positional)
	}
	a.in, a.out = positional[0], positional[1]
	if a.in == a.out {
		return a, fmt.Errorf("quantize: OUT.onnx is IN.onnx (%s); write the quantized model to another file", a.in)
	}
	return a, nil
}

// runQuantize runs `corvid quantize`: see quantizeUsage.
func runQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, err := parseQuantizeArgs(args, stderr)
	if err != nil {
		return err
	}
	return quantizeFile(ctx, a, stdout)
}

func quantizeFile(ctx context.Context, a quantizeArgs, stdout io.Writer) error {
	model, err := os.ReadFile(a.in)
	if err != nil {
		return err
	}
	var opts quantize.Options
	if a.calibration != "" {
		if opts.Calibration, err = npz.ReadFile(a.calibration, calibrationMaxBytes); err != nil {
			return fmt.Errorf("%s: %w", a.calibration, err)
		}
	}
	out, rep, err := quantize.Quantize(ctx, model, opts)
	if err != nil {
		if errors.Is(err, quantize.ErrCalibration) {
			return fmt.Errorf("%s: %w", a.calibration, err)
		}
		return fmt.Errorf("%s: %w", a.in, err)
	}
	if err := writeFileAtomic(a.out, out); err != nil {
		return err
	}
	how := "dynamic"
	if rep.Mode == quantize.ModeStatic {
		how = fmt.Sprintf("static, %d calibration rows", rep.CalibrationRows)
	}
	fmt.Fprintf(stdout, "quantized %s (%s); %s -> %s (%.1fx smaller)\n", rep.Ops(), how,
		formatBytes(rep.BytesBefore), formatBytes(rep.BytesAfter), float64(rep.BytesBefore)/float64(rep.BytesAfter))
	for _, s := range rep.Skipped {
		fmt.Fprintf(stdout, "  kept %s %q in float32: %s\n", s.OpType, s.Node, s.Reason)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder, so that a model server watching the folder never sees half a
// model.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// formatBytes formats a byte count in B, kB or MB (powers of 1000).
func formatBytes(n int) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}
