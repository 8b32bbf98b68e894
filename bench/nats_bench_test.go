package bench

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	_ "github.com/msgkit/msgkit/adapters/nats"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func natsClient(b *testing.B, url string) *sdk.Client {
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "nats", URL: url}, sdk.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func rawNATS(b *testing.B, url string) jetstream.JetStream {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return js
}

// natsStream creates (untimed) the file-stored stream the SDK would create
// for a new topic, and deletes it when the benchmark ends.
func natsStream(b *testing.B, js jetstream.JetStream, prefix string) string {
	topic := uniqueTopic(prefix)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: topic, Subjects: []string{topic}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = js.DeleteStream(context.Background(), topic) })
	return topic
}

// rawNATSPublish publishes n messages, batchSize at a time, each with the
// headers the SDK writes for a message with only an id and a payload (the
// id and ce-time), waiting for the stream's acks of each batch.
func rawNATSPublish(b *testing.B, js jetstream.JetStream, topic string, n int) {
	for sent := 0; sent < n; {
		k := min(batchSize, n-sent)
		for i := 0; i < k; i++ {
			m := &nats.Msg{Subject: topic, Data: payload, Header: nats.Header{
				"_watermill_message_uuid": {uuid.NewString()}, sdk.KeyTime: {time.Now().UTC().Format(time.RFC3339Nano)},
			}}
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			b.Fatal("no acks from the stream within 30s")
		}
		sent += k
	}
}

func BenchmarkNATSPublish(b *testing.B) {
	url := testenv.NATS(b)
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		js := rawNATS(b, url)
		topic := natsStream(b, js, "nats-pub")
		b.ResetTimer()
		rawNATSPublish(b, js, topic, b.N)
	})
	r.run(b, "sdk", func(b *testing.B) {
		topic := natsStream(b, rawNATS(b, url), "nats-pub")
		c := natsClient(b, url)
		b.ResetTimer()
		publishSDK(b, c, topic)
	})
	r.report(b, "nats publish")
}

func BenchmarkNATSConsume(b *testing.B) {
	url := testenv.NATS(b)
	var r rates
	// Each variant drains a stream prefilled (untimed) with b.N messages in
	// the SDK's format, as a new group reading from the start.
	prefill := func(b *testing.B) (jetstream.JetStream, string) {
		js := rawNATS(b, url)
		topic := natsStream(b, js, "nats-sub")
		rawNATSPublish(b, js, topic, b.N)
		return js, topic
	}
	r.run(b, "raw", func(b *testing.B) {
		js, topic := prefill(b)
		ctx := context.Background()
		cons, err := js.CreateConsumer(ctx, topic, jetstream.ConsumerConfig{Durable: "g", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for got := 0; got < b.N; {
			batch, err := cons.Fetch(100, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			for m := range batch.Messages() {
				if err := m.Ack(); err != nil {
					b.Fatal(err)
				}
				got++
			}
			if err := batch.Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
	r.run(b, "sdk", func(b *testing.B) {
		_, topic := prefill(b)
		c := natsClient(b, url)
		b.ResetTimer()
		consumeSDK(b, c, topic, "g", b.N)
	})
	r.report(b, "nats consume")
}
