package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// go-redis's own notices reach slog (at debug level), not stderr.
func TestGoRedisNoticesGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)
	slogLogger{}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "connection refused")
	if out := buf.String(); !strings.Contains(out, "failed to dial after 5 attempts: connection refused") || !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "driver=redis") {
		t.Fatalf("want the notice at debug level through slog, got %q", out)
	}
}
