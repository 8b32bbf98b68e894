package sns_test

import (
	"context"
	"os"
	"testing"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk/driver"
)

// killedOptions give the killed-consumer conformance run a short lease: the
// group's queue hands a received message out again after
// visibility_timeout.
var killedOptions = map[string]string{"visibility_timeout": "2s"}

func TestMain(m *testing.M) {
	conformance.KilledConsumerMain(func(ctx context.Context) (driver.Transport, error) {
		return open(ctx, testenv.Getenv("MSGKIT_TEST_AWS_ENDPOINT", "http://127.0.0.1:4100"), killedOptions)
	})
	os.Exit(m.Run())
}

// The suite's killed-consumer guarantee; TestMain opens the consumer it
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
