package rabbitmq_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// Watermill's own universal pub/sub suite, through sdk's Watermill
// publisher and subscribers, on the shared broker.
func TestWatermillUniversalSuite(t *testing.T) {
	url := testenv.RabbitMQ(t)
	conformance.RunWatermillSuite(t, tests.Features{ConsumerGroups: true, Persistent: true},
		func(*testing.T) sdk.Config { return sdk.Config{Driver: "rabbitmq", URL: url} })
}
