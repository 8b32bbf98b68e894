package conformance_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/sdk/driver"
)

const faultEnv = "CONFORMANCE_FAULT"

// TestFaultyDriverFixture runs the suite on the fault-injecting wrapper. On
// its own (no fault) it proves the wrapper transparent; the self-test below
// re-runs it in a child process with one fault at a time.
func TestFaultyDriverFixture(t *testing.T) {
	fault := os.Getenv(faultEnv)
	h := conformance.Harness{
		Open:        func(_ context.Context, t *testing.T) (driver.Transport, error) { return openFaulty(t, fault) },
		InjectEvent: injectEvent,
	}
	if fault != "" {
		// The guarantees a fault breaks fail by timing out; on the in-process
		// broker anything that arrives does so within milliseconds.
		h.Timeout = 2 * time.Second
	}
	if fault == "restart-loses-messages" {
		h.Restart = func(context.Context) error { restarted.Store(true); return nil }
	}
	conformance.Run(t, h)
}

// TestSuiteCatchesBrokenDrivers checks that each injected fault fails the
// guarantee it breaks, with a message naming that guarantee, while the
// guarantees it does not touch still pass.
func TestSuiteCatchesBrokenDrivers(t *testing.T) {
	if os.Getenv(faultEnv) != "" {
		t.Fatalf("%s is set: this test runs the fixture in a child process and must not run inside one", faultEnv)
	}
	checkFaultsAreCaught(t, "TestFaultyDriverFixture", []faultCase{
		{"drop-metadata",
			[]string{"TestMetadataRoundTrips", "TestStandardAttributesRoundTrip"},
			[]string{"TestPublishSubscribeRoundTrip", "TestBinaryPayloadRoundTrips"},
			"guarantee broken: metadata must round-trip"},
		{"move-metadata-out",
			[]string{"TestAlikeMessagesPublishedTogetherEachArriveWhole"},
			[]string{"TestMetadataRoundTrips", "TestStandardAttributesRoundTrip"},
			"guarantee broken: messages published together with the same attributes must each arrive with all of them"},
		{"never-redeliver",
			[]string{"TestNackRedelivers", "TestHandlerErrorRedelivers", "TestHandlerPanicRedelivers"},
			[]string{"TestPublishSubscribeRoundTrip", "TestAckPreventsRedelivery"},
			"guarantee broken: a nacked message must be redelivered"},
		{"mangle-binary",
			[]string{"TestBinaryPayloadRoundTrips"},
			[]string{"TestEmptyPayloadRoundTrips", "TestMetadataRoundTrips"},
			"guarantee broken: a binary, non-UTF-8 payload must round-trip byte for byte"},
		{"duplicate",
			[]string{"TestConcurrentPublishersLoseNothing", "TestCompetingConsumersShareMessages"},
			[]string{"TestNackRedelivers"},
			"arrived 2 times"},
		{"claims-group-start",
			[]string{"TestStartAtChoosesWhereANewGroupStarts"},
			[]string{"TestPublishSubscribeRoundTrip"},
			"guarantee broken: a group created with StartAt(oldest) must receive the history"},
		{"drop-after-5-nacks",
			[]string{"TestMessageNackedManyTimesIsStillRedelivered"},
			[]string{"TestNackRedelivers", "TestPublishSubscribeRoundTrip"},
			"guarantee broken: a message nacked 12 times must still be redelivered"},
		{"truncate-large",
			[]string{"TestLimitsAreCarriedOrRefusedClearly"},
			[]string{"TestPublishSubscribeRoundTrip", "TestLargePayloadRoundTrips"},
			"guarantee broken: an 8 MiB payload must round-trip byte for byte"},
		{"long-name-kills-connection",
			[]string{"TestOddNamesAreTakenOrRefusedWithoutHarm"},
			[]string{"TestPublishSubscribeRoundTrip"},
			"guarantee broken: after the topic or group name \"ct-long-"},
		{"long-name-error-repeats-it",
			[]string{"TestOddNamesAreTakenOrRefusedWithoutHarm"},
			[]string{"TestPublishSubscribeRoundTrip"},
			"guarantee broken: an error about a long name must name it abbreviated"},
		{"odd-name-goes-nowhere",
			[]string{"TestOddNamesAreTakenOrRefusedWithoutHarm"},
			[]string{"TestPublishSubscribeRoundTrip"},
			"which the broker took, must be delivered"},
		{"fold-key-case",
			[]string{"TestOddMetadataIsCarriedOrRefused"},
			[]string{"TestPublishSubscribeRoundTrip", "TestMetadataRoundTrips"},
			"guarantee broken: metadata must arrive exactly as sent or be refused"},
		{"ignores-nack-delay",
			[]string{"TestFailingMessageBacksOff"},
			[]string{"TestNackRedelivers", "TestHandlerErrorRedelivers"},
			"guarantee broken: a failing message must be redelivered with a growing delay"},
		{"restart-loses-messages",
			[]string{"TestPersistentMessagesSurviveARestart"},
			[]string{"TestPublishSubscribeRoundTrip"},
			"guarantee broken: messages published before a broker restart (Persistent declared) must be delivered after it"},
		{"remove-keeps-group",
			[]string{"TestRemovedGroupKeepsNothing"},
			[]string{"TestPublishSubscribeRoundTrip", "TestEnsureGroupKeepsWhatIsPublishedBeforeSubscribe"},
			"guarantee broken: a removed group must keep nothing"},
		{"close-keeps-subscriptions",
			[]string{"TestTransportCloseClosesSubscriptions"},
			[]string{"TestPublishSubscribeRoundTrip", "TestCloseUnblocksIdleSubscriber"},
			"guarantee broken: ReceiveBatch on a subscription whose transport was closed must"}, // return, or fail with ErrClosed: which one shows depends on which deadline fires first
		// Only where the driver's ReceiveBatch is already waiting when the
		// subscription stops: a cancel right after Subscribe may come first.
		{"unmarked-derived-id",
			[]string{"TestForeignEventIsHandledUnderItsEventID"},
			[]string{"TestPublishSubscribeRoundTrip", "TestCloudEventsStructuredModeIsRead"},
			"guarantee broken: an event from a CloudEvents producer must be handled under its event id"},
		{"receive-ignores-context",
			[]string{"TestSubscriberCloseClosesChannels"},
			[]string{"TestPublishSubscribeRoundTrip"},
			"guarantee broken: Subscriber.Close must return"},
	})
}

