package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// barProgress draws a progress bar per download on a terminal.
type barProgress struct{ p *mpb.Progress }

func newBars(w io.Writer) *barProgress {
	return &barProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(150*time.Millisecond))}
}

func (b *barProgress) Start(model string, version int64, total int64) (func(int64), func(error)) {
	name := fmt.Sprintf("%s v%d", model, version)
	bar := b.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace}),
			decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.OnComplete(decor.Percentage(decor.WCSyncSpace), "done"),
			decor.AverageSpeed(decor.SizeB1024(0), " % .1f", decor.WCSyncSpace)),
	)
	return func(n int64) { bar.IncrInt64(n) }, func(err error) {
		if err != nil {
			bar.Abort(false)
			return
		}
		bar.SetTotal(-1, true)
	}
}

func (b *barProgress) Wait() { b.p.Wait() }

// logProgress writes a log line per active download every interval (for
// logs collected by Kubernetes, where bars would be noise).
type logProgress struct {
	log      *slog.Logger
	mu       sync.Mutex
	active   map[*download]bool
	stop     chan struct{}
	interval time.Duration
}

type download struct {
	name       string
	total      int64
	done       atomic.Int64
	start      time.Time
	lastLogged int64
}

func newLogProgress(log *slog.Logger, interval time.Duration) *logProgress {
	p := &logProgress{log: log, active: map[*download]bool{}, stop: make(chan struct{}), interval: interval}
	go p.loop()
	return p
}

func (p *logProgress) Start(model string, version int64, total int64) (func(int64), func(error)) {
	d := &download{name: fmt.Sprintf("%s v%d", model, version), total: total, start: time.Now()}
	p.mu.Lock()
	p.active[d] = true
	p.mu.Unlock()
	return func(n int64) { d.done.Add(n) }, func(err error) {
		p.mu.Lock()
		delete(p.active, d)
		p.mu.Unlock()
		secs := time.Since(d.start).Seconds()
		if err != nil {
			p.log.Warn("download failed", "version", d.name, "bytes", d.done.Load(), "of", d.total, "error", err)
			return
		}
		p.log.Info("downloaded", "version", d.name, "bytes", d.total, "seconds", fmt.Sprintf("%.2f", secs), "MiB/s", fmt.Sprintf("%.1f", float64(d.total)/(1<<20)/max(secs, 1e-9)))
	}
}

func (p *logProgress) loop() {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			for d := range p.active {
				n := d.done.Load()
				if n == d.lastLogged {
					continue
				}
				d.lastLogged = n
				pct := 100.0
				if d.total > 0 {
					pct = 100 * float64(n) / float64(d.total)
				}
				p.log.Info("downloading", "version", d.name, "bytes", n, "of", d.total, "percent", fmt.Sprintf("%.0f", pct))
			}
			p.mu.Unlock()
		}
	}
}

func (p *logProgress) Close() { close(p.stop) }
