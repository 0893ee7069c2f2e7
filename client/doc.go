// Package client reads SmartSet tables from a tcs swarm over its HTTP API
// and enforces the fencing rule for its callers.
//
// A Client knows a list of agent endpoints; any agent answers for any set
// (with a 307 to the set's owner, which the client follows, at most
// Options.MaxRedirects times). When an agent cannot be reached the client
// fails over to the next one, and does not ask that agent again, directly
// or by a redirect, until every other has been asked. A 503 (the set is
// changing hands, or the agent is fenced) sends the client to the next
// agent at once, which may already know the new owner; no agent is asked
// again before the Retry-After (with jitter) it gave. When no agent
// answers, the pause between rounds grows to at most Options.RetryAfter.
//
// Fencing outward, enforced: every table carries its owner's epoch
// (TCS-Epoch) and an index that only grows (TCS-Index, epoch<<32 | the
// owner's revision). A Client never returns, from Get or Watch, a table of
// a set with a lower (epoch, index) than one it has returned for that set:
// an answer from a stale owner — one paused past its lease and resumed, or
// cut off from the directory — is dropped and the next agent asked. So a
// caller never sees a set go back in time.
//
// Get reads a table once. Watch yields the table and then every newer one,
// using the API's blocking reads (?index=N&wait=…): one request waits at
// the owner until the table changes, so a watch costs no polling. A Watch
// keeps going through failovers: when the owner dies it finds the new
// owner and yields its table (a higher epoch).
//
// With Options.Stale the client asks for stale reads (?stale=1): a fenced
// agent then answers with its last table instead of 503, and the table
// says so (Stale, Fenced, Age). The fencing rule applies to those too.
package client
