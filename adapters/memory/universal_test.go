package memory_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/sdk"
)

// Watermill's own universal pub/sub suite, on one named broker per test.
func TestWatermillUniversalSuite(t *testing.T) {
	conformance.RunWatermillSuite(t, tests.Features{ConsumerGroups: true, Persistent: true},
		func(t *testing.T) sdk.Config {
			return sdk.Config{Driver: "memory", URL: "memory://universal-" + sanitize(t.Name())}
		})
}
