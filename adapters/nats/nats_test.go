package nats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	msgnats "github.com/msgkit/msgkit/adapters/nats"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// open opens a transport and deletes, when the test ends, the streams it
// made (every stream the suite's ct-* topics created).
func open(t *testing.T, url string, options map[string]string) (driver.Transport, error) {
	tr, err := msgnats.Driver{}.Open(context.Background(), sdk.Config{Driver: msgnats.DriverName, URL: url, Options: options})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { deleteTestStreams(url) })
	return tr, nil
}

func deleteTestStreams(url string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var doomed []string
	for n := range names.Name() {
		if strings.HasPrefix(n, "ct-") || strings.HasPrefix(n, "ct_") {
			doomed = append(doomed, n)
		}
	}
	for _, n := range doomed {
		_ = js.DeleteStream(ctx, n)
	}
}

func TestConformance(t *testing.T) {
	url := testenv.NATS(t)
	conformance.Run(t, conformance.Harness{
		Open:       func(ctx context.Context, t *testing.T) (driver.Transport, error) { return open(t, url, nil) },
		OpenConfig: msgnats.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: msgnats.DriverName, URL: "nats://app:s3cret-in-the-url@" + addr}
		},
		Secret: "s3cret-in-the-url",
		InjectRaw: func(ctx context.Context, topic string, payload []byte) error { // a JetStream publish with no headers
			nc, err := nats.Connect(url)
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			_, err = js.Publish(ctx, topic, payload)
			return err
		},
	})
}

func TestConformanceNewGroupsFromLatest(t *testing.T) {
	url := testenv.NATS(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
			return open(t, url, map[string]string{"new_group_start": "latest", "batch_size": "7", "storage": "memory"})
		},
	})
}
