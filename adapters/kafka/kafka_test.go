package kafka_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/adapters/kafka"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// fastGroups makes group membership changes quick enough for tests; real
// deployments keep the defaults.
var fastGroups = map[string]string{"session_timeout": "3s", "heartbeat_interval": "300ms", "nack_delay": "20ms"}

func open(ctx context.Context, url string, opts map[string]string) (*testenv.Transport, error) {
	merged := map[string]string{}
	for k, v := range fastGroups {
		merged[k] = v
	}
	for k, v := range opts {
		merged[k] = v
	}
	return testenv.Watermill(kafka.Driver{}.Open(ctx, sdk.Config{Driver: "kafka", URL: url, Options: merged}))
}

func TestConformance(t *testing.T) {
	url := testenv.Kafka(t)
	conformance.Run(t, conformance.Harness{
		Open:       func(ctx context.Context, t *testing.T) (driver.Transport, error) { return open(ctx, url, nil) },
		OpenConfig: kafka.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: "kafka", URL: "kafka://alice:s3cret-in-the-url@" + addr, Options: map[string]string{"sasl_allow_plaintext": "true"}}
		},
		Secret:    "s3cret-in-the-url",
		InjectRaw: injectRecord(url), // a record with no key and no headers
		// A structured-mode event, as the CloudEvents Kafka binding writes it.
		InjectEvent: injectRecord(url, kgo.RecordHeader{Key: "content-type", Value: []byte("application/cloudevents+json; charset=UTF-8")}),
	})
}

// injectRecord produces payload to a topic with franz-go, with no key and
// only the given headers, as a producer that is not msgkit would.
func injectRecord(url string, headers ...kgo.RecordHeader) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.TrimPrefix(url, "kafka://")))
		if err != nil {
			return err
		}
		defer cl.Close()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: payload, Headers: headers}).FirstErr()
	}
}

// With initial_offset newest a new group starts where the topic ends when
// it is created (Subscribe or EnsureGroup), not when a member first joins.
func TestConformanceNewGroupsFromNewest(t *testing.T) {
	url := testenv.Kafka(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
			return open(ctx, url, map[string]string{"initial_offset": "newest"})
		},
	})
}
