// Package ratelimit bounds the request rate of each caller identity with a
// token bucket: a caller may send `burst` requests at once and `rate` per
// second on average. The server refuses a request over the limit with
// RESOURCE_EXHAUSTED (REST 429) and says when to retry.
package ratelimit

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"
)

// Config is a per-identity limit.
type Config struct {
	// Rate is the sustained requests per second of one identity.
	Rate float64 `json:"rate"`
	// Burst is how many requests an idle identity may send at once.
	Burst int `json:"burst"`
}

// Validate reports a limit that cannot work; errors name the YAML keys.
func (c Config) Validate() error {
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("rate_limit.rate: got %v, want a positive number of requests per second", c.Rate)
	}
	if c.Burst < 1 {
		return fmt.Errorf("rate_limit.burst: got %d, want >= 1", c.Burst)
	}
	return nil
}

// MaxIdentities bounds the buckets kept: the least recently seen identity
// is forgotten first (it then starts again with a full bucket, which errs
// on the side of the caller).
const MaxIdentities = 1 << 16

// Limiter holds one token bucket per identity. It is safe for concurrent
// use.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     *list.List               // most recent at the front
}

type bucket struct {
	id     string
	tokens float64
	last   time.Time
}

// New returns a Limiter for cfg (which must be valid).
func New(cfg Config) *Limiter {
	return &Limiter{cfg: cfg, now: time.Now, buckets: map[string]*list.Element{}, lru: list.New()}
}

// Allow takes one token from identity's bucket. When the bucket is empty
// it returns false and how long until a token is there.
func (l *Limiter) Allow(identity string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.buckets[identity]
	if !ok {
		if l.lru.Len() >= MaxIdentities {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.buckets, old.Value.(*bucket).id)
		}
		e = l.lru.PushFront(&bucket{id: identity, tokens: float64(l.cfg.Burst), last: now})
		l.buckets[identity] = e
	} else {
		l.lru.MoveToFront(e)
	}
	b := e.Value.(*bucket)
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(float64(l.cfg.Burst), b.tokens+dt*l.cfg.Rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.cfg.Rate * float64(time.Second))
	return false, max(wait, time.Millisecond)
}
