package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"
)

// want returns the lanes a family's loop stores after iters iterations: each
// instruction (AVX2: sequence) adds a·b per float lane, or the dot product of
// four u8 x s8 pairs per int32 lane, to one of its accumulators, and the loop
// stores the sum of the accumulators.
func want(f family, src []byte, iters int) []uint32 {
	n := int64(iters) * int64(f.perIter)
	out := make([]uint32, f.lanes)
	for j := range out {
		if f.float {
			a := math.Float32frombits(binary.LittleEndian.Uint32(src[4*j:]))
			b := math.Float32frombits(binary.LittleEndian.Uint32(src[64+4*j:]))
			out[j] = math.Float32bits(float32(n) * a * b) // exact: powers of two
			continue
		}
		var dot int64
		for k := range 4 {
			dot += int64(src[4*j+k]) * int64(int8(src[64+4*j+k]))
		}
		out[j] = uint32(int32(n * dot))
	}
	return out
}

func TestLoopsComputeWhatTheyCount(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			loop, ok := loopFor(f.name)
			if !ok {
				t.Skipf("not available (needs %s)", f.needs)
			}
			for _, iters := range []int{1, 2, 7, 1000} {
				src := makeSrc(f)
				dst := bytes.Repeat([]byte{0xA5}, dstLen+16) // guard after the stored lanes
				loop(iters, &src[0], &dst[0])
				for j, w := range want(f, src, iters) {
					if got := binary.LittleEndian.Uint32(dst[4*j:]); got != w {
						t.Fatalf("iters %d lane %d: got %#x, want %#x", iters, j, got, w)
					}
				}
				for i := 4 * f.lanes; i < len(dst); i++ {
					if dst[i] != 0xA5 {
						t.Fatalf("iters %d: byte %d past the %d lanes was written", iters, i, f.lanes)
					}
				}
			}
		})
	}
}

func TestMeasurePositiveAndFinite(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			loop, ok := loopFor(f.name)
			if !ok {
				t.Skipf("not available (needs %s)", f.needs)
			}
			for _, cores := range []int{1, 2} {
				m := measure(f, loop, cores, 20*time.Millisecond, 0)
				for _, v := range []float64{m.total, m.perCore} {
					if !(v > 0) || math.IsInf(v, 0) {
						t.Errorf("%d cores: rate %v, want positive and finite", cores, v)
					}
				}
				if m.iters < 1 || m.rounds < 3 {
					t.Errorf("%d cores: %d iterations x %d rounds, want >= 1 x >= 3", cores, m.iters, m.rounds)
				}
			}
		})
	}
}

func TestClock(t *testing.T) {
	add, ok := clockLoop()
	if !ok {
		t.Skip("not available")
	}
	if got := add(5); got != 80 {
		t.Fatalf("addChain(5) = %d, want 80", got)
	}
	if hz := measureClock(add, 20*time.Millisecond, 0); !(hz > 0) || math.IsInf(hz, 0) {
		t.Fatalf("clock %v Hz, want positive and finite", hz)
	}
}

func TestRunReportsParsableLines(t *testing.T) {
	var out strings.Builder
	run(&out, families, []int{1}, 10*time.Millisecond, 0)
	for _, f := range families {
		_, avail := loopFor(f.name)
		prefix := "peak " + f.name + " 1core "
		var line string
		for l := range strings.Lines(out.String()) {
			if strings.HasPrefix(l, prefix) {
				line = strings.TrimSpace(l)
			}
		}
		if !avail {
			if line != "" {
				t.Errorf("%s not available but reported %q", f.name, line)
			}
			if !strings.Contains(out.String(), "not available") {
				t.Errorf("%s: no \"not available\" in the table:\n%s", f.name, out.String())
			}
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 5 || fields[4] != f.unit {
			t.Fatalf("%s: line %q, want \"peak %s 1core <value> %s\"", f.name, line, f.name, f.unit)
		}
	}
}

func TestFlags(t *testing.T) {
	if got, err := parseCores("1, 2,1"); err != nil || len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("parseCores(\"1, 2,1\") = %v, %v; want [1 2]", got, err)
	}
	for _, bad := range []string{"", "0", "x", "1,-2"} {
		if _, err := parseCores(bad); err == nil {
			t.Errorf("parseCores(%q): no error", bad)
		}
	}
	if got, err := selectFamilies("fma_zmm,vnni_zmm"); err != nil || len(got) != 2 || got[0].name != "fma_zmm" {
		t.Errorf("selectFamilies = %v, %v", got, err)
	}
	if _, err := selectFamilies("sse"); err == nil {
		t.Error("selectFamilies(\"sse\"): no error")
	}
}

func TestRoundIssue(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.4, 0.5}, {0.8, 1}, {1.86, 2}, {2.6, 3}, {7, 4}} {
		if got := roundIssue(c.in); got != c.want {
			t.Errorf("roundIssue(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
