// Package stats reports the figures of benchmarks that time their variants
// in alternating rounds (so that each round meets one state of a shared,
// noisy host): medians, and ratios of two variants taken round by round.
// Benchmarks in several packages use it, through b.ReportMetric.
package stats

import (
	"slices"
	"testing"
)

// Median reports the median of figures as unit.
func Median(b *testing.B, figures []float64, unit string) {
	f := slices.Sorted(slices.Values(figures))
	b.ReportMetric(f[len(f)/2], unit)
}

// Ratio reports the median and quartiles of num[i]/den[i] (figures of the
// same round) as name, name-q1 and name-q3.
func Ratio(b *testing.B, name string, num, den []float64) {
	ratios := make([]float64, len(num))
	for i := range ratios {
		ratios[i] = num[i] / den[i]
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], name)
	b.ReportMetric(ratios[len(ratios)/4], name+"-q1")
	b.ReportMetric(ratios[len(ratios)*3/4], name+"-q3")
}
