//go:build unix

package inproc

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// pair returns the two ends of a kernel-buffered socket pair: no name in
// any namespace, so nothing outside this process can connect to it, and
// deadlines and buffering behave as on any socket.
func pair() (net.Conn, net.Conn, error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("inproc: socketpair: %w", err)
	}
	a, err := fileConn(fds[0], "inproc-client")
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1], "inproc-server")
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FileConn holds its own duplicate
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("inproc: %w", err)
	}
	return c, nil
}
