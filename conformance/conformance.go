// Package conformance is the test suite every driver runs: the memory
// adapter, the adapters in this module, and third-party adapters alike.
//
// A driver's test calls Run with a Harness that opens transports on the
// broker under test:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
//				return mydriver.Driver{}.Open(ctx, sdk.Config{URL: "..."})
//			},
//		})
//	}
//
// Each subtest is named after the guarantee it checks (TestNackRedelivers,
// TestCompetingConsumersShareMessages...) and fails with a message naming
// that guarantee. A test for a capability the transport does not declare is
// skipped, with the reason printed; a capability declared but not delivered
// fails.
package conformance

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Harness connects the suite to the broker under test.
type Harness struct {
	// Open returns a new transport on the broker under test. It is called at
	// least once per test; the suite closes every transport it opens. Topic
	// and group names are unique per test, so one broker serves all tests.
	Open func(ctx context.Context, t *testing.T) (driver.Transport, error)

	// Timeout bounds every wait for a message that must arrive. Default 15s.
	Timeout time.Duration
	// QuietPeriod is how long the suite watches for a message that must not
	// arrive (a redelivery after ack, a duplicate). Default 500ms. Brokers
	// with slow redelivery need more for those tests to mean anything.
	QuietPeriod time.Duration
	// Messages is the message count of the load tests. Default 1000.
	Messages int
	// LeakOptions are passed to goleak when checking that closing a
	// transport leaves no goroutine behind, for goroutines a client library
	// keeps for the whole process by design.
	LeakOptions []goleak.Option
}

func (h Harness) withDefaults() Harness {
	if h.Timeout <= 0 {
		h.Timeout = 15 * time.Second
	}
	if h.QuietPeriod <= 0 {
		h.QuietPeriod = 500 * time.Millisecond
	}
	if h.Messages <= 0 {
		h.Messages = 1000
	}
	return h
}

// guaranteeTest is one named guarantee.
type guaranteeTest struct {
	name string
	// skip returns why the test does not apply to caps, or "".
	skip func(caps sdk.Capabilities) string
	run  func(e *env)
}

func always(sdk.Capabilities) string { return "" }

func needs(ok func(sdk.Capabilities) bool, reason string) func(sdk.Capabilities) string {
	return func(c sdk.Capabilities) string {
		if ok(c) {
			return ""
		}
		return reason
	}
}

var suite = []guaranteeTest{
	// Delivery.
	{"TestPublishSubscribeRoundTrip", always, testRoundTrip},
	{"TestAckPreventsRedelivery", always, testAckPreventsRedelivery},
	{"TestNackRedelivers", always, testNackRedelivers},
	{"TestHandlerErrorRedelivers", always, testHandlerErrorRedelivers},
	{"TestHandlerPanicRedelivers", always, testHandlerPanicRedelivers},
	{"TestUnackedMessageRedeliveredAfterSubscriberClose", always, testUnackedRedeliveredAfterClose},
	// Fidelity.
	{"TestEmptyPayloadRoundTrips", always, testEmptyPayload},
	{"TestBinaryPayloadRoundTrips", always, testBinaryPayload},
	{"TestLargePayloadRoundTrips", always, testLargePayload},
	{"TestMetadataRoundTrips", always, testMetadataRoundTrips},
	{"TestStandardAttributesRoundTrip", always, testStandardAttributes},
	{"TestClientPublishWritesWhatWatermillPublishWrites", always, testClientPublishMatchesWatermill},
	// Groups, ordering, persistence.
	{"TestCompetingConsumersShareMessages", needs(func(c sdk.Capabilities) bool { return c.ConsumerGroups },
		"ConsumerGroups not declared"), testCompetingConsumers},
	{"TestEveryGroupReceivesEveryMessage", needs(func(c sdk.Capabilities) bool { return c.ConsumerGroups },
		"ConsumerGroups not declared"), testFanOut},
	{"TestOrderingPerKey", needs(func(c sdk.Capabilities) bool { return c.Ordering == sdk.OrderingPerKey },
		"Ordering is not OrderingPerKey"), testOrderingPerKey},
	{"TestClientSubscriptionsShareMessages", needs(func(c sdk.Capabilities) bool { return c.ConsumerGroups },
		"ConsumerGroups not declared"), testClientCompetingSubscriptions},
	{"TestClientOrderingPerKey", needs(func(c sdk.Capabilities) bool { return c.Ordering == sdk.OrderingPerKey },
		"Ordering is not OrderingPerKey"), testClientOrderingPerKey},
	{"TestDurableGroupReceivesMessagesPublishedWhileAway", needs(func(c sdk.Capabilities) bool { return c.DurableGroups },
		"DurableGroups not declared"), testDurableGroup},
	{"TestNewGroupReceivesHistory", needs(func(c sdk.Capabilities) bool { return c.NewGroupsReceiveHistory },
		"NewGroupsReceiveHistory not declared: a group sees only messages published after it first subscribed"), testNewGroupHistory},
	// Dead-lettering (middleware over the driver's redelivery).
	{"TestPermanentFailureIsDeadLettered", always, testPermanentFailureIsDeadLettered},
	{"TestRepeatedFailureIsDeadLetteredAfterRedeliveries", always, testRepeatedFailureIsDeadLetteredAfterRedeliveries},
	// Request/reply.
	{"TestRequestReplyRoundTrip", needs(func(c sdk.Capabilities) bool { return c.RequestReply },
		"RequestReply not declared"), testRequestReplyRoundTrip},
	{"TestRequestTimesOutAndLateReplyIsDiscarded", needs(func(c sdk.Capabilities) bool { return c.RequestReply },
		"RequestReply not declared"), testRequestTimesOutAndLateReplyIsDiscarded},
	{"TestConcurrentRequestsAreCorrelated", needs(func(c sdk.Capabilities) bool { return c.RequestReply },
		"RequestReply not declared"), testConcurrentRequestsAreCorrelated},
	// Load.
	{"TestConcurrentPublishersLoseNothing", always, testConcurrentPublishers},
	// Lifecycle.
	{"TestSubscriberCloseClosesChannels", always, testSubscriberCloseClosesChannels},
	{"TestContextCancelClosesChannel", always, testContextCancelClosesChannel},
	{"TestCloseUnblocksIdleSubscriber", always, testCloseUnblocksIdle},
	{"TestPublishAfterCloseFails", always, testPublishAfterCloseFails},
	{"TestCloseLeaksNoGoroutines", always, testCloseLeaksNoGoroutines},
	{"TestClientCloseDrainsInFlightHandler", always, testClientCloseDrains},
}

// Run runs the whole suite against the harness, one subtest per guarantee.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("conformance: Harness.Open is nil; it must open a transport on the broker under test")
	}
	h = h.withDefaults()
	caps := probeCapabilities(t, h)
	t.Logf("conformance: declared capabilities: %+v", caps)
	for _, g := range suite {
		t.Run(g.name, func(t *testing.T) {
			if reason := g.skip(caps); reason != "" {
				t.Skipf("not applicable: %s", reason)
			}
			g.run(newEnv(t, h))
		})
	}
}

func probeCapabilities(t *testing.T, h Harness) sdk.Capabilities {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	tr, err := h.Open(ctx, t)
	if err != nil {
		t.Fatalf("conformance: Harness.Open failed: %v", err)
	}
	caps := tr.Capabilities()
	if err := tr.Close(); err != nil {
		t.Fatalf("conformance: closing the probe transport failed: %v", err)
	}
	return caps
}
