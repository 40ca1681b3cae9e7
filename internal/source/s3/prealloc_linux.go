package s3

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves size bytes for f (so a full disk fails now, not
// half-way through) and sets its length.
func preallocate(f *os.File, size int64) error {
	if size > 0 {
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var ferr error
		if err := rc.Control(func(fd uintptr) { ferr = unix.Fallocate(int(fd), 0, 0, size) }); err != nil {
			return err
		}
		if ferr != nil && !errors.Is(ferr, unix.EOPNOTSUPP) && !errors.Is(ferr, unix.ENOSYS) && !errors.Is(ferr, unix.EINTR) {
			return ferr
		}
	}
	return f.Truncate(size)
}
