package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tritongate/tritongate/internal/catalog"
)

// CatalogReader reads the catalog document; tag identifies its version
// (an ETag, a modification time) so unchanged documents are not re-parsed.
type CatalogReader interface {
	Read(ctx context.Context) (data []byte, tag string, err error)
	// Name is where it is read from, for messages.
	Name() string
}

// Watch reconciles on every catalog change and at least every interval,
// until ctx ends. A catalog that cannot be read or is invalid is reported
// and the last good one stays in effect. poll is how often the catalog is
// re-read (0: only on trigger and interval); trigger makes it re-read the
// catalog at once (file change notifications, SIGHUP): a changed catalog is
// reconciled at once, an unchanged one waits for the interval as before.
// force reconciles at once, changed or not (SIGHUP).
func (s *Syncer) Watch(ctx context.Context, r CatalogReader, interval, poll time.Duration, trigger, force <-chan struct{}) error {
	var current *catalog.Catalog
	var lastTag, badTag string
	var next time.Time // when the next reconcile is due
	for {
		c, tag, err := s.readCatalog(ctx, r, lastTag)
		var bad *badCatalog
		switch {
		case errors.As(err, &bad) && bad.tag != "" && bad.tag == badTag:
			// The same invalid document: reported already.
		case err != nil:
			if errors.As(err, &bad) {
				badTag = bad.tag
			}
			s.m.catalogReads.WithLabelValues("error").Inc()
			s.log.Error("catalog not read; the last good one stays in effect", "catalog", r.Name(), "error", err)
		case c != nil:
			s.m.catalogReads.WithLabelValues("ok").Inc()
			if current != nil {
				s.log.Info("catalog changed", "catalog", r.Name(), "digest", c.Digest)
			}
			current, lastTag, next = c, tag, time.Time{}
			badTag = "" // a bad document coming back is news again
		}
		if current != nil && !time.Now().Before(next) {
			s.Reconcile(ctx, current)
			next = time.Now().Add(interval)
		}
		wait := time.Until(next)
		if poll > 0 && poll < wait {
			wait = poll
		}
		if current == nil {
			wait = min(poll, 5*time.Second) // no catalog yet: try again soon
			if wait <= 0 {
				wait = 5 * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
			// Re-read the catalog now (a new document reconciles at once,
			// an unchanged one does not), once a burst of notifications
			// (an editor's write, rename and chmod) has settled.
			debounce(ctx, trigger, triggerDebounce)
		case <-force:
			next = time.Time{}
		case <-time.After(wait):
		}
	}
}

// triggerDebounce is how long Watch lets triggers settle before it reads.
const triggerDebounce = 100 * time.Millisecond

// debounce waits until no trigger came for d (or ctx ends), consuming
// the triggers that do.
func debounce(ctx context.Context, trigger <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
			t.Reset(d)
		case <-t.C:
			return
		}
	}
}

// readCatalog reads and parses the catalog if its tag changed (nil, "", nil
// when unchanged).
func (s *Syncer) readCatalog(ctx context.Context, r CatalogReader, lastTag string) (*catalog.Catalog, string, error) {
	data, tag, err := r.Read(ctx)
	if err != nil {
		return nil, "", err
	}
	if tag != "" && tag == lastTag {
		return nil, "", nil
	}
	c, err := catalog.Parse(r.Name(), data)
	if err != nil {
		return nil, "", &badCatalog{tag: tag, err: err}
	}
	return c, tag, nil
}

// badCatalog is an invalid catalog document, with its tag so that it is
// reported once.
type badCatalog struct {
	tag string
	err error
}

func (b *badCatalog) Error() string { return b.err.Error() }
func (b *badCatalog) Unwrap() error { return b.err }

// Handler serves /status (JSON), /readyz (200 once every model of the pool
// has a version in service, 503 otherwise: a failed rollout or a source
// outage does not take a pod whose models serve out of service; /status
// says whether everything is in sync) and /livez.
func (s *Syncer) Handler(reg prometheus.Gatherer, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Status())
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := s.Status()
		if !st.Ready {
			http.Error(w, "not every model has a version in service: see /status", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	return mux
}

// ErrNotInPlace is returned by Init when models are not in place.
var ErrNotInPlace = errors.New("not every model is in place")

// Init reconciles until every model is in place or ctx ends (retrying
// failures after backoff, e.g. a Triton still starting), and returns the
// last result. With allowRefused it also returns once the only models not
// in place are those whose versions were refused (Result.OnlyRefused).
func (s *Syncer) Init(ctx context.Context, c *catalog.Catalog, retry time.Duration, allowRefused bool) Result {
	for {
		res := s.Reconcile(ctx, c)
		if res.OK() || (allowRefused && res.OnlyRefused()) {
			return res
		}
		select {
		case <-ctx.Done():
			return res
		case <-time.After(retry):
		}
	}
}