// faultCase is one fault a fixture injects: the guarantees it must fail,
// some it must leave passing, and what the failure must say.
type faultCase struct {
	fault    string
	mustFail []string
	mustPass []string
	message  string
}

// checkFaultsAreCaught runs each case in parallel, as a subtest named
// after its fault (checkFaultIsCaught).
func checkFaultsAreCaught(t *testing.T, fixture string, cases []faultCase) {
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			t.Parallel()
			checkFaultIsCaught(t, fixture, c)
		})
	}
}

// checkFaultIsCaught runs fixture in a child process with c's fault
// injected and checks that the guarantees in mustFail fail, those in
// mustPass pass, and the output says message.
func checkFaultIsCaught(t *testing.T, fixture string, c faultCase) {
	t.Helper()
	fault, mustFail, mustPass, message := c.fault, c.mustFail, c.mustPass, c.message
	names := append(append([]string{}, mustFail...), mustPass...)
	run := "^" + fixture + "$/^(" + strings.Join(names, "|") + ")$"
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), faultEnv+"="+fault)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		t.Fatalf("the suite passed a driver with fault %q; it must fail. Output:\n%s", fault, out.String())
	}
	for _, name := range mustFail {
		if !regexp.MustCompile(`--- FAIL: ` + fixture + `/` + name + ` `).Match(out.Bytes()) {
			t.Errorf("fault %q: %s should fail and did not. Output:\n%s", fault, name, out.String())
		}
	}
	for _, name := range mustPass {
		if !regexp.MustCompile(`--- PASS: ` + fixture + `/` + name + ` `).Match(out.Bytes()) {
			t.Errorf("fault %q: %s is untouched by the fault and should pass. Output:\n%s", fault, name, out.String())
		}
	}
	if !strings.Contains(out.String(), message) {
		t.Errorf("fault %q: the failure should say %q. Output:\n%s", fault, message, out.String())
	}
}

// The stress mode: two rounds of the whole suite, each round's guarantees
// at once (but the leak check), on the fault-free fixture.
func TestSuiteInRoundsAndInParallel(t *testing.T) {
	var rounds [3]atomic.Int32
	conformance.Run(t, conformance.Harness{
		Open: func(_ context.Context, t *testing.T) (driver.Transport, error) {
			for i := 1; i <= 2; i++ {
				if strings.Contains(t.Name(), "/round-"+strconv.Itoa(i)+"/") {
					rounds[i].Add(1)
				}
			}
			return openFaulty(t, "")
		},
		Rounds:   2,
		Parallel: true,
	})
	if rounds[1].Load() == 0 || rounds[1].Load() != rounds[2].Load() {
		t.Fatalf("both rounds must run every guarantee: transports opened %d in round 1, %d in round 2", rounds[1].Load(), rounds[2].Load())
	}
}
