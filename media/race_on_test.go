//go:build race

package media

// raceEnabled: the test binary runs under the race detector, which drops sync.Pool items
// at random on purpose, so that what takes a buffer from a pool allocates now and then.
const raceEnabled = true
