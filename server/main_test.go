package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// server a test starts must shut down completely.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
