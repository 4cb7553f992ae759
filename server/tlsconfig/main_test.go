package tlsconfig_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// listener, server, client and watcher a test starts must stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
