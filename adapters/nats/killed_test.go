package nats_test

import (
	"context"
	"testing"

	msgnats "github.com/msgkit/msgkit/adapters/nats"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The suite's killed-consumer guarantee, with a lease (ack_wait) short
// enough for the suite's timeout; TestMain opens the consumer it kills.
func TestConformanceKilledConsumer(t *testing.T) {
	url := testenv.NATS(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, _ *testing.T) (driver.Transport, error) {
			return msgnats.Driver{}.Open(ctx, sdk.Config{Driver: msgnats.DriverName, URL: url, Options: killedOptions})
		},
		KilledConsumer: true,
		Only:           []string{"TestConsumerKilledBeforeAckHandsOver"},
	})
}
