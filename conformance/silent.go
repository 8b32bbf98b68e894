package conformance

import (
	"context"
	"io"
	"log/slog"

	"github.com/msgkit/msgkit/internal/silence"
	"github.com/msgkit/msgkit/sdk"
)

// testBrokerThatGoesSilentMidSession: while the broker stops answering,
// Publish, Subscribe and Close return by their deadlines; once it answers
// again, the client carries on by itself (silence.Check).
func testBrokerThatGoesSilentMidSession(e *env) {
	if e.h.Proxied == nil || e.h.OpenConfig == nil {
		e.t.Skip("not run: Harness.Proxied and OpenConfig are not set")
	}
	silence.Check(e.t, func(ctx context.Context, s *silence.Switch) (*sdk.Client, error) {
		tr, err := e.h.OpenConfig(ctx, e.h.Proxied(func(addr string) string { return s.Proxy(e.t, addr) }))
		if err != nil {
			return nil, err
		}
		return sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))), nil
	})
}
