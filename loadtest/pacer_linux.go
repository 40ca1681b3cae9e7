package loadtest

import (
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pacer sleeps precisely. Go's timers wake through the network poller with
// millisecond granularity (a 50µs sleep takes about 1.05ms here), which would
// make every open-loop send up to a millisecond late and add that to its
// latency. The pacer's goroutine owns its OS thread, sets the thread's timer
// slack to 1ns and sleeps with nanosleep: sends go out within ~30µs of their
// intended time, without spinning.
type pacer struct{}

func newPacer() *pacer {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	return &pacer{}
}

// release gives the thread back (call from the same goroutine).
func (*pacer) release() { runtime.UnlockOSThread() }

// sleep blocks for about d, in slices of at most 2ms (so callers can check
// for cancellation between calls). It sleeps in a raw system call: the
// thread keeps its P, so the scheduler neither hands the P to another thread
// nor wakes one to take it at every request (which doubled the generator's
// CPU cost at moderate rates); the goroutines that read responses run on the
// other Ps. A pending preemption or GC interrupts the sleep (EINTR) and is
// served before the next slice.
func (*pacer) sleep(d time.Duration) {
	d = min(d, 2*time.Millisecond)
	ts := unix.NsecToTimespec(int64(d))
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}
