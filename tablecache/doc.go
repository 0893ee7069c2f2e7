// Package tablecache keeps, in memory, the result table of every SmartSet
// this agent owns: the search its tcsQuery (an RFC 4516 LDAP URL) describes,
// run against the set's location database.
//
// Where a query runs: on the server its URL names; else on the server of
// its location's tcsDatabaseURL; else on the tcs directory itself. A table
// is refreshed on a schedule (RefreshInterval, jittered per table) and on
// change: for each distinct (server, base, scope) the cache keeps one RFC
// 4533 watch, shared by every table that searches there, and after the
// watch's first sync any change refreshes those tables within about 100 ms.
// A server without syncprov is refreshed on the schedule only.
//
// What a reader sees (Get) is always a whole table of one moment. When the
// source cannot be reached the last good rows stay, marked Stale with Err
// saying why, and the cache retries sooner (1 s doubling up to the
// interval) so the table is fresh again soon after the source returns. A
// query that cannot be answered at all (it does not parse, its base does
// not exist, it matches more than RowLimit rows) gives a Failed table with
// no rows and Err saying why.
//
// Every table carries an Index that only grows for its set, across content
// changes and owners (Epoch<<32 | a revision; index.go says why it holds
// after a failover and a restart), and Changed returns a channel closed at
// the table's next change: the HTTP API's blocking reads wait on it.
//
// Ownership is the agent's business: it calls Own when it owns a set (or
// its epoch or query changed) and Drop when it no longer does. Drop wins
// over a refresh in flight: its result is thrown away. The epoch a table
// carries is the fencing token of the owner that loaded it, part of its
// ETag, so a client can tell tables of two owners apart.
package tablecache
