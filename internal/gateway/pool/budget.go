package pool

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Budget bounds retries: over a sliding window of ten seconds, retries may
// add at most Ratio of the requests plus MinPerSecond per second (for low
// traffic). A retry the budget refuses is not made.
type Budget struct {
	ratio, minPerSecond float64
	mu                  sync.Mutex
	buckets             [10]struct {
		second            int64
		requests, retries float64
	}
	now func() time.Time
}

// NewBudget makes a retry budget.
func NewBudget(ratio, minPerSecond float64) *Budget {
	return &Budget{ratio: ratio, minPerSecond: minPerSecond, now: time.Now}
}

func (b *Budget) bucket() int {
	sec := b.now().Unix()
	i := int(sec % int64(len(b.buckets)))
	if b.buckets[i].second != sec {
		b.buckets[i].second, b.buckets[i].requests, b.buckets[i].retries = sec, 0, 0
	}
	return i
}

// Request records a request (a first attempt).
func (b *Budget) Request() {
	b.mu.Lock()
	b.buckets[b.bucket()].requests++
	b.mu.Unlock()
}

// Retry reports whether a retry may be made now, and records it if so.
func (b *Budget) Retry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.bucket()
	sec := b.buckets[i].second
	var requests, retries float64
	for _, bk := range b.buckets {
		if sec-bk.second < int64(len(b.buckets)) {
			requests += bk.requests
			retries += bk.retries
		}
	}
	if retries+1 > b.ratio*requests+b.minPerSecond*float64(len(b.buckets)) {
		return false
	}
	b.buckets[i].retries++
	return true
}

// Backoff is the wait before retry number n (1-based): full jitter over
// [0, min(base * 2^(n-1), max)).
func Backoff(n int, base, maxWait time.Duration) time.Duration {
	d := base << min(n-1, 16)
	if d <= 0 || d > maxWait {
		d = maxWait
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}
