package nats_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	msgnats "github.com/msgkit/msgkit/adapters/nats"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// open opens a transport and deletes, when the test ends, the streams it
// made (every stream the suite's ct-* topics created).
func open(t *testing.T, url string, options map[string]string) (driver.Transport, error) {
	tr, err := openTransport(url, options)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { deleteTestStreams(url) })
	return tr, nil
}

// openTransport opens a transport whose streams the caller deletes: the
// conformance runs delete them once they end, so that a test never
// deletes the streams of another running beside it (CONFORMANCE_PARALLEL).
func openTransport(url string, options map[string]string) (driver.Transport, error) {
	return msgnats.Driver{}.Open(context.Background(), sdk.Config{Driver: msgnats.DriverName, URL: url, Options: options})
}

func deleteTestStreams(url string) { testenv.DeleteNATSStreams(url, "ct-", "ct_") }

func TestConformance(t *testing.T) {
	url := testenv.NATS(t)
	t.Cleanup(func() { deleteTestStreams(url) }) // once, after every test: never under a test running beside it
	conformance.Run(t, conformance.Harness{
		Open:       func(context.Context, *testing.T) (driver.Transport, error) { return openTransport(url, nil) },
		OpenConfig: msgnats.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: msgnats.DriverName, URL: "nats://app:s3cret-in-the-url@" + addr}
		},
		Secret: "s3cret-in-the-url",
		Proxied: func(proxy func(string) string) sdk.Config {
			return sdk.Config{Driver: msgnats.DriverName, URL: testenv.ProxiedURL(url, proxy)}
		},
		InjectRaw: testenv.PublishJetStream(url, nil), // a JetStream publish with no headers
		// A structured-mode event, as the CloudEvents NATS binding sends it
		// with headers.
		InjectEvent: testenv.PublishJetStream(url, nats.Header{"content-type": {"application/cloudevents+json"}}),
	})
}

func TestConformanceNewGroupsFromLatest(t *testing.T) {
	url := testenv.NATS(t)
	t.Cleanup(func() { deleteTestStreams(url) })
	conformance.Run(t, conformance.Harness{
		Open: func(context.Context, *testing.T) (driver.Transport, error) {
			return openTransport(url, map[string]string{"new_group_start": "latest", "batch_size": "7", "storage": "memory"})
		},
	})
}
