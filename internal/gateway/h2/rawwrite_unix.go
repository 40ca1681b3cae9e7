//go:build unix

package h2

import (
	"errors"
	"net"
	"syscall"
)

// rawConn returns the connection's raw file descriptor access for
// non-blocking writes (TCP and Unix sockets), nil otherwise.
func rawConn(nc net.Conn) syscall.RawConn {
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			return raw
		}
	}
	return nil
}

// tryWrite writes what the socket takes now, without waiting.
func tryWrite(raw syscall.RawConn, p []byte) (int, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if !errors.Is(werr, syscall.EINTR) {
				return true // never wait for the socket to become writable
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if werr != nil {
		if errors.Is(werr, syscall.EAGAIN) {
			return 0, nil
		}
		return 0, werr
	}
	return n, nil
}
