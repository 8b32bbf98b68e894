package kafka_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A service on the stock watermill-kafka adapter, run through Watermill's
// router, and one on msgkit exchange messages both ways with id, binary
// payload and non-ASCII metadata intact.
func TestWatermillKafkaInterop(t *testing.T) {
	url := testenv.Kafka(t)
	brokers := []string{strings.TrimPrefix(url, "kafka://")}
	topic, _ := names("wm")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: url, Options: fastGroups})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.EnsureGroup(ctx, topic, "msgkit-billing"); err != nil { // creates the topic
		t.Fatal(err)
	}

	scfg := wkafka.DefaultSaramaSubscriberConfig()
	scfg.Version = sarama.V3_6_0_0
	scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	wmSub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{Brokers: brokers, Unmarshaler: wkafka.DefaultMarshaler{},
		OverwriteSaramaConfig: scfg, ConsumerGroup: "wm-billing"}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	pcfg := wkafka.DefaultSaramaSyncPublisherConfig()
	pcfg.Version = sarama.V3_6_0_0
	wmPub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: brokers, Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: pcfg}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer wmPub.Close()
	atWatermill := testenv.RunRouter(t, wmSub, topic)

	binary := []byte{0, 0xff, 'k', '\n'}
	ours := sdk.NewMessage(binary)
	ours.EventType = "invoice.created"
	ours.OrderingKey = "customer-7"
	ours.Set("city", "Zürich")
	if err := c.Publish(ctx, topic, ours); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, atWatermill, "msgkit's message at the watermill-kafka handler")
	if m.UUID != ours.ID || !bytes.Equal(m.Payload, binary) || m.Metadata.Get("city") != "Zürich" || m.Metadata.Get(sdk.KeyEventType) != "invoice.created" ||
		m.Metadata.Get(sdk.KeyOrderingKey) != "customer-7" {
		t.Fatalf("watermill-kafka got id %q payload %q metadata %v; want id %s, the binary payload, city, ce-type and ordering-key", m.UUID, m.Payload, m.Metadata, ours.ID)
	}

	got := make(chan *sdk.Message, 4)
	if _, err := c.Subscribe(ctx, topic, "msgkit-billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	theirs := message.NewMessage(watermill.NewUUID(), binary)
	theirs.Metadata.Set("city", "Zürich")
	theirs.Metadata.Set(sdk.KeyEventType, "invoice.paid")
	if err := wmPub.Publish(topic, theirs); err != nil {
		t.Fatal(err)
	}
	for {
		r := testenv.Await(t, got, "watermill-kafka's message at msgkit")
		if r.ID == ours.ID {
			continue // the group was made before msgkit's own publish
		}
		if r.ID != theirs.UUID || !bytes.Equal(r.Payload, binary) || r.Get("city") != "Zürich" || r.EventType != "invoice.paid" {
			t.Fatalf("msgkit got id %q payload %q metadata %v type %q; want id %s, the binary payload, city and the event type", r.ID, r.Payload, r.Metadata, r.EventType, theirs.UUID)
		}
		return
	}
}
