//go:build !unix

package inproc

import "net"

// pair returns the two ends of a synchronous in-memory pipe.
func pair() (net.Conn, net.Conn, error) {
	a, b := net.Pipe()
	return a, b, nil
}
