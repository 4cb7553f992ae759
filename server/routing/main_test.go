package routing_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// Shadow a test starts must stop its workers on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
