package sqs_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// Watermill's own universal pub/sub suite, through sdk's Watermill
// publisher and subscribers, on the emulator.
func TestWatermillUniversalSuite(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.RunWatermillSuite(t, tests.Features{Persistent: true},
		func(*testing.T) sdk.Config {
			return sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(nil)}
		})
}
