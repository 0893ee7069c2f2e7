package tablecache

import "time"

// Table is the cached result of one SmartSet's tcsQuery.
type Table struct {
	Set   string // the SmartSet's name (cn)
	Epoch int64  // the set's tcsEpoch when this agent took it: the fencing token served with the table
	Query string // the tcsQuery it came from

	// Columns are "dn" first, then the attributes the query's URL lists, in
	// its order (when it lists none: every attribute name seen, sorted).
	Columns []string
	// Rows[i][j] holds every value of Columns[j] for row i (an entry);
	// Rows[i][0] is the entry's DN, a single value. A missing attribute is
	// an empty slice. Rows are sorted by DN.
	Rows [][][]string

	// Refreshed is when the query last succeeded (zero when it never did).
	Refreshed time.Time
	// Stale is true while the source cannot be reached and Rows are the
	// last good result.
	Stale bool
	// Err describes the last failure ("" when the last refresh succeeded),
	// e.g. the source being down or the row limit exceeded.
	Err string
	// Failed is true when there are no good rows to serve at all: the query
	// never succeeded, or it exceeded the row limit (Err says which).
	Failed bool
	// ETag identifies this version of the table (epoch and content), quoted
	// as an HTTP entity tag, e.g. "\"3-9f86d081884c7d65\"".
	ETag string
	// Index only grows for a set, across content changes and owners:
	// Epoch<<32 | a revision of this owner that grows with every change
	// of what is served (rows, epoch, failure). See IndexOf.
	Index int64
}

// Age is how old the rows are at now.
func (t Table) Age(now time.Time) time.Duration {
	if t.Refreshed.IsZero() {
		return 0
	}
	return now.Sub(t.Refreshed)
}
