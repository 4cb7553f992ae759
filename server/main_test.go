package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// server a test starts must shut down completely. The kernels' GEMM worker
// pool is process-wide and meant to outlive servers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/corvidml/corvid/kernels.(*workerPool).loop"))
}
