package conformance_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	msgredis "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The guarantees about a broker that goes silent or whose connections are
// cut need a broker on the network, which a proxy can stand in front of:
// their fixture wraps the Redis driver, on this machine's Redis.
var silenceGuarantees = []string{
	"TestBrokerThatGoesSilentMidSession", "TestLongSilenceLosesNothing",
	"TestCutConnectionsLoseNothing", "TestCloseWhileSilentLeaksNothing",
}

// TestSilentBrokerFixture runs the silence guarantees on the Redis driver
// through silentFaultTransport. On its own (no fault) it proves the
// wrapper transparent; TestSuiteCatchesDriversBrokenBySilence re-runs it
// in a child process with one fault at a time.
func TestSilentBrokerFixture(t *testing.T) {
	url := testenv.Redis(t)
	fault := os.Getenv(faultEnv)
	open := func(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
		tr, err := msgredis.Driver{}.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &silentFaultTransport{Transport: tr, fault: fault}, nil
	}
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, _ *testing.T) (driver.Transport, error) {
			return open(ctx, sdk.Config{Driver: "redis", URL: url})
		},
		OpenConfig: open,
		Proxied: func(proxy func(string) string) sdk.Config {
			return sdk.Config{Driver: "redis", URL: testenv.ProxiedURL(url, proxy)}
		},
		Only: silenceGuarantees,
	})
}

// TestSuiteCatchesDriversBrokenBySilence checks that each fault a silent
// or cut-off broker brings out fails the guarantee it breaks, saying so,
// while the others still pass.
func TestSuiteCatchesDriversBrokenBySilence(t *testing.T) {
	if os.Getenv(faultEnv) != "" {
		t.Fatalf("%s is set: this test runs the fixture in a child process and must not run inside one", faultEnv)
	}
	testenv.Redis(t) // fails here, under CI=true, when Redis is down, rather than in each child
	checkFaultsAreCaught(t, "TestSilentBrokerFixture", []faultCase{
		{"publish-ignores-deadline",
			[]string{"TestBrokerThatGoesSilentMidSession"},
			[]string{"TestCloseWhileSilentLeaksNothing"},
			"must return by its deadline while the broker is silent: it took"},
		{"failed-publish-reported-sent",
			[]string{"TestBrokerThatGoesSilentMidSession", "TestLongSilenceLosesNothing"},
			[]string{"TestCloseWhileSilentLeaksNothing"},
			"guarantee broken: every message whose Publish returned nil must be handled once the broker is no longer silent"},
		{"batch-after-receive-error-forgotten",
			[]string{"TestCutConnectionsLoseNothing"},
			[]string{"TestCloseWhileSilentLeaksNothing"},
			"guarantee broken: every message whose Publish returned nil must be handled once the broker is no longer cut off"},
		{"close-leaves-goroutine",
			[]string{"TestCloseWhileSilentLeaksNothing"},
			[]string{"TestCutConnectionsLoseNothing"},
			"guarantee broken: a client closed while the broker was silent must leave no goroutine running"},
	})
}

// silentFaultTransport wraps a transport on a network broker and injects
// one fault that only shows while the broker is silent or cut off. With
// fault "" it must be transparent.
type silentFaultTransport struct {
	driver.Transport
	fault string
}

// SendBatch: with "publish-ignores-deadline" it waits for the broker
// however long it takes, as a driver that drops the caller's context on
// the way to the broker call does; with "failed-publish-reported-sent" it
// reports a publish that failed as sent.
func (f *silentFaultTransport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	switch f.fault {
	case "publish-ignores-deadline":
		return f.Transport.SendBatch(context.WithoutCancel(ctx), topic, msgs)
	case "failed-publish-reported-sent":
		_ = f.Transport.SendBatch(ctx, topic, msgs)
		return nil
	}
	return f.Transport.SendBatch(ctx, topic, msgs)
}

func (f *silentFaultTransport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	sub, err := f.Transport.OpenSubscription(ctx, topic, group)
	if err != nil || f.fault != "batch-after-receive-error-forgotten" {
		return sub, err
	}
	return &forgetfulSubscription{Subscription: sub}, nil
}

// Close: with "close-leaves-goroutine" it closes the connection on a
// goroutine that then waits for an answer that never comes, as a driver
// waiting on a silent broker without a deadline does.
func (f *silentFaultTransport) Close() error {
	if f.fault == "close-leaves-goroutine" {
		go func() {
			_ = f.Transport.Close()
			select {}
		}()
		return nil
	}
	return f.Transport.Close()
}

// forgetfulSubscription acks and drops the first batch it receives after a
// failed receive, as a driver that loses what it held when it reconnects.
type forgetfulSubscription struct {
	driver.Subscription
	failed atomic.Bool // ReceiveBatch failed; forget the next batch
}

func (s *forgetfulSubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	msgs, err := s.Subscription.ReceiveBatch(ctx, max)
	if err != nil {
		s.failed.Store(true)
		return msgs, err
	}
	if len(msgs) > 0 && s.failed.Swap(false) {
		ids := make([]driver.AckID, len(msgs))
		for i, m := range msgs {
			ids[i] = m.AckID
		}
		_ = s.Subscription.SendAcks(ctx, ids)
		return nil, nil
	}
	return msgs, err
}
