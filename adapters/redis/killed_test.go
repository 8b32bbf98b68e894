package redis_test

import (
	"context"
	"testing"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The suite's killed-consumer guarantee, with a lease (claim_idle) short
// enough for the suite's timeout; TestMain opens the consumer it kills.
func TestConformanceKilledConsumer(t *testing.T) {
	url := testenv.Redis(t)
	conformance.Run(t, conformance.Harness{
		Open:           func(context.Context, *testing.T) (driver.Transport, error) { return openTransport(url, killedOptions) },
		KilledConsumer: true,
		Only:           []string{"TestConsumerKilledBeforeAckHandsOver"},
	})
}
