package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

const modelInferMethod = "/inference.GRPCInferenceService/ModelInfer"

// Target is the endpoint under test.
type Target struct {
	Address string
	// TLS, when set, secures the connections.
	TLS *tls.Config
	// Headers are sent with every request (tenant, priority, version pin...).
	Headers map[string]string
	// Connections is how many HTTP/2 connections to spread requests over
	// (default 1).
	Connections int
}

// Dial opens one connection to the target (for BuildRequests and tools).
func Dial(t Target) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if t.TLS != nil {
		creds = credentials.NewTLS(t.TLS)
	}
	return grpc.NewClient(t.Address, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
}

// Workload is one model's requests and its share of the load.
type Workload struct {
	Model    string
	Weight   int
	Requests []Request
}

// Mode is a schedule kind.
type Mode string

// Schedules.
const (
	ClosedLoop Mode = "closed"
	Sweep      Mode = "sweep"
	OpenLoop   Mode = "open"
)

// Config is one load test.
type Config struct {
	Target    Target
	Workloads []Workload
	Mode      Mode
	// Closed loop: Concurrency clients, each sending its next request when
	// the previous one returns, for Duration.
	Concurrency int
	Duration    time.Duration
	// Sweep: closed loop at each of Levels for StepDuration each.
	Levels       []int
	StepDuration time.Duration
	// Open loop: requests at the times Profile and Arrival call for, each
	// measured from that intended time; at most MaxInFlight outstanding.
	Profile     Profile
	Arrival     Arrival
	MaxInFlight int
	// LateAfter is how late an open-loop send may be before it counts as a
	// missed slot (default 1ms).
	LateAfter time.Duration
	// Warmup runs before measuring (at the first level or rate) and is not recorded.
	Warmup time.Duration
	// Window is the reporting interval (default 1s).
	Window time.Duration
	// Timeout is each request's deadline (0: none).
	Timeout time.Duration
	// Seed drives the Poisson arrivals and the choice of models.
	Seed uint64
	// Verify decodes every response (costs CPU; off by default).
	Verify bool
	// Transport: TransportH2 (default, the lean client) or TransportGRPC
	// (grpc-go).
	Transport string
}

// Transports.
const (
	TransportH2   = "h2"
	TransportGRPC = "grpc"
)

// Progress is a live view of a run, reported about once a second.
type Progress struct {
	Elapsed  time.Duration
	Total    time.Duration
	Phase    string // "warmup", "measure", or "concurrency N" in a sweep
	Sent     int64
	OK       int64
	Errors   int64
	InFlight int64
	// Rate is completions per second over the last interval.
	Rate float64
}

// Result is a finished run: what JSON reports hold.
type Result struct {
	Target       string             `json:"target"`
	Description  string             `json:"schedule"`
	Models       []string           `json:"models"`
	Started      time.Time          `json:"started"`
	Summary      Stats              `json:"summary"`
	PerModel     map[string]Stats   `json:"per_model"`
	Steps        []Step             `json:"steps,omitempty"`
	Windows      []Window           `json:"windows"`
	Distribution []Bucket           `json:"distribution"`
	SendRate     float64            `json:"send_rate_rps"`
	LateSends    int64              `json:"late_sends"`
	MaxSendLag   float64            `json:"max_send_lag_ms"`
	WindowSecs   float64            `json:"window_s"`
	Extra        map[string]float64 `json:"extra,omitempty"`
}

// Step is one level of a concurrency sweep.
type Step struct {
	Concurrency int `json:"concurrency"`
	Stats
}

func (c *Config) validate() error {
	if c.Target.Address == "" {
		return errors.New("no target address")
	}
	if len(c.Workloads) == 0 {
		return errors.New("no models to load")
	}
	for _, w := range c.Workloads {
		if len(w.Requests) == 0 {
			return fmt.Errorf("model %s: no requests", w.Model)
		}
		if w.Weight < 0 {
			return fmt.Errorf("model %s: negative weight", w.Model)
		}
	}
	switch c.Mode {
	case ClosedLoop:
		if c.Concurrency < 1 || c.Duration <= 0 {
			return errors.New("closed loop needs a concurrency >= 1 and a duration > 0")
		}
	case Sweep:
		if len(c.Levels) == 0 || c.StepDuration <= 0 {
			return errors.New("a sweep needs concurrency levels and a step duration > 0")
		}
	case OpenLoop:
		if err := c.Profile.Validate(); err != nil {
			return err
		}
		if c.Arrival != Uniform && c.Arrival != Poisson {
			return fmt.Errorf("arrival %q: want uniform or poisson", c.Arrival)
		}
	default:
		return fmt.Errorf("unknown schedule %q", c.Mode)
	}
	if c.Transport != TransportH2 && c.Transport != TransportGRPC {
		return fmt.Errorf("transport %q: want h2 or grpc", c.Transport)
	}
	return nil
}

