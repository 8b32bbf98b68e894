package repeated

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Each header name is logged once, names in order, and after maxNames
// names no new one is remembered or logged.
func TestReporterLogsEachNameOnceUpToItsBound(t *testing.T) {
	var buf bytes.Buffer
	r := New(slog.New(slog.NewTextHandler(&buf, nil)), "kafka", "the last value")
	r.Report("orders", "g", "m-1", map[string]int{"b": 2, "a": 3})
	r.Report("orders", "g", "m-2", map[string]int{"a": 2, "c": 2})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a, b (message m-1) and c (m-2) logged once each, got %q", lines)
	}
	for i, want := range []string{"header=a times=3", "header=b times=2", "header=c times=2"} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "kafka: a received message carries a header more than once; its metadata keeps the last value") {
			t.Errorf("line %d: want %q, got %q", i, want, lines[i])
		}
	}
	for i := range 2 * maxNames {
		r.Report("orders", "g", "m", map[string]int{fmt.Sprint("n", i): 2})
	}
	if n := strings.Count(buf.String(), "\n"); n != maxNames {
		t.Fatalf("want %d names logged in all, got %d", maxNames, n)
	}
}
