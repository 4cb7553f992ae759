//go:build !linux

package kernels

// wakeup is a parked worker's wake-up call, posted at most once per wait
// (see wakeup_linux.go): a channel of one.
type wakeup struct{ c chan struct{} }

func (u *wakeup) init() { u.c = make(chan struct{}, 1) }
func (u *wakeup) wait() { <-u.c }
func (u *wakeup) post() { u.c <- struct{}{} }
