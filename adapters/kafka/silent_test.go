package kafka_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/internal/silence"
	"github.com/msgkit/msgkit/sdk"
)

// The conformance suite's TestBrokerThatGoesSilentMidSession, which needs a
// proxy in front of the broker: Kafka clients connect to the addresses the
// brokers announce, so here kfake itself goes silent, at its listener.
func TestBrokerThatGoesSilentMidSession(t *testing.T) {
	silence.Check(t, func(ctx context.Context, s *silence.Switch) (*sdk.Client, error) {
		c := startCluster(t, kfake.ListenFn(s.Listen))
		return sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: "kafka://" + c.ListenAddrs()[0]})
	})
}

// The conformance suite's TestLongSilenceLosesNothing, on kfake silenced at
// its listener as above.
func TestLongSilenceLosesNothing(t *testing.T) {
	silence.CheckOutage(t, silence.Outage, func(ctx context.Context, s *silence.Switch) (*sdk.Client, error) {
		c := startCluster(t, kfake.ListenFn(s.Listen))
		return sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: "kafka://" + c.ListenAddrs()[0]})
	})
}

// The conformance suite's TestCutConnectionsLoseNothing, with kfake's
// connections cut at its listener.
func TestCutConnectionsLoseNothing(t *testing.T) {
	silence.CheckCuts(t, func(ctx context.Context, s *silence.Switch) (*sdk.Client, error) {
		c := startCluster(t, kfake.ListenFn(s.Listen))
		return sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: "kafka://" + c.ListenAddrs()[0]})
	})
}

// The conformance suite's TestCloseWhileSilentLeaksNothing, on kfake
// silenced at its listener.
func TestCloseWhileSilentLeaksNothing(t *testing.T) {
	silence.CheckCloseWhileSilent(t, func(ctx context.Context, s *silence.Switch) (*sdk.Client, error) {
		c := startCluster(t, kfake.ListenFn(s.Listen))
		return sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: "kafka://" + c.ListenAddrs()[0]})
	}, // the cluster's own, which run until the test ends
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).run"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*broker).listen"))
}
