package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

const statusUsage = `Usage: corvid status [MODEL] [flags]

With MODEL, shows each of its versions: state, SHA-256 prefix, execution
mode (fp32, int8-dynamic, ...), kernel tier, inputs and outputs, and why a
version failed to load. Without MODEL,
lists every model the server knows. Flags may come before or after MODEL.

Flags:
`

// statusArgs is a parsed `corvid status` command line.
type statusArgs struct {
	model   string // empty: list every model
	addr    string
	timeout time.Duration
	tls     tlsFlags
}

func parseStatusArgs(args []string, stderr io.Writer) (statusArgs, error) {
	var a statusArgs
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.addr, "addr", defaultAddr, "server gRPC address `HOST:PORT`")
	fs.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline for the call; 0 waits forever")
	a.tls.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusUsage)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return a, err
	}
	if len(positional) > 1 {
		fs.Usage()
		return a, fmt.Errorf("status: want at most one MODEL, got %q", positional)
	}
	if err := a.tls.validate(); err != nil {
		fs.Usage()
		return a, fmt.Errorf("status: %w", err)
	}
	if len(positional) == 1 {
		a.model = positional[0]
	}
	return a, nil
}

// runStatus runs `corvid status`: see statusUsage.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, err := parseStatusArgs(args, stderr)
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

	if a.model == "" {
		models, err := c.ListModels(ctx)
		if err != nil {
			return rpcError("list models at "+a.addr, err)
		}
		return writeModels(stdout, models)
	}
	m, err := c.ModelStatus(ctx, a.model)
	if err != nil {
		return rpcError(fmt.Sprintf("status of %s at %s", a.model, a.addr), err)
	}
	return writeModel(stdout, m)
}

