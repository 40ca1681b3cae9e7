package mlflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tritongate/tritongate/internal/source"
)

// APIError is a non-2xx answer from the tracking server or the artifacts
// proxy. It unwraps to source.ErrNotFound (error_code
// RESOURCE_DOES_NOT_EXIST or NOT_FOUND; a missing alias, which MLflow
// answers with 400 INVALID_PARAMETER_VALUE) or source.ErrAccessDenied
// (PERMISSION_DENIED, UNAUTHENTICATED, CUSTOMER_UNAUTHORIZED, HTTP 401 or
// 403), so callers use errors.Is. A 404 that is not MLflow's JSON (the
// HTML page MLflow answers unknown routes with, a proxy's page) is not
// ErrNotFound: the URL is wrong, the model is not missing.
type APIError struct {
	// Op is what the client was doing: "get model version by alias".
	Op string
	// Subject names what it concerns: `registered model "ranker", alias "champion"`.
	Subject string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is MLflow's error_code ("RESOURCE_DOES_NOT_EXIST"), empty when
	// the body was not MLflow's JSON error.
	Code string
	// Message is MLflow's message, or the start of a non-JSON body.
	Message string

	retryAfter time.Duration // from a Retry-After header
	// notFound marks an answer that means "not found" although its code
	// does not say so (a missing alias).
	notFound bool
	// hint is appended to the message: what to do about it.
	hint string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mlflow: %s", e.Op)
	if e.Subject != "" {
		fmt.Fprintf(&b, " (%s)", e.Subject)
	}
	fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	if h := e.Hint(); h != "" {
		fmt.Fprintf(&b, " (%s)", h)
	}
	return b.String()
}

// Hint says what the answer probably means when MLflow's message alone
// would mislead, or "".
func (e *APIError) Hint() string {
	switch {
	case e.hint != "":
		return e.hint
	case e.StatusCode == http.StatusNotFound && e.Code == "":
		return "not an MLflow API answer: is the tracking URI the MLflow server, with its path prefix if it has one?"
	}
	return ""
}

// Unwrap returns the source sentinel the error maps to, or nil.
func (e *APIError) Unwrap() error {
	if e.notFound || e.missingObject() {
		return source.ErrNotFound
	}
	return sentinel(e.StatusCode, e.Code)
}

// Temporary reports whether the request may succeed if sent again, as in
// MLflow's own client: HTTP 408, 429 and 5xx, except 501 (MLflow's
// NOT_IMPLEMENTED), 505, the 503 of an endpoint the server runs without
// ("Endpoint: ... disabled due to the mlflow server running with
// `--no-serve-artifacts`"), and the 500 MLflow's artifacts proxy answers
// for an object missing from its store.
func (e *APIError) Temporary() bool {
	switch {
	case e.StatusCode == http.StatusRequestTimeout, e.StatusCode == http.StatusTooManyRequests:
		return true
	case e.StatusCode == http.StatusNotImplemented, e.StatusCode == http.StatusHTTPVersionNotSupported:
		return false
	case e.Disabled(), e.missingObject():
		return false
	case e.StatusCode >= 500 && e.StatusCode <= 599:
		return true
	}
	return false
}

// Disabled reports MLflow's answer for an endpoint switched off by how the
// server was started (plain-text 503 "Endpoint: <route> disabled due to
// the mlflow server running with `--no-serve-artifacts`...").
func (e *APIError) Disabled() bool {
	return e.StatusCode == http.StatusServiceUnavailable && e.Code == "" &&
		strings.HasPrefix(e.Message, "Endpoint: ") && strings.Contains(e.Message, " disabled ")
}

// missingObject is the artifacts proxy's answer for a file its store does
// not have: HTTP 500 INTERNAL_ERROR whose message quotes the store's 404
// ("An error occurred (404) when calling the HeadObject operation: Not
// Found").
func (e *APIError) missingObject() bool {
	return e.StatusCode == http.StatusInternalServerError && e.Code == "INTERNAL_ERROR" &&
		strings.Contains(e.Message, "(404) when calling the HeadObject operation")
}

func sentinel(status int, code string) error {
	switch code {
	case "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND":
		return source.ErrNotFound
	case "PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED":
		return source.ErrAccessDenied
	case "ENDPOINT_NOT_FOUND":
		// The server does not have this API (an old MLflow, or BaseURL
		// pointing somewhere else): a configuration problem, not a
		// missing model.
		return nil
	}
	switch status {
	case http.StatusNotFound:
		if code != "" {
			return source.ErrNotFound // MLflow's JSON with another code
		}
		return nil // not MLflow's answer: a wrong URL (see Hint)
	case http.StatusUnauthorized, http.StatusForbidden:
		return source.ErrAccessDenied
	}
	return nil
}

// maxErrorMessage bounds the message kept from an error body.
const maxErrorMessage = 1024

// parseErrorBody reads an MLflow error body, {"error_code": "...",
// "message": "..."}; anything else (an HTML page from a proxy, the auth
// plugin's plain text) gives no code and the start of the body as message.
// The message is valid UTF-8 of at most maxErrorMessage bytes.
func parseErrorBody(body []byte) (code, message string) {
	var e struct {
		ErrorCode any `json:"error_code"`
		Message   any `json:"message"`
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &e) == nil {
		if s, ok := e.ErrorCode.(string); ok && isErrorCode(s) {
			code = s
		}
		if s, ok := e.Message.(string); ok {
			message = s
		}
		if code != "" || message != "" {
			return code, clip(message)
		}
	}
	return "", clip(string(trimmed))
}

// isErrorCode accepts MLflow's error code spelling: upper-case letters,
// digits and underscores, not too long. Anything else is not trusted as a
// code (it would be printed unquoted).
func isErrorCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	if len(s) <= maxErrorMessage {
		return s
	}
	cut := maxErrorMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
