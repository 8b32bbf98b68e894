package sqs_test

import (
	"context"
	"testing"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The suite's killed-consumer guarantee, with a lease (visibility_timeout)
// short enough for the suite's timeout; TestMain opens the consumer it
// kills.
func TestConformanceKilledConsumer(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, _ *testing.T) (driver.Transport, error) {
			return open(ctx, endpoint, killedOptions)
		},
		KilledConsumer: true,
		Only:           []string{"TestConsumerKilledBeforeAckHandsOver"},
	})
}
