package conformance

import (
	"strings"
	"testing"
)

func TestFailureMessagesAreBounded(t *testing.T) {
	b := &boundedT{T: t, max: 100}
	long := "start" + strings.Repeat("x", 10000) + "end"
	got := b.cut(long)
	if len(got) > 150 || !strings.HasPrefix(got, "start") || !strings.HasSuffix(got, "end") || !strings.Contains(got, "9908 bytes cut") {
		t.Fatalf("a long failure must keep its start and end and say what was cut, got %d bytes: %q", len(got), got)
	}
	if short := "a short failure"; b.cut(short) != short {
		t.Fatal("a short failure must be kept whole")
	}
}
