//go:build !linux

package loadtest

import "time"

// pacer falls back to Go's timers off Linux.
type pacer struct{}

func newPacer() *pacer { return &pacer{} }

func (*pacer) release() {}

func (*pacer) sleep(d time.Duration) { time.Sleep(min(d, 5*time.Millisecond)) }