// runner is one run in progress.
type runner struct {
	cfg    Config
	caller caller
	ctx    context.Context
	rec    *recorder
	pick   []int // workload index per slot, by weight
	next   atomic.Uint64
	vars   []atomic.Uint64

	sent, ok, errs, inflight atomic.Int64
}

// Run runs a load test. progress (may be nil) is called about once a second.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (*Result, error) {
	if cfg.Window <= 0 {
		cfg.Window = time.Second
	}
	if cfg.LateAfter <= 0 {
		cfg.LateAfter = time.Millisecond
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.Target.Connections <= 0 {
		cfg.Target.Connections = 1
	}
	if cfg.Arrival == "" {
		cfg.Arrival = Uniform
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportH2
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, ctx: ctx, vars: make([]atomic.Uint64, len(cfg.Workloads))}
	for i, w := range cfg.Workloads {
		weight := w.Weight
		if weight == 0 {
			weight = 1
		}
		for range weight {
			r.pick = append(r.pick, i)
		}
	}
	var err error
	switch cfg.Transport {
	case TransportGRPC:
		r.caller, err = newGRPCCaller(ctx, cfg.Target)
	default:
		r.caller, err = newH2Caller(ctx, cfg.Target, cfg.Timeout)
	}
	if err != nil {
		return nil, err
	}
	defer r.caller.close()

	total := cfg.Warmup
	switch cfg.Mode {
	case ClosedLoop:
		total += cfg.Duration
	case Sweep:
		total += time.Duration(len(cfg.Levels)) * cfg.StepDuration
	case OpenLoop:
		total += cfg.Profile.Duration()
	}
	stopProgress := r.reportProgress(progress, total)
	defer stopProgress()

	res := &Result{Target: cfg.Target.Address, Description: describe(cfg), WindowSecs: cfg.Window.Seconds()}
	for _, w := range cfg.Workloads {
		res.Models = append(res.Models, w.Model)
	}
	switch cfg.Mode {
	case ClosedLoop:
		if err = r.warmupClosed(cfg.Concurrency); err == nil {
			r.rec = newRecorder(time.Now(), cfg.Window, len(cfg.Workloads))
			res.Started = r.rec.start
			r.closed(cfg.Concurrency, r.rec.start.Add(cfg.Duration), r.rec)
		}
	case Sweep:
		if err = r.warmupClosed(cfg.Levels[0]); err == nil {
			r.rec = newRecorder(time.Now(), cfg.Window, len(cfg.Workloads))
			res.Started = r.rec.start
			for _, c := range cfg.Levels {
				if ctx.Err() != nil {
					break
				}
				step := newRecorder(time.Now(), cfg.Window, len(cfg.Workloads))
				r.closed(c, step.start.Add(cfg.StepDuration), r.rec, step)
				res.Steps = append(res.Steps, Step{Concurrency: c, Stats: statsOf(step.all, time.Since(step.start).Seconds())})
			}
		}
	case OpenLoop:
		res.Started = r.open()
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.finish(res)
	return res, nil
}

func describe(cfg Config) string {
	switch cfg.Mode {
	case ClosedLoop:
		return fmt.Sprintf("closed loop, concurrency %d, %s (warm-up %s)", cfg.Concurrency, cfg.Duration, cfg.Warmup)
	case Sweep:
		return fmt.Sprintf("closed-loop sweep over concurrency %v, %s each (warm-up %s)", cfg.Levels, cfg.StepDuration, cfg.Warmup)
	default:
		return fmt.Sprintf("open loop, %s arrivals: %s (warm-up %s)", cfg.Arrival, cfg.Profile, cfg.Warmup)
	}
}

// finish turns the recorder into the result.
func (r *runner) finish(res *Result) {
	rec := r.rec
	seconds := r.measured()
	res.Summary = statsOf(rec.all, seconds)
	res.PerModel = map[string]Stats{}
	for i, w := range r.cfg.Workloads {
		res.PerModel[w.Model] = statsOf(rec.models[i], seconds)
	}
	for i, a := range rec.windows {
		res.Windows = append(res.Windows, Window{Start: (time.Duration(i) * rec.window).Seconds(), Stats: statsOf(a, rec.window.Seconds())})
	}
	res.Distribution = distribution(rec.all.h)
	if seconds > 0 {
		res.SendRate = float64(res.Summary.Requests) / seconds
	}
	res.LateSends = rec.late
	res.MaxSendLag = float64(rec.maxLag.Microseconds()) / 1000
}

// measured is the length of the measurement period.
func (r *runner) measured() float64 {
	switch r.cfg.Mode {
	case ClosedLoop:
		return r.cfg.Duration.Seconds()
	case Sweep:
		return (time.Duration(len(r.cfg.Levels)) * r.cfg.StepDuration).Seconds()
	default:
		return r.cfg.Profile.Duration().Seconds()
	}
}

// issue sends one request of a chosen workload; done runs once with its
// outcome. fromCallback marks sends made from a completion callback.
func (r *runner) issue(lane int, fromCallback bool, done func(w int, rows int64, code codes.Code)) {
	w := r.pick[r.next.Add(1)%uint64(len(r.pick))]
	wl := &r.cfg.Workloads[w]
	req := &wl.Requests[r.vars[w].Add(1)%uint64(len(wl.Requests))]
	var deadline time.Time
	if r.cfg.Timeout > 0 {
		deadline = time.Now().Add(r.cfg.Timeout)
	}
	r.sent.Add(1)
	r.inflight.Add(1)
	r.caller.call(req, deadline, r.cfg.Verify, lane, fromCallback, func(code codes.Code, resp []byte) {
		r.inflight.Add(-1)
		if code == codes.OK && r.cfg.Verify {
			if err := verifyResponse(resp, wl.Model); err != nil {
				code = codes.DataLoss
			}
		}
		if code == codes.OK {
			r.ok.Add(1)
		} else {
			r.errs.Add(1)
		}
		done(w, req.Rows, code)
	})
}

// warmupClosed runs the closed loop unrecorded for the warm-up period.
func (r *runner) warmupClosed(concurrency int) error {
	if r.cfg.Warmup <= 0 {
		return nil
	}
	r.closed(concurrency, time.Now().Add(r.cfg.Warmup))
	if r.ok.Load() == 0 && r.errs.Load() > 0 {
		return fmt.Errorf("every warm-up request failed (%d)", r.errs.Load())
	}
	return nil
}

// closed runs concurrency clients until the deadline, recording into recs:
// each client sends its next request as soon as its previous one completes
// (from the completion itself: no goroutine per client).
func (r *runner) closed(concurrency int, deadline time.Time, recs ...*recorder) {
	var wg sync.WaitGroup
	wg.Add(concurrency)
	var client func(lane int, fromCallback bool)
	client = func(lane int, fromCallback bool) {
		start := time.Now()
		if !start.Before(deadline) || r.ctx.Err() != nil {
			wg.Done()
			return
		}
		r.issue(lane, fromCallback, func(w int, rows int64, code codes.Code) {
			done := time.Now()
			for _, rec := range recs {
				rec.record(w, done, done.Sub(start), code, rows)
			}
			client(lane, true)
		})
	}
	for lane := range concurrency {
		client(lane, false)
	}
	r.wait(&wg)
}

// wait waits for wg, or for the run to be cancelled (then fails what is in
// flight so that every callback returns).
func (r *runner) wait(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-r.ctx.Done():
		r.caller.abort()
		<-done
	}
}

