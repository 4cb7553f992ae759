//go:build !amd64 || purego

package peakmeter

// There are no assembly loops outside amd64 (or with the purego tag): every
// family reports "not available".

func Loop(name string) (LoopFunc, bool) { return nil, false }

func ClockLoop() (func(iters int) int, bool) { return nil, false }

func Features() []string { return nil }

func CPUInfo() (vendor string, family, model uint32, brand string) { return "", 0, 0, "" }
