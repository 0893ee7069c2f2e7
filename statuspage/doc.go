// Package statuspage is the live status page every agent serves at "/": the
// swarm as the directory shows it, one card per location with its live
// agents and its SmartSets, each set coloured and labelled by its state
// (optimal, non-optimal, pending handoff, orphaned), updated as it changes.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no
// build step, no framework, nothing fetched from elsewhere. Its data comes
// from two routes: GET /ui/state, the state as JSON, and GET /ui/events,
// Server-Sent Events: the whole state once ("state"), then after every
// change only what changed ("delta": the small parts whole — summary,
// locations with their agents and counts by state — and of the sets only
// the changed and removed ones). A viewer that fell behind gets the whole
// state again. The script shows each location's counts first and the sets
// of a big location on demand, a page at a time. Clicking a set
// fetches its table from the HTTP API (/v1/smartsets/{name}), following the
// redirect to the owner.
//
// The model is what an agent nobody looks at must not pay for. While at least
// one /ui/events stream is open, the page runs one RFC 4533 watch over the
// whole base (services, sets and locations), keeps a smartset.Snapshot from
// its events, and after a short debounce recomputes the state with
// smartset.State and fans it out; a slow viewer skips intermediate states
// and never holds up the others. The watch stops a while after the last
// viewer leaves, so an idle agent sends the directory nothing extra;
// /ui/state without a running watch reads the directory once. A browser's
// navigation to "/" starts the watch ahead of its stream (a fetch that is
// not a navigation does not), since reading a big directory is most of a
// first viewer's wait.
package statuspage
