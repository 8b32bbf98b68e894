package conformance

import (
	"context"
	"io"
	"log/slog"

	"github.com/msgkit/msgkit/internal/silence"
	"github.com/msgkit/msgkit/sdk"
)

// testBrokerThatGoesSilentMidSession: while the broker stops answering,
// every call (Publish, Request, Subscribe, EnsureGroup, RemoveGroup,
// Subscription.Close) returns by its deadline; once it answers again, the
// client carries on by itself (silence.Check).
func testBrokerThatGoesSilentMidSession(e *env) {
	silence.Check(e.t, proxiedClient(e))
}

// testLongSilenceLosesNothing: a broker silent for longer than the
// heartbeats after which either side drops the session; every message
// published is handled once it answers again (silence.CheckOutage).
func testLongSilenceLosesNothing(e *env) {
	silence.CheckOutage(e.t, silence.Outage, proxiedClient(e))
}

// testCutConnectionsLoseNothing: the broker's connections are cut again
// and again while messages are published and handled; every message
// published is handled (silence.CheckCuts).
func testCutConnectionsLoseNothing(e *env) {
	silence.CheckCuts(e.t, proxiedClient(e))
}

// testCloseWhileSilentLeaksNothing: a client closed while the broker is
// silent returns by its deadline and, once the broker answers, leaves no
// goroutine behind (silence.CheckCloseWhileSilent).
func testCloseWhileSilentLeaksNothing(e *env) {
	silence.CheckCloseWhileSilent(e.t, proxiedClient(e), e.h.LeakOptions...)
}

// proxiedClient opens a Client on the broker through the Switch's proxy,
// or skips the test when the harness cannot.
func proxiedClient(e *env) func(ctx context.Context, s *silence.Switch) (*sdk.Client, error) {
	if e.h.Proxied == nil || e.h.OpenConfig == nil {
		e.t.Skip("not run: Harness.Proxied and OpenConfig are not set")
	}
	return func(ctx context.Context, s *silence.Switch) (*sdk.Client, error) {
		tr, err := e.h.OpenConfig(ctx, e.h.Proxied(func(addr string) string { return s.Proxy(e.t, addr) }))
		if err != nil {
			return nil, err
		}
		return sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))), nil
	}
}
