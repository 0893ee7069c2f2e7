package client

import (
	"context"
	"errors"
	"iter"
)

// Watch yields set's table, then every newer one, until ctx ends (it then
// stops without an error) or an error ends it: ErrNotFound or
// ErrBadRequest. ErrQueryFailed is yielded and the watch goes on (the
// owner may fix the query). Each table is above the previous one in
// (epoch, index): a change of rows raises the index, a new owner the
// epoch. Between changes one blocking request waits at the owner
// (Options.Wait at a time); failovers, redirects and retries are Get's.
func (c *Client) Watch(ctx context.Context, set string) iter.Seq2[Table, error] {
	return func(yield func(Table, error) bool) {
		var index, failed int64
		var have bool
		var last version
		for ctx.Err() == nil {
			var t Table
			var err error
			if !have {
				t, err = c.fetch(ctx, set, 0, 0)
			} else {
				t, err = c.fetch(ctx, set, index, c.opts.Wait)
			}
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, ErrQueryFailed):
				if t.Index > 0 && t.Index == failed {
					continue // the wait ended, still failed: said already
				}
				if !yield(Table{}, err) {
					return
				}
				if t.Index > 0 {
					index, failed, have = t.Index, t.Index, true // wait for the next change
				} else if !c.sleep(ctx, c.opts.RetryAfter) {
					return
				}
				continue
			case err != nil:
				yield(Table{}, err)
				return
			}
			index = t.Index
			if have && !t.newer(last.epoch, last.index) {
				continue // the wait ended with the same table
			}
			have, last = true, version{t.Epoch, t.Index}
			if !yield(t, nil) {
				return
			}
		}
	}
}
