package main

import (
	"strings"
	"testing"
	"time"

	"github.com/corvidml/corvid/bench/peak/peakmeter"
)

func TestRunReportsParsableLines(t *testing.T) {
	var out strings.Builder
	run(&out, peakmeter.Families, []int{1}, 10*time.Millisecond, 0)
	for _, f := range peakmeter.Families {
		_, avail := peakmeter.Loop(f.Name)
		prefix := "peak " + f.Name + " 1core "
		var line string
		for l := range strings.Lines(out.String()) {
			if strings.HasPrefix(l, prefix) {
				line = strings.TrimSpace(l)
			}
		}
		if !avail {
			if line != "" {
				t.Errorf("%s not available but reported %q", f.Name, line)
			}
			if !strings.Contains(out.String(), "not available") {
				t.Errorf("%s: no \"not available\" in the table:\n%s", f.Name, out.String())
			}
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 5 || fields[4] != f.Unit {
			t.Fatalf("%s: line %q, want \"peak %s 1core <value> %s\"", f.Name, line, f.Name, f.Unit)
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
	if got, err := selectFamilies("fma_zmm,vnni_zmm"); err != nil || len(got) != 2 || got[0].Name != "fma_zmm" {
		t.Errorf("selectFamilies = %v, %v", got, err)
	}
	if _, err := selectFamilies("sse"); err == nil {
		t.Error("selectFamilies(\"sse\"): no error")
	}
}
