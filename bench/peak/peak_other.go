//go:build !amd64 || purego

package main

// There are no assembly loops outside amd64 (or with the purego tag): every
// family reports "not available".

func loopFor(name string) (loopFunc, bool) { return nil, false }

func clockLoop() (func(iters int) int, bool) { return nil, false }

func features() []string { return nil }

func cpuInfo() (vendor string, family, model uint32, brand string) { return "", 0, 0, "" }
