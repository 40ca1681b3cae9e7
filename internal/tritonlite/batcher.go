package tritonlite

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/proto/inference"
)

// batcher is Triton's dynamic batcher for one model version. Whenever an
// instance is idle it takes the oldest queued request and gathers the queued
// requests that can share an execution (same shapes past the batch dimension,
// same outputs) until the batch reaches the largest preferred batch size (or
// max_batch_size), or until the oldest request has waited
// max_queue_delay_microseconds. While every instance is busy requests pile up
// in the queue, so batches grow with load. The queue policy bounds the queue
// (max_queue_size) and its wait (default_timeout_microseconds), with Triton's
// errors.
type batcher struct {
	v        *version
	maxBatch int64
	target   int64
	delay    time.Duration
	maxQueue int
	policy   *inference.ModelQueuePolicy

	mu    sync.Mutex
	queue []*request
	wake  chan struct{}
	// busy counts instances executing a batch. Requests that idle instances
	// are about to take are not "queued" for max_queue_size.
	busy atomic.Int64

	quit    chan struct{}
	running sync.WaitGroup // the loop and the executions it started
}

func newBatcher(v *version, db *inference.ModelDynamicBatching) *batcher {
	b := &batcher{
		v:        v,
		maxBatch: int64(v.cfg.GetMaxBatchSize()),
		delay:    time.Duration(db.GetMaxQueueDelayMicroseconds()) * time.Microsecond,
		policy:   db.GetDefaultQueuePolicy(),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
	}
	b.maxQueue = int(b.policy.GetMaxQueueSize())
	b.target = b.maxBatch
	if ps := db.GetPreferredBatchSize(); len(ps) > 0 {
		b.target = int64(slices.Max(ps))
		if b.target > b.maxBatch {
			b.target = b.maxBatch
		}
	}
	return b
}

func (b *batcher) start() {
	b.running.Add(1)
	go b.loop()
}

func (b *batcher) stop() {
	close(b.quit)
	b.running.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.queue {
		r.answer(result{err: status.Error(codes.Unavailable, "[request id: "+requestID(r.id)+"] Server is stopping, scheduler for model has stopped accepting new inference requests")})
	}
	b.queue = nil
}

// enqueue adds r to the queue, or refuses it when the queue is full.
func (b *batcher) enqueue(r *request) error {
	if timeout := b.timeoutFor(r); timeout > 0 {
		r.expires = r.enqueued.Add(timeout)
	}
	b.mu.Lock()
	idle := int64(len(b.v.execs)) - b.busy.Load()
	if b.maxQueue > 0 && int64(len(b.queue)) >= int64(b.maxQueue)+idle*b.target {
		b.mu.Unlock()
		return status.Error(codes.Unavailable, "[request id: "+requestID(r.id)+"] Exceeds maximum queue size")
	}
	b.queue = append(b.queue, r)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

// timeoutFor is the queue timeout of r: the policy's default, or the
// request's own "timeout" parameter when the policy allows overriding and it
// is shorter (Triton ignores a request timeout when the default is 0).
func (b *batcher) timeoutFor(r *request) time.Duration {
	def := time.Duration(b.policy.GetDefaultTimeoutMicroseconds()) * time.Microsecond
	if def == 0 {
		return 0
	}
	if b.policy.GetAllowTimeoutOverride() {
		if t := r.timeout; t > 0 && t < def {
			return t
		}
	}
	return def
}

func (b *batcher) loop() {
	defer b.running.Done()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	for {
		// While every instance is busy, keep enforcing queue timeouts.
		var idx int
		waiting := true
		for waiting {
			expiry.Reset(b.nextExpiry())
			select {
			case idx = <-b.v.free:
				waiting = false
			case <-b.wake:
				b.expireQueued()
			case <-expiry.C:
				b.expireQueued()
			case <-b.quit:
				return
			}
		}
		reqs := b.gather()
		if reqs == nil {
			b.v.free <- idx
			return
		}
		b.busy.Add(1)
		b.running.Add(1)
		go func() {
			defer b.running.Done()
			ctx, cancel := allDone(b.v.ctx, reqs)
			b.v.execute(idx, reqs, ctx)
			cancel()
			b.busy.Add(-1)
			b.v.free <- idx
		}()
	}
}

// nextExpiry is how long until the earliest queued request times out.
func (b *batcher) nextExpiry() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := time.Hour
	if b.policy.GetTimeoutAction() != inference.ModelQueuePolicy_REJECT {
		return next
	}
	for _, r := range b.queue {
		if !r.expires.IsZero() {
			next = min(next, time.Until(r.expires)+time.Millisecond)
		}
	}
	return max(next, time.Millisecond)
}

// expireQueued drops the queued requests that timed out or were abandoned.
func (b *batcher) expireQueued() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	kept := b.queue[:0]
	for _, r := range b.queue {
		if !b.expired(r, now) {
			kept = append(kept, r)
		}
	}
	clear(b.queue[len(kept):])
	b.queue = kept
}

// expired drops a queued request that can no longer run: its client gave up,
// or its queue timeout passed (answered with Triton's error when the policy's
// action is REJECT, the default).
func (b *batcher) expired(r *request, now time.Time) bool {
	switch {
	case r.settled.Load():
	case !r.expires.IsZero() && now.After(r.expires) && b.policy.GetTimeoutAction() == inference.ModelQueuePolicy_REJECT:
		r.answerAfter(result{err: status.Error(codes.Unavailable, "Request timeout expired")}, func() { b.v.fail(r, "REJECTED", now.Sub(r.enqueued)) })
	default:
		return false
	}
	b.v.pendingGauge().Add(-1)
	return true
}

// gather blocks until a batch can be formed, and returns it (nil on stop).
func (b *batcher) gather() []*request {
	var batch []*request
	var size int64
	var key string
	var deadline time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	b.mu.Lock()
	for {
		now := time.Now()
		kept := b.queue[:0]
		for _, r := range b.queue {
			switch {
			case b.expired(r, now):
			case batch == nil:
				batch, size, key = []*request{r}, r.batch, r.key
				deadline = r.enqueued.Add(b.delay)
			case size < b.target && r.key == key && size+r.batch <= b.maxBatch:
				batch = append(batch, r)
				size += r.batch
			default:
				kept = append(kept, r)
			}
		}
		clear(b.queue[len(kept):])
		b.queue = kept
		if batch != nil && (size >= b.target || !now.Before(deadline)) {
			b.mu.Unlock()
			return batch
		}
		b.mu.Unlock()
		wait := time.Hour
		if batch != nil {
			wait = deadline.Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-b.wake:
		case <-timer.C:
		case <-b.quit:
			for _, r := range batch {
				r.answer(result{err: status.Error(codes.Unavailable, "[request id: "+requestID(r.id)+"] Server is stopping, scheduler for model has stopped accepting new inference requests")})
			}
			return nil
		}
		b.mu.Lock()
	}
}

// allDone returns a context that ends when parent ends or when every request's
// context has ended (a batch is abandoned only if all its clients are gone).
func allDone(parent context.Context, reqs []*request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		for _, r := range reqs {
			select {
			case <-r.ctx.Done():
			case <-ctx.Done():
				return
			}
		}
		cancel()
	}()
	return ctx, cancel
}
