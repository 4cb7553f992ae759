package kernels

import (
	"testing"
	"time"
)

// TestWakeup: a post before the wait lets it return at once; a wait blocks
// until a post from another goroutine, once per post.
func TestWakeup(t *testing.T) {
	var u wakeup
	u.init()
	u.post()
	u.wait() // returns: posted before
	for round := range 3 {
		done := make(chan struct{})
		go func() {
			u.wait()
			close(done)
		}()
		select {
		case <-done:
			t.Fatalf("round %d: wait returned before any post", round)
		case <-time.After(20 * time.Millisecond):
		}
		u.post()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: wait did not return after a post", round)
		}
	}
}
