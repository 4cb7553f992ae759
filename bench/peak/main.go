// Command peak measures the SIMD arithmetic peaks of the machine it runs on,
// so that every benchmark can quote its share of peak (shared/PERF.md):
//
//	go run ./bench/peak [-cores 1,2] [-duration 1s] [-call 2ms] [-families vnni_zmm,fma_zmm]
//
// The measuring is in package peakmeter. For each instruction family the CPU
// supports (golang.org/x/sys/cpu) it runs
// a register-only assembly loop of independent accumulator chains — VPDPBUSD
// zmm and EVEX ymm (AVX512_VNNI), VPMADDUBSW+VPMADDWD+VPADDD ymm (AVX2),
// VFMADD231PS zmm and ymm (FMA), TDPBUSD on tiles (AMX-INT8, once Linux
// grants the tile state) — on one goroutine per core, each locked to
// its OS thread, timing a fixed iteration count repeatedly for the duration
// and keeping the best round. It reports GOPS (int8: 2 ops per
// multiply-accumulate) or GFLOPS (2 per FMA lane) per core and in total, and
// the clock this implies given the ops per cycle each instruction sustains on
// this core (known for AMD Zen 4 and Intel Sapphire/Emerald Rapids, else
// rounded from the measured issue rate), next to the clock measured by a
// chain of dependent adds (one add per cycle on every x86 core).
//
// Besides the table it prints one line per family and core count for scripts:
//
//	peak vnni_zmm 1core 458.2 GOPS
//	peak clock 1core 3.61 GHz
//
// where the value is the total over that many cores. Families the CPU lacks
// print "not available" in the table and no peak line; outside amd64 (or
// with the purego build tag) every family is not available.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/corvidml/corvid/bench/peak/peakmeter"
)

func main() {
	cores := flag.String("cores", defaultCores(), "comma-separated core counts to measure on")
	dur := flag.Duration("duration", time.Second, "measuring time per family and core count")
	call := flag.Duration("call", peakmeter.DefaultCall, "length of one timed call; the best of the calls made within -duration counts")
	only := flag.String("families", "", "comma-separated families to measure (default all: "+familyNames()+")")
	flag.Parse()

	counts, err := parseCores(*cores)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peak:", err)
		os.Exit(2)
	}
	fams, err := selectFamilies(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peak:", err)
		os.Exit(2)
	}
	if *dur <= 0 {
		fmt.Fprintln(os.Stderr, "peak: -duration must be positive")
		os.Exit(2)
	}
	if n := slices.Max(counts); n > runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
	}
	run(os.Stdout, fams, counts, *dur, *call)
}

func run(w io.Writer, fams []peakmeter.Family, counts []int, dur, call time.Duration) {
	fmt.Fprintf(w, "peak: %s/%s, %d CPUs, GOMAXPROCS %d, %s\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fs := peakmeter.Features()
	vendor, cpuFamily, model, brand := peakmeter.CPUInfo()
	known := peakmeter.FindMicroarch(vendor, cpuFamily, model, slices.Contains(fs, "AVX512F"))
	if vendor != "" {
		name := "unknown core: peak ops/cycle rounded from the measured issue rate"
		if known != nil {
			name = known.Name
		}
		fmt.Fprintf(w, "cpu: %s family 0x%x model 0x%x %q (%s)\n", vendor, cpuFamily, model, brand, name)
	}
	if len(fs) == 0 {
		fs = []string{"none detected"}
	}
	fmt.Fprintf(w, "features: %s\n", strings.Join(fs, " "))
	if n := slices.Max(counts); n > runtime.NumCPU() {
		fmt.Fprintf(w, "warning: %d cores asked for, %d CPUs: threads share cores\n", n, runtime.NumCPU())
	}

	var lines []string
	clock := 0.0
	if add, ok := peakmeter.ClockLoop(); ok {
		clock = peakmeter.MeasureClock(add, dur, call)
		fmt.Fprintf(w, "clock: %.2f GHz (1 core, dependent ADDQ chain)\n", clock/1e9)
		lines = append(lines, fmt.Sprintf("peak clock 1core %.2f GHz", clock/1e9))
	} else {
		fmt.Fprintln(w, "clock: not available")
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "family\tinstruction\tcores\tper core\ttotal\tinstr/cycle\tpeak ops/cycle\timplied clock\tof peak\t")
	for _, f := range fams {
		loop, ok := peakmeter.Loop(f.Name)
		if !ok {
			// Fill every column so the column blocks stay aligned; the
			// unterminated last cell does not widen any column.
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\tnot available (needs %s)\n", f.Name, f.Instr, f.Needs)
			continue
		}
		issue := 0.0 // instructions per cycle per core at peak
		if known != nil {
			issue = known.Issue[f.Name]
		}
		for _, n := range counts {
			m := peakmeter.Measure(f, loop, n, dur, call)
			measured, peakOps, implied, share := "-", "-", "-", "-"
			if clock > 0 {
				r := m.PerCore / (clock * f.OpsPerInstr)
				measured = fmt.Sprintf("%.2f", r)
				if issue == 0 {
					issue = peakmeter.RoundIssue(r) // from the first core count measured
				}
			}
			if issue > 0 {
				ops := issue * f.OpsPerInstr
				peakOps = fmt.Sprintf("%.0f", ops)
				implied = fmt.Sprintf("%.2f GHz", m.PerCore/ops/1e9)
				if clock > 0 {
					share = fmt.Sprintf("%.0f%%", 100*m.PerCore/(ops*clock))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f %s\t%.1f %s\t%s\t%s\t%s\t%s\t\n",
				f.Name, f.Instr, n, m.PerCore/1e9, f.Unit, m.Total/1e9, f.Unit,
				measured, peakOps, implied, share)
			lines = append(lines, fmt.Sprintf("peak %s %dcore %.1f %s", f.Name, n, m.Total/1e9, f.Unit))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\ninstr/cycle: per core, against the add-chain clock (AVX2: 3-instruction sequences);")
	fmt.Fprintln(w, "of peak: per-core rate / (peak ops/cycle x add-chain clock).")
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func defaultCores() string {
	if n := runtime.NumCPU(); n > 1 {
		return "1," + strconv.Itoa(n)
	}
	return "1"
}

func parseCores(s string) ([]int, error) {
	var counts []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-cores: %q is not a positive core count", f)
		}
		if !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
	}
	return counts, nil
}

func familyNames() string {
	names := make([]string, len(peakmeter.Families))
	for i, f := range peakmeter.Families {
		names[i] = f.Name
	}
	return strings.Join(names, ",")
}

func selectFamilies(s string) ([]peakmeter.Family, error) {
	if strings.TrimSpace(s) == "" {
		return peakmeter.Families, nil
	}
	var out []peakmeter.Family
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		f, ok := peakmeter.FamilyByName(name)
		if !ok {
			return nil, fmt.Errorf("-families: unknown family %q (known: %s)", name, familyNames())
		}
		out = append(out, f)
	}
	return out, nil
}
