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
	"fmt"
	"os"
	"slices"
	"strconv"
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

	// OpenConfig and ConfigAt, when both are set, enable the hygiene tests:
	// OpenConfig opens a transport from a config (the driver's Open), and
	// ConfigAt returns a working config for a broker at addr (host:port)
	// with Secret as its password. The suite points it at an address where
	// nothing listens and at one that accepts and never answers, and adds
	// an unknown option: each must fail by its deadline with a clear error
	// that never contains Secret.
	OpenConfig func(ctx context.Context, cfg sdk.Config) (driver.Transport, error)
	ConfigAt   func(addr string) sdk.Config
	// Secret is the password ConfigAt puts in the config.
	Secret string

	// Proxied, when set with OpenConfig, enables
	// TestBrokerThatGoesSilentMidSession, TestLongSilenceLosesNothing,
	// TestCutConnectionsLoseNothing and TestCloseWhileSilentLeaksNothing
	// (with LeakOptions). It returns a working config for the
	// broker under test reached through proxy: proxy takes the host:port
	// the broker listens on and returns the address of a TCP proxy to it,
	// which the suite makes stop carrying bytes for a while (4 s, then
	// 25 s), as a stopped server or a network dropping packets would, and
	// whose connections it cuts, as a restart would.
	// Leave it unset for a broker whose clients connect to addresses it
	// announces (Kafka's metadata), which a proxy cannot stand in front of.
	Proxied func(proxy func(addr string) string) sdk.Config

	// InjectRaw, when set, publishes payload to topic in the broker's own
	// format with no id and no attributes, as a producer that is not msgkit
	// would (a plain AMQP publish, an XADD with only a payload field...).
	// It enables TestForeignMessageGetsAStableID.
	InjectRaw func(ctx context.Context, topic string, payload []byte) error

	// InjectEvent, when set, publishes event, a CloudEvents event in JSON,
	// to topic as a CloudEvents producer's structured mode does on the
	// broker: the event as the body, content type
	// application/cloudevents+json (the broker's content-type property,
	// header or attribute) and no id of msgkit's. It enables
	// TestForeignEventIsHandledUnderItsEventID.
	InjectEvent func(ctx context.Context, topic string, event []byte) error

	// KilledConsumer, when set, enables TestConsumerKilledBeforeAckHandsOver:
	// the suite starts the test binary again as a consumer, which the
	// package's TestMain turns into one by calling KilledConsumerMain
	// first, and kills it with SIGKILL while it holds a message. Timeout
	// must cover the driver's lease (Redis claim_idle, NATS ack_wait, SQS
	// visibility_timeout) in the options both open with.
	KilledConsumer bool

	// Restart, when set, restarts the broker and returns once it accepts
	// connections again (by ctx's deadline, RestartTimeout). With Persistent
	// declared it enables TestPersistentMessagesSurviveARestart. The
	// suite's other tests do not use it, so a harness may set it in a run
	// of its own against a broker that only that run uses.
	Restart func(ctx context.Context) error
	// RestartTimeout bounds Restart and the publishes and deliveries right
	// after it (default 60s).
	RestartTimeout time.Duration

	// Only, when not empty, runs only the guarantees named (such as
	// "TestPersistentMessagesSurviveARestart"), for a run of its own
	// against a broker set up for them.
	Only []string

	// Rounds runs the whole suite this many times (default 1, or
	// $CONFORMANCE_ROUNDS), each round under a subtest round-N: a stress
	// mode for races that show once in many runs.
	Rounds int
	// Parallel (or $CONFORMANCE_PARALLEL=true) runs the guarantees of a
	// round at once (t.Parallel), except the goroutine-leak check, for
	// brokers that take many clients. Topic and group names are unique per
	// test either way.
	Parallel bool
	// MaxFailureBytes bounds each failure message (default 4096): a message
	// that dumps a large payload keeps its start and its end.
	MaxFailureBytes int
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
	if h.RestartTimeout <= 0 {
		h.RestartTimeout = 60 * time.Second
	}
	if h.Rounds <= 0 {
		h.Rounds = 1
		if n, err := strconv.Atoi(os.Getenv("CONFORMANCE_ROUNDS")); err == nil && n > 0 {
			h.Rounds = n
		}
	}
	if v, err := strconv.ParseBool(os.Getenv("CONFORMANCE_PARALLEL")); err == nil && v {
		h.Parallel = true
	}
	if h.MaxFailureBytes <= 0 {
		h.MaxFailureBytes = 4096
	}
	return h
}

// guaranteeTest is one named guarantee.
type guaranteeTest struct {
	name string
	// skip returns why the test does not apply to caps, or "".
	skip func(caps sdk.Capabilities) string
	run  func(e *env)
	// hygiene: the test needs Harness.OpenConfig and ConfigAt.
	hygiene bool
}

