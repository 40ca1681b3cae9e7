package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tritongate/tritongate/internal/source"
)

// errKind is what a failed attempt means for the next one.
type errKind int

const (
	permanent errKind = iota
	transient
	notFound
	denied
)

// errTruncated marks a body that ended (or broke) before its length: the
// attempt is retried for the missing bytes.
var errTruncated = errors.New("response body truncated")

// errChanged marks an object that is no longer what was described or what
// earlier parts returned (ETag, size): never retried. The version's
// description is stale, hence a digest mismatch.
var errChanged = fmt.Errorf("object changed (%w)", source.ErrDigestMismatch)

// errLocal marks a failure on the local side (writing the stage): never
// retried against S3.
var errLocal = errors.New("on the local disk")

var sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// classify says whether an attempt's error is worth another attempt.
func classify(err error) errKind {
	if errors.Is(err, errChanged) || errors.Is(err, errLocal) {
		return permanent
	}
	if errors.Is(err, errTruncated) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return transient
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch code {
	case "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchVersion":
		return notFound
	case "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccountProblem", "InvalidObjectState":
		return denied
	case "RequestTimeTooSkewed", "ExpiredToken", "RequestExpired", "InternalError", "ServiceUnavailable",
		"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "TooManyRequests", "ServiceFailure":
		// The SDK corrects its clock offset and refreshes credentials from
		// every response, so skew and expiry errors heal on the next attempt.
		return transient
	case "PreconditionFailed", "InvalidRange":
		return permanent
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		switch s := re.Response.StatusCode; {
		case s == 404:
			return notFound
		case s == 403:
			return denied
		case s == 429 || s == 500 || s == 502 || s == 503 || s == 504:
			return transient
		case s == 412 || s == 416:
			return permanent
		}
	}
	if sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary {
		return transient
	}
	return permanent
}

// attempt runs fn until it succeeds, fails for good, or ctx ends: each
// attempt gets its own timeout (RequestTimeout), transient failures are
// retried up to Retries times with exponential backoff and full jitter. The
// returned error is the last attempt's, mapped to the source sentinels for
// 403/404, and names what (an s3:// URI).
func (st *Store) attempt(ctx context.Context, what, action string, fn func(ctx context.Context) error) error {
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, st.timeout)
		err := fn(actx)
		timedOut := actx.Err() == context.DeadlineExceeded
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", action, what, ctxErr(ctx))
		}
		kind := classify(err)
		if timedOut {
			kind = transient
			err = fmt.Errorf("attempt timed out after %v: %w", st.timeout, err)
		}
		switch kind {
		case notFound:
			hint := "deleted since the version was described? describe it again"
			if action == "listing" {
				hint = "does the bucket exist?"
			}
			return fmt.Errorf("%s %s: %w (%s): %v", action, what, source.ErrNotFound, hint, err)
		case denied:
			var ae smithy.APIError
			if errors.As(err, &ae) && (ae.ErrorCode() == "SignatureDoesNotMatch" || ae.ErrorCode() == "InvalidAccessKeyId") {
				return fmt.Errorf("%s %s: %w (S3 refused the credentials themselves, %s: a wrong access key id or secret, or the wrong endpoint): %v", action, what, source.ErrAccessDenied, ae.ErrorCode(), err)
			}
			perm := "s3:GetObject"
			if action == "listing" {
				perm = "s3:ListBucket"
			}
			return fmt.Errorf("%s %s: %w (the credentials lack %s on it: check the IAM role and the bucket policy): %v", action, what, source.ErrAccessDenied, perm, err)
		case permanent:
			return fmt.Errorf("%s %s: %w", action, what, err)
		}
		if n >= st.retries {
			return fmt.Errorf("%s %s: giving up after %d attempts: %w", action, what, n+1, err)
		}
		d := st.backoff(n)
		st.log.Info("s3: retrying", "object", what, "action", action, "attempt", n+1, "delay", d.Round(time.Millisecond).String(), "err", err)
		if st.onRetry != nil {
			st.onRetry(action)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s %s: %w", action, what, ctxErr(ctx))
		case <-t.C:
		}
	}
}

// backoff is the delay before retry n+1: uniform in [0, min(max, base*2^n)]
// ("full jitter"), so that many workers hit by the same SlowDown spread out.
func (st *Store) backoff(n int) time.Duration {
	c := st.baseDelay
	for i := 0; i < n && c < st.maxDelay; i++ {
		c *= 2
	}
	c = min(c, st.maxDelay)
	if c <= 0 {
		return 0
	}
	return rand.N(c + 1)
}

// ctxErr is ctx's error, with its cause when it has one of its own.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if c := context.Cause(ctx); c != nil && c != err {
		return fmt.Errorf("%w: %w", err, c)
	}
	return err
}

// isInvalidRange says whether err is S3's 416 InvalidRange: the object is
// shorter than the range asked for.
func isInvalidRange(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == 416
}
