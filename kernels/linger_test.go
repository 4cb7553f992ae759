package kernels

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestParseLinger(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", defaultLinger, false}, {"0", 0, false}, {" 5ms ", 5 * time.Millisecond, false},
		{"1h", time.Hour, false}, {"-1ms", defaultLinger, true}, {"5", defaultLinger, true},
		{"soon", defaultLinger, true},
	} {
		got, err := parseLinger(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseLinger(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// waitingJob is a job of two chunks whose caller's chunk (0) returns only
// once a worker has started the other (1), or after 10 s, so that the
// worker surely runs a chunk, as a worker must for it to linger afterwards.
// started stays false if the caller runs chunk 1 itself.
type waitingJob struct{ started atomic.Bool }

func (j *waitingJob) run(p, lo, hi int) {
	if lo > 0 {
		j.started.Store(p > 0)
		return
	}
	for deadline := time.Now().Add(10 * time.Second); !j.started.Load() && time.Now().Before(deadline); {
	}
}

// TestWorkerLinger checks that a worker that has run a job lingers (does not
// park) for the time SetLinger gave while no caller has found the pool busy
// and every job's polling workers came; that either event is recorded (and
// a woken worker coming late is not), and a lingering worker then parks;
// and that with SetLinger(0) it parks.
func TestWorkerLinger(t *testing.T) {
	defer SetParallelism(SetParallelism(2))
	defer SetLinger(SetLinger(-1))
	defer pool.resetBackoff()
	pool.resetBackoff()
	parked := func(w *worker) bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if w.sleeping.Load() {
				return true
			}
		}
		return false
	}
	runOne := func() *worker {
		t.Helper()
		ws := takePool(t, 1)
		job := &waitingJob{}
		pool.runJob(ws, job, 2, 1)
		pool.release()
		if !job.started.Load() {
			t.Fatal("the worker did not run its chunk within 10 s")
		}
		return ws[0]
	}

	SetLinger(time.Hour)
	pool.contended.Store(0)
	w := runOne()
	time.Sleep(50 * time.Millisecond)
	if w.sleeping.Load() {
		t.Fatal("with an hour to linger, the worker parked within 50 ms of its job")
	}
	// A caller finds the pool busy: the worker stops lingering.
	takePool(t, 1)
	if _, ok := pool.acquire(1); ok {
		t.Fatal("acquire took a pool already held")
	}
	pool.release()
	if !pool.contendedWithin(lingerQuiet) {
		t.Fatal("a caller found the pool busy, but the pool has no record of it")
	}
	if !parked(w) {
		t.Fatal("5 s after a caller found the pool busy, the worker still lingers")
	}

	// A job's polling worker never comes: likewise.
	pool.contended.Store(0)
	w = runOne()
	time.Sleep(20 * time.Millisecond)
	if w.sleeping.Load() {
		t.Fatal("with an hour to linger, the worker parked within 20 ms of its job")
	}
	pool.judge(2, 1, 0, 0) // one of two polling workers came: no sign
	if pool.contendedWithin(lingerQuiet) {
		t.Fatal("a job one of whose polling workers came was recorded as contended")
	}
	pool.judge(0, 0, 10*time.Microsecond, time.Millisecond) // a woken worker came late: no sign
	if pool.contendedWithin(lingerQuiet) {
		t.Fatal("a job whose woken worker came late was recorded as contended")
	}
	pool.judge(1, 1, 0, 0) // its one polling worker never came
	if !pool.contendedWithin(lingerQuiet) {
		t.Fatal("a job whose polling worker never came was not recorded")
	}
	if !parked(w) {
		t.Fatal("5 s after a job's polling worker never came, the worker still lingers")
	}
	pool.resetBackoff()

	SetLinger(0)
	pool.contended.Store(0)
	if w = runOne(); !parked(w) {
		t.Fatal("with no linger, the worker had not parked 5 s after its job")
	}
}