// open runs the open-loop schedule (after a warm-up at the starting rate) and
// returns when the measurement started. Each request is sent at its intended
// time and measured from it; at most MaxInFlight are outstanding (beyond
// that the schedule waits, and the wait counts in the latency).
func (r *runner) open() time.Time {
	profile := r.cfg.Profile
	warm := r.cfg.Warmup
	if warm > 0 {
		profile = append(Constant(profile.Rate(0), warm), profile...)
	}
	arr := newArrivals(profile, r.cfg.Arrival, r.cfg.Seed)
	begin := time.Now()
	measureStart := begin.Add(warm)
	r.rec = newRecorder(measureStart, r.cfg.Window, len(r.cfg.Workloads))
	slots := make(chan struct{}, r.cfg.MaxInFlight)
	var wg sync.WaitGroup

	// The dispatcher runs on this goroutine, which the pacer pins to a thread.
	pace := newPacer()
	defer pace.release()
loop:
	for {
		off, ok := arr.next()
		if !ok {
			break
		}
		at := begin.Add(off)
		for d := time.Until(at); d > 0; d = time.Until(at) {
			if r.ctx.Err() != nil {
				break loop
			}
			pace.sleep(d)
		}
		select {
		case slots <- struct{}{}:
		case <-r.ctx.Done():
			break loop
		}
		record := !at.Before(measureStart)
		if lag := time.Since(at); lag > r.cfg.LateAfter && record {
			r.rec.lateSend(lag)
		}
		wg.Add(1)
		r.issue(-1, false, func(w int, rows int64, code codes.Code) {
			if record {
				done := time.Now()
				r.rec.record(w, done, done.Sub(at), code, rows)
			}
			<-slots
			wg.Done()
		})
	}
	r.wait(&wg)
	return measureStart
}

// reportProgress calls fn once a second until the returned stop is called.
func (r *runner) reportProgress(fn func(Progress), total time.Duration) func() {
	if fn == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastDone int64
		last := start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				ok, errs := r.ok.Load(), r.errs.Load()
				p := Progress{Elapsed: now.Sub(start), Total: total, Sent: r.sent.Load(), OK: ok, Errors: errs, InFlight: r.inflight.Load()}
				p.Rate = float64(ok+errs-lastDone) / now.Sub(last).Seconds()
				lastDone, last = ok+errs, now
				p.Phase = "measure"
				if p.Elapsed < r.cfg.Warmup {
					p.Phase = "warmup"
				}
				fn(p)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
