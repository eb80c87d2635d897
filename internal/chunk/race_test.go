//go:build race

package chunk

// raceEnabled trims the randomized tests, which are slow under -race.
const raceEnabled = true
