// Package bench holds Corvid's serving benchmarks. They start real servers on
// loopback (in-process, or the built binary for start-up and memory figures)
// and report latency percentiles with b.ReportMetric, next to a bare gRPC
// health-check round trip measured in the same run so ratios can be quoted on
// a noisy machine. Run them with `make bench`.
package bench
