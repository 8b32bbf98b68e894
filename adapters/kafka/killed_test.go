package kafka_test

import (
	"context"
	"os"
	"testing"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk/driver"
)

func TestMain(m *testing.M) {
	conformance.KilledConsumerMain(func(ctx context.Context) (driver.Transport, error) {
		return open(ctx, testenv.Getenv("MSGKIT_TEST_KAFKA_URL", "kafka://127.0.0.1:19092"), nil)
	})
	os.Exit(m.Run())
}

// The suite's killed-consumer guarantee: the group notices the dead member
// after session_timeout (3s here) and hands its partitions to another;
// TestMain opens the consumer it kills.
func TestConformanceKilledConsumer(t *testing.T) {
	url := testenv.Kafka(t)
	conformance.Run(t, conformance.Harness{
		Open:           func(ctx context.Context, _ *testing.T) (driver.Transport, error) { return open(ctx, url, nil) },
		KilledConsumer: true,
		Only:           []string{"TestConsumerKilledBeforeAckHandsOver"},
	})
}