// serial are the guarantees that never run beside others: the leak check
// counts every goroutine of the process.
var serial = map[string]bool{"TestCloseLeaksNoGoroutines": true, "TestCloseWhileSilentLeaksNothing": true}

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
	{"TestPublishSubscribeRoundTrip", always, testRoundTrip, false},
	{"TestAckPreventsRedelivery", always, testAckPreventsRedelivery, false},
	{"TestNackRedelivers", always, testNackRedelivers, false},
	{"TestHandlerErrorRedelivers", always, testHandlerErrorRedelivers, false},
	{"TestHandlerPanicRedelivers", always, testHandlerPanicRedelivers, false},
	{"TestFailingMessageBacksOff", always, testFailingMessageBacksOff, false},
	{"TestPublishedBeforeCloseIsDelivered", needs(func(c sdk.Capabilities) bool { return c.DurableGroups },
		"DurableGroups not declared"), testPublishedBeforeCloseIsDelivered, false},
	{"TestUnackedMessageRedeliveredAfterSubscriberClose", always, testUnackedRedeliveredAfterClose, false},
	{"TestConsumerKilledBeforeAckHandsOver", always, testKilledConsumerHandsOver, false},
	// Fidelity.
	{"TestEmptyPayloadRoundTrips", always, testEmptyPayload, false},
	{"TestBinaryPayloadRoundTrips", always, testBinaryPayload, false},
	{"TestLargePayloadRoundTrips", always, testLargePayload, false},
	{"TestMetadataRoundTrips", always, testMetadataRoundTrips, false},
	{"TestMetadataNamedLikeTheIDHeaderLeavesTheIDAlone", always, testMetadataNamedLikeTheIDHeader, false},
	{"TestStandardAttributesRoundTrip", always, testStandardAttributes, false},
	{"TestAlikeMessagesPublishedTogetherEachArriveWhole", always, testAlikeMessagesPublishedTogether, false},
	{"TestCloudEventsStructuredModeIsRead", always, testCloudEventsStructuredMode, false},
	{"TestClientPublishWritesWhatWatermillPublishWrites", always, testClientPublishMatchesWatermill, false},
	// Groups, ordering, persistence.
	{"TestCompetingConsumersShareMessages", needs(func(c sdk.Capabilities) bool { return c.ConsumerGroups },
		"ConsumerGroups not declared"), testCompetingConsumers, false},
	{"TestEveryGroupReceivesEveryMessage", needs(func(c sdk.Capabilities) bool { return c.ConsumerGroups },
		"ConsumerGroups not declared"), testFanOut, false},
	{"TestOrderingPerKey", needs(func(c sdk.Capabilities) bool { return c.Ordering == sdk.OrderingPerKey },
		"Ordering is not OrderingPerKey"), testOrderingPerKey, false},
	{"TestClientSubscriptionsShareMessages", needs(func(c sdk.Capabilities) bool { return c.ConsumerGroups },
		"ConsumerGroups not declared"), testClientCompetingSubscriptions, false},
	{"TestClientOrderingPerKey", needs(func(c sdk.Capabilities) bool { return c.Ordering == sdk.OrderingPerKey },
		"Ordering is not OrderingPerKey"), testClientOrderingPerKey, false},
	{"TestDurableGroupReceivesMessagesPublishedWhileAway", needs(func(c sdk.Capabilities) bool { return c.DurableGroups },
		"DurableGroups not declared"), testDurableGroup, false},
	{"TestEnsureGroupKeepsWhatIsPublishedBeforeSubscribe", needs(func(c sdk.Capabilities) bool { return c.DurableGroups },
		"DurableGroups not declared"), testEnsureGroup, false},
	{"TestStartAtChoosesWhereANewGroupStarts", always, testStartAt, false},
	{"TestRemovedGroupKeepsNothing", always, testRemoveGroup, false},
	{"TestPersistentMessagesSurviveARestart", needs(func(c sdk.Capabilities) bool { return c.Persistent },
		"Persistent not declared: a broker restart may lose messages"), testPersistentSurvivesRestart, false},
	{"TestNewGroupReceivesHistory", needs(func(c sdk.Capabilities) bool { return c.NewGroupsReceiveHistory },
		"NewGroupsReceiveHistory not declared: a group sees only messages published after it first subscribed"), testNewGroupHistory, false},
	// Dead-lettering (middleware over the driver's redelivery).
	{"TestPermanentFailureIsDeadLettered", always, testPermanentFailureIsDeadLettered, false},
	{"TestRepeatedFailureIsDeadLetteredAfterRedeliveries", always, testRepeatedFailureIsDeadLetteredAfterRedeliveries, false},
	// Request/reply.
	{"TestRequestReplyRoundTrip", needs(func(c sdk.Capabilities) bool { return c.RequestReply },
		"RequestReply not declared"), testRequestReplyRoundTrip, false},
	{"TestRequestTimesOutAndLateReplyIsDiscarded", needs(func(c sdk.Capabilities) bool { return c.RequestReply },
		"RequestReply not declared"), testRequestTimesOutAndLateReplyIsDiscarded, false},
	{"TestConcurrentRequestsAreCorrelated", needs(func(c sdk.Capabilities) bool { return c.RequestReply },
		"RequestReply not declared"), testConcurrentRequestsAreCorrelated, false},
	{"TestExpiredRequestIsNotAnswered", needs(func(c sdk.Capabilities) bool { return c.RequestReply && c.DurableGroups },
		"RequestReply and DurableGroups not both declared"), testExpiredRequestIsNotAnswered, false},
	{"TestRequestersOnSeveralClientsGetTheirOwnReplies", needs(func(c sdk.Capabilities) bool { return c.RequestReply },
		"RequestReply not declared"), testRequestersOnSeveralClients, false},
	// Edges.
	{"TestMessageNackedManyTimesIsStillRedelivered", always, testManyNacks, false},
	{"TestNackedMessageComesBackBeforeTheRestOfItsKey", needs(func(c sdk.Capabilities) bool { return c.Ordering == sdk.OrderingPerKey },
		"Ordering is not OrderingPerKey"), testNackedKeyComesBackFirst, false},
	{"TestLimitsAreCarriedOrRefusedClearly", always, testLimits, false},
	{"TestOddNamesAreTakenOrRefusedWithoutHarm", always, testOddNames, false},
	{"TestOddMetadataIsCarriedOrRefused", always, testOddMetadata, false},
	{"TestOddIDsAreCarriedOrRefused", always, testOddIDs, false},
	{"TestForeignMessageGetsAStableID", always, testForeignMessageGetsStableID, false},
	{"TestForeignEventIsHandledUnderItsEventID", always, testForeignEventHandledUnderItsEventID, false},
	// Load.
	{"TestConcurrentPublishersLoseNothing", always, testConcurrentPublishers, false},
	// Lifecycle.
	{"TestSubscriberCloseClosesChannels", always, testSubscriberCloseClosesChannels, false},
	{"TestContextCancelClosesChannel", always, testContextCancelClosesChannel, false},
	{"TestCloseUnblocksIdleSubscriber", always, testCloseUnblocksIdle, false},
	{"TestPublishAfterCloseFails", always, testPublishAfterCloseFails, false},
	{"TestCloseLeaksNoGoroutines", always, testCloseLeaksNoGoroutines, false},
	{"TestTransportCloseClosesSubscriptions", always, testTransportCloseClosesSubscriptions, false},
	{"TestSubscriptionClosedTwiceAtOnce", always, testSubscriptionClosedTwiceAtOnce, false},
	{"TestClientCloseDrainsInFlightHandler", always, testClientCloseDrains, false},
	// Hygiene: bad config and brokers that cannot be used.
	{"TestUnknownOptionIsAConfigError", always, testUnknownOptionIsAConfigError, true},
	{"TestUnreachableBrokerFailsByTheDeadline", always, testUnreachableBrokerFailsByTheDeadline, true},
	{"TestSilentBrokerFailsByTheDeadline", always, testSilentBrokerFailsByTheDeadline, true},
	{"TestBrokerThatGoesSilentMidSession", always, testBrokerThatGoesSilentMidSession, false},
	{"TestLongSilenceLosesNothing", always, testLongSilenceLosesNothing, false},
	{"TestCutConnectionsLoseNothing", always, testCutConnectionsLoseNothing, false},
	{"TestCloseWhileSilentLeaksNothing", always, testCloseWhileSilentLeaksNothing, false},
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
	if h.Rounds == 1 {
		runRound(t, h, caps)
		return
	}
	for i := 1; i <= h.Rounds; i++ {
		t.Run(fmt.Sprintf("round-%d", i), func(t *testing.T) { runRound(t, h, caps) })
	}
}

func runRound(t *testing.T, h Harness, caps sdk.Capabilities) {
	for _, g := range suite {
		if len(h.Only) > 0 && !slices.Contains(h.Only, g.name) {
			continue
		}
		t.Run(g.name, func(t *testing.T) {
			if h.Parallel && !serial[g.name] {
				t.Parallel()
			}
			if reason := g.skip(caps); reason != "" {
				t.Skipf("not applicable: %s", reason)
			}
			if g.hygiene && (h.OpenConfig == nil || h.ConfigAt == nil) {
				t.Skip("not run: Harness.OpenConfig and ConfigAt are not set")
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