// writeModel prints one model's versions as a table, with the signature of
// each, then the load errors of the versions that failed, which are too long
// for a column.
func writeModel(w io.Writer, m *corvidv1.ModelInfo) error {
	if _, err := fmt.Fprintf(w, "model %s\n\n", m.GetName()); err != nil {
		return err
	}
	if len(m.GetVersions()) == 0 {
		_, err := fmt.Fprintln(w, "no versions")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tSHA256\tMODE\tKERNELS\tINPUTS\tOUTPUTS")
	for _, v := range m.GetVersions() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.GetVersion(), stateName(v.GetState()),
			shortHash(v.GetSha256()), modeName(v.GetExecutionMode()), orDash(v.GetKernelTier()),
			signature(v.GetInputs()), signature(v.GetOutputs()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeTraffic(w, m); err != nil {
		return err
	}
	return writeLoadErrors(w, m, func(v *corvidv1.ModelVersionStatus) string {
		return fmt.Sprintf("version %d", v.GetVersion())
	})
}

// writeTraffic prints, for the versions that have them, labels, traffic
// weights, shadow figures, batching figures and reload errors, then a
// rejected model.yaml.
func writeTraffic(w io.Writer, m *corvidv1.ModelInfo) error {
	var lines []string
	for _, v := range m.GetVersions() {
		var parts []string
		if l := v.GetLabels(); len(l) > 0 {
			parts = append(parts, "labels "+strings.Join(l, ", "))
		}
		if tw := v.GetTrafficWeight(); tw > 0 {
			parts = append(parts, fmt.Sprintf("traffic weight %d", tw))
		}
		if sh := v.GetShadow(); sh != nil {
			parts = append(parts, fmt.Sprintf("shadow: %d of %d copies compared, %d dropped, %d failed; label agreement %.3f over %d rows; max |diff| %.3g; latency p50 %v",
				sh.GetCompared(), sh.GetSampled(), sh.GetDropped(), sh.GetFailed()+sh.GetTimedOut(), sh.GetAgreement(), sh.GetLabelRows(),
				sh.GetMaxAbsDiff(), sh.GetLatencyP50().AsDuration()))
		}
		if b := v.GetBatching(); b != nil {
			parts = append(parts, fmt.Sprintf("batching: %d requests in %d batches (mean %.1f rows), queue %d, queue time p50 %v, %d refused",
				b.GetRequests(), b.GetBatches(), b.GetMeanBatchRows(), b.GetQueueDepth(), b.GetQueueTimeP50().AsDuration(), b.GetRejected()))
		}
		if e := v.GetReloadError(); e != "" {
			parts = append(parts, "serving its previous file; the new one failed: "+e)
		}
		if len(parts) > 0 {
			lines = append(lines, fmt.Sprintf("version %d: %s", v.GetVersion(), strings.Join(parts, "; ")))
		}
	}
	if e := m.GetConfigError(); e != "" {
		lines = append(lines, "model.yaml rejected, previous settings in effect: "+e)
	}
	if len(lines) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(lines, "\n"))
	return err
}

// writeModels prints every version of every model, one per line so that the
// lines can be grepped.
func writeModels(w io.Writer, models []*corvidv1.ModelInfo) error {
	if len(models) == 0 {
		_, err := fmt.Fprintln(w, "no models")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTATE\tSHA256\tMODE")
	for _, m := range models {
		if len(m.GetVersions()) == 0 {
			fmt.Fprintf(tw, "%s\t-\tno versions\t-\t-\n", m.GetName())
		}
		for _, v := range m.GetVersions() {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.GetName(), v.GetVersion(),
				stateName(v.GetState()), shortHash(v.GetSha256()), modeName(v.GetExecutionMode()))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range models {
		err := writeLoadErrors(w, m, func(v *corvidv1.ModelVersionStatus) string {
			return fmt.Sprintf("%s version %d", m.GetName(), v.GetVersion())
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func writeLoadErrors(w io.Writer, m *corvidv1.ModelInfo, label func(*corvidv1.ModelVersionStatus) string) error {
	for _, v := range m.GetVersions() {
		if v.GetState() != corvidv1.ModelState_MODEL_STATE_FAILED {
			continue
		}
		msg := v.GetError()
		if msg == "" {
			msg = "(no error reported)"
		}
		// Indent continuation lines under the label.
		msg = strings.ReplaceAll(strings.TrimSpace(msg), "\n", "\n  ")
		if _, err := fmt.Fprintf(w, "\n%s failed to load: %s\n", label(v), msg); err != nil {
			return err
		}
	}
	return nil
}

// stateName is MODEL_STATE_AVAILABLE as "AVAILABLE".
func stateName(s corvidv1.ModelState) string {
	return strings.TrimPrefix(s.String(), "MODEL_STATE_")
}

// modeName is EXECUTION_MODE_INT8_DYNAMIC as "int8-dynamic", the spelling of
// model.yaml; "-" while the version is not loaded.
func modeName(m corvidv1.ExecutionMode) string {
	if m == corvidv1.ExecutionMode_EXECUTION_MODE_UNSPECIFIED {
		return "-"
	}
	name := strings.TrimPrefix(m.String(), "EXECUTION_MODE_")
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortHash is the first 12 hex digits of a SHA-256, enough to tell files
// apart at a glance, as git shortens commit hashes.
func shortHash(h string) string {
	switch {
	case h == "":
		return "-"
	case len(h) > 12:
		return h[:12]
	}
	return h
}

// signature renders tensors as "name fp32[-1,64]", joined by commas; -1 is a
// dynamic dimension.
func signature(ts []*corvidv1.TensorInfo) string {
	if len(ts) == 0 {
		return "-"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		dims := make([]string, len(t.GetShape()))
		for j, d := range t.GetShape() {
			dims[j] = strconv.FormatInt(d, 10)
		}
		parts[i] = fmt.Sprintf("%s %s[%s]", t.GetName(), corvid.DTypeName(t.GetDtype()), strings.Join(dims, ","))
	}
	return strings.Join(parts, ", ")
}
