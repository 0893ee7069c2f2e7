package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// apiError is an error answer: a status and what to tell the client.
type apiError struct {
	code       int
	msg        string
	set        string // the set it is about, "" when none
	retryAfter bool   // send Retry-After (503s)
	allow      bool   // send Allow: GET, HEAD (405s)
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func unavailable(set, format string, args ...any) *apiError {
	return &apiError{code: http.StatusServiceUnavailable, msg: fmt.Sprintf(format, args...), set: set, retryAfter: true}
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Set   string `json:"set,omitempty"`
}

// writeError answers r with e as JSON.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	b, _ := json.Marshal(errorBody{Error: e.msg, Set: e.set}) // cannot fail: two strings
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", contentJSON)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	if e.retryAfter {
		h.Set("Retry-After", s.retryAfter)
	}
	if e.allow {
		h.Set("Allow", "GET, HEAD")
	}
	w.WriteHeader(e.code)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// writeText answers r with a short plain-text body.
func writeText(w http.ResponseWriter, r *http.Request, code int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(text)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write([]byte(text))
	}
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}

const (
	contentJSON = "application/json; charset=utf-8"
	contentCSV  = "text/csv; charset=utf-8"
)
