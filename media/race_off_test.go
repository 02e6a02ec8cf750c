//go:build !race

package media

// raceEnabled: see race_on_test.go.
const raceEnabled = false
