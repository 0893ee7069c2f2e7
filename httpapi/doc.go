// Package httpapi is the HTTP API every tcs agent serves:
//
//	GET /v1/smartsets          every set: name, location, owner, owner endpoint, epoch, state
//	GET /v1/smartsets/{name}   the set's table (this agent owns it), or 307 to its owner
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
// Set names are checked on the raw request path before anything else looks
// at it: a name is [A-Za-z0-9][A-Za-z0-9._-]{0,127}. Percent-encoded
// characters are decoded first (RFC 3986 treats %41 and A alike), so "%2e%2e"
// is rejected as "..", and "/" is never part of a name, plain or encoded.
// The package routes on the raw path itself, so a path such as
// /v1/smartsets/../etc/passwd is never cleaned or redirected: it is a 400.
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
