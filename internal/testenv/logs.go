package testenv

import (
	"log/slog"
	"strings"
	"testing"
)

// DefaultLog points slog.Default at a buffer, in text form, until the test
// ends, for a test to read what a driver logs (drivers log where
// slog.Default points when they open).
func DefaultLog(t testing.TB) *LockedBuffer {
	t.Helper()
	previous := slog.Default()
	t.Cleanup(func() { slog.SetDefault(previous) })
	logs := new(LockedBuffer)
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	return logs
}

// Lines returns the lines written so far that contain every one of parts.
func (o *LockedBuffer) Lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(o.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}
