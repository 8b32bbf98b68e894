package testenv

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishJetStream publishes payload to topic with no headers, as a NATS
// producer that is not msgkit would: a conformance.Harness InjectRaw.
func PublishJetStream(url string) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
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
	}
}

// DeleteNATSStreams deletes the streams whose names start with one of
// prefixes (the conformance suite's topics make ct-* streams), within ten
// seconds; errors are ignored, as in test cleanup.
func DeleteNATSStreams(url string, prefixes ...string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var doomed []string
	for n := range js.StreamNames(ctx).Name() {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				doomed = append(doomed, n)
				break
			}
		}
	}
	for _, n := range doomed {
		_ = js.DeleteStream(ctx, n)
	}
}
