package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/corvidml/corvid/server/onnx"
)

const inspectUsage = `Usage: corvid inspect MODEL.onnx

Prints a model's inputs and outputs, operator sets, operator histogram and
parameter count, and whether Corvid can serve it. Exits non-zero when it
cannot, naming every unsupported operator.
`

// runInspect runs `corvid inspect`: it reads the file locally, no server is
// involved.
func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, inspectUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("inspect takes one model file, got %d arguments", fs.NArg())
	}
	path := fs.Arg(0)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s, err := onnx.Inspect(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	printSummary(stdout, path, s)
	if s.Err != nil {
		return errors.New("Corvid cannot serve this model")
	}
	return nil
}

func printSummary(w io.Writer, path string, s *onnx.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", path)
	fmt.Fprintf(tw, "producer\t%s (IR version %d)\n", cmp.Or(s.Producer, "unknown"), s.IRVersion)
	domains := make([]string, 0, len(s.Opsets))
	for d := range s.Opsets {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	var opsets []string
	for _, d := range domains {
		opsets = append(opsets, fmt.Sprintf("%s %d", cmp.Or(d, "ai.onnx"), s.Opsets[d]))
	}
	fmt.Fprintf(tw, "opsets\t%s\n", strings.Join(opsets, ", "))
	for i, v := range s.Inputs {
		fmt.Fprintf(tw, "%s\t%s  %s\n", label(i, "inputs"), v.Name, v.Type)
	}
	for i, v := range s.Outputs {
		fmt.Fprintf(tw, "%s\t%s  %s\n", label(i, "outputs"), v.Name, v.Type)
	}
	fmt.Fprintf(tw, "nodes\t%d\n", s.Nodes)
	fmt.Fprintf(tw, "parameters\t%d (%d initializers, and tensors and float lists in attributes)\n", s.Parameters, s.Initializers)
	tw.Flush()

	fmt.Fprintln(w, "\noperators")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, op := range s.Ops {
		mark := ""
		if !op.Supported {
			mark = "\tunsupported"
		}
		name := op.OpType
		if op.Domain != onnx.DomainDefault {
			name = op.Domain + "." + op.OpType
		}
		fmt.Fprintf(tw, "  %s\t%d%s\n", name, op.Count, mark)
	}
	tw.Flush()

	fmt.Fprintln(w)
	switch {
	case s.Err == nil:
		fmt.Fprintln(w, "Corvid can serve this model: every operator is supported and the graph is valid.")
	case len(s.Unsupported()) > 0:
		fmt.Fprintf(w, "Corvid cannot serve this model: unsupported operators: %s.\n", strings.Join(s.Unsupported(), ", "))
		fmt.Fprintf(w, "The first refusal when loading: %v\n", s.Err)
	default:
		fmt.Fprintf(w, "Corvid cannot serve this model: %v\n", s.Err)
	}
}

// label names the first row of a group and leaves the others blank.
func label(i int, name string) string {
	if i == 0 {
		return name
	}
	return ""
}
