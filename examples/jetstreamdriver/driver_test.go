package jetstreamdriver_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/examples/jetstreamdriver"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The example driver passes the conformance suite for what it declares.
func TestConformance(t *testing.T) {
	url := testenv.NATS(t)
	t.Cleanup(func() { testenv.DeleteNATSStreams(url, "msgkit-ct-") })
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
			return jetstreamdriver.Driver{}.Open(ctx, sdk.Config{Driver: jetstreamdriver.DriverName, URL: url,
				Options: map[string]string{"ack_wait": "2s", "fetch_wait": "200ms"}})
		},
		OpenConfig: jetstreamdriver.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: jetstreamdriver.DriverName, URL: "nats://app:s3cret-in-the-url@" + addr}
		},
		Secret: "s3cret-in-the-url",
		Proxied: func(proxy func(string) string) sdk.Config {
			return sdk.Config{Driver: jetstreamdriver.DriverName, URL: testenv.ProxiedURL(url, proxy)}
		},
		InjectRaw:   testenv.PublishJetStream(url, nil), // a message from a producer that is not msgkit
		InjectEvent: testenv.PublishJetStream(url, nats.Header{"content-type": {"application/cloudevents+json"}}),
	})
}
