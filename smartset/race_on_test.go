//go:build race

package smartset

// raceEnabled: the simulation runs smaller under the race detector (about
// ten times slower), so make test stays short.
const raceEnabled = true
