// Package httpapi is the HTTP API every tcs agent serves:
//
//	GET /v1/smartsets          every set: name, location, owner, owner endpoint, epoch, state
//	GET /v1/smartsets/{name}   the set's table (this agent owns it), or 307 to its owner;
//	                           ?index=N&wait=D blocks, ?stale=1 reads a fenced agent's last table
//	GET /healthz               200 "ok" while the process is alive
//	GET /readyz                200 when registered and watching, else 503 and why
//	GET /metrics               Prometheus
//	GET /                      a status page
//
// Only GET and HEAD are served (405 otherwise); every error is JSON,
// {"error": "...", "set": "..."}.
//
// The package sees the rest of the agent only through two small interfaces
// it defines: Swarm (who owns what, is this agent fenced or ready) and Tables
// (the cached tables). A table is served only by its owner, and only while
// Swarm.Owns says the agent owns it and is not fenced, at the epoch of the
// table: the epoch travels with every answer (ETag, TCS-Epoch) so a client or
// proxy can drop answers from a stale owner. A set owned by another live
// agent is answered with 307 to that agent's tcsEndpoint (never to this
// agent); a set with no live owner, or any set asked of a fenced agent
// (which cannot vouch for its view of the directory), with 503 and
// Retry-After.
//
// A set's name is whatever cn the directory holds: the one path segment
// after /v1/smartsets/, percent-decoded, is the name when it is valid UTF-8
// without control characters and at most MaxNameLen characters (else 400).
// Names are only looked up, never used as file paths: "..", "." and
// "a%2Fb" are names like any other, 404 unless a set is called that. A raw
// "/" after the name is a 400. The package routes on the raw path itself,
// so a path such as /v1/smartsets/../etc/passwd is never cleaned or
// redirected. A 307's Location percent-encodes the name and keeps the
// request's query string.
//
// Every table answer carries TCS-Index, an integer that only grows for a
// set across content changes and owners (tablecache: epoch<<32 | the
// owner's revision). Blocking reads, as Consul's: ?index=N&wait=30s
// waits while this agent serves the set at an index not above N, and
// answers at the first change (Changes), when the agent stops serving the
// set (a 307 or 503 at once), when the wait (default 5m, at most 10m, plus
// up to 1/16 jitter) ends, or when the server shuts down. Waiting costs no
// goroutine beyond the request's own: waiters of a set share one channel
// that the table cache closes on change.
//
// Stale reads, as Consul's: a fenced agent answers 503, but with ?stale=1
// or the header TCS-Allow-Stale: 1 it answers 200 with the last table of a
// set its last view says it owns, with TCS-Stale: true, TCS-Fenced: true
// and TCS-Age (Standing).
//
// Tables are JSON by default and CSV on request (Accept: text/csv or
// ?format=csv; the query parameter wins over Accept, and when the Accept
// header likes both equally JSON is chosen). A malformed Accept header is a
// 400, one that rules out both formats a 406. In CSV the first line
// holds the column names, then one line per row (lines end in "\n"), and a
// cell with several values joins them with ";" — a value that itself holds
// ";" cannot be told apart in CSV, so use JSON for such data. Rendered bytes
// are kept per set and ETag, so a hot GET writes cached bytes; only the
// "refreshed", "stale", "age_seconds" and "error" members at the end of the
// JSON object are written per request.
package httpapi
