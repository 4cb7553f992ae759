package ratelimit

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(cfg Config) (*Limiter, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(cfg)
	l.now = clock.now
	return l, clock
}

// TestAccuracy: over 10 simulated seconds of a caller trying every
// millisecond, the requests allowed are burst + rate * 10, to within one.
func TestAccuracy(t *testing.T) {
	for _, cfg := range []Config{{Rate: 50, Burst: 10}, {Rate: 3.5, Burst: 1}, {Rate: 500, Burst: 100}} {
		l, clock := newTest(cfg)
		allowed := 0
		for range 10000 {
			if ok, _ := l.Allow("alice"); ok {
				allowed++
			}
			clock.add(time.Millisecond)
		}
		want := float64(cfg.Burst) + cfg.Rate*10
		if math.Abs(float64(allowed)-want) > 1 {
			t.Errorf("%+v: %d allowed in 10 s, want %.1f", cfg, allowed, want)
		}
	}
}

func TestRetryAfterAndIdentities(t *testing.T) {
	l, clock := newTest(Config{Rate: 2, Burst: 1})
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("first request refused")
	}
	ok, wait := l.Allow("a")
	if ok || wait < 400*time.Millisecond || wait > 500*time.Millisecond {
		t.Errorf("second request: %t, retry after %v; want refused, 500 ms", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another identity was limited by a's bucket")
	}
	clock.add(wait)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("refused after waiting the retry time")
	}
}

func TestBoundedIdentities(t *testing.T) {
	l, _ := newTest(Config{Rate: 1, Burst: 1})
	for i := range MaxIdentities + 10 {
		l.Allow(fmt.Sprint("id", i))
	}
	if n := len(l.buckets); n != MaxIdentities || l.lru.Len() != MaxIdentities {
		t.Errorf("%d buckets kept, want %d", n, MaxIdentities)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Rate: 0, Burst: 1}, "rate_limit.rate"},
		{Config{Rate: math.Inf(1), Burst: 1}, "rate_limit.rate"},
		{Config{Rate: 1, Burst: 0}, "rate_limit.burst"},
		{Config{Rate: 1, Burst: 1}, ""},
	} {
		err := c.cfg.Validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	l := New(Config{Rate: 1e-9, Burst: 100})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if ok, _ := l.Allow("shared"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("%d allowed from a bucket of 100", allowed)
	}
}
