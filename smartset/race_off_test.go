//go:build !race

package smartset

const raceEnabled = false
