// Package peakmeter measures the SIMD arithmetic peaks of the machine it runs
// on, so that benchmarks can quote their share of this machine's peak rather
// than a figure from another one (shared/PERF.md). Command bench/peak prints
// its measurements as a table; the kernel benchmarks call PerCore.
//
// For each instruction family the CPU supports (golang.org/x/sys/cpu) a
// register-only assembly loop of independent accumulator chains runs on one
// goroutine per core, each locked to its OS thread; a fixed iteration count is
// timed repeatedly and the best round counts (Measure). Rates are in ops per
// second: int8 families count 2 ops per multiply-accumulate, float families 2
// per FMA lane. Outside amd64 (or with the purego build tag) no family is
// available.
package peakmeter
