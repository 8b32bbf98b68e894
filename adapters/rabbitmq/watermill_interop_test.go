package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A service on the stock watermill-amqp adapter (durable pub/sub config),
// run through Watermill's router, and one on msgkit exchange messages both
// ways with id, binary payload and non-ASCII metadata intact.
func TestWatermillAMQPInteropKeepsTheID(t *testing.T) {
	url := testenv.RabbitMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "ct-wm-" + uuid.NewString()[:8]
	cfg := wmamqp.NewDurablePubSubConfig(url, wmamqp.GenerateQueueNameTopicNameWithSuffix("wm"))
	wmSub, err := wmamqp.NewSubscriber(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	wmPub, err := wmamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer wmPub.Close()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())

	// msgkit -> watermill-amqp, run through Watermill's router as its
	// users run it.
	atWatermill := testenv.RunRouter(t, wmSub, topic)
	ours := sdk.NewMessage([]byte{0, 0xff, 'r'})
	ours.EventType = "invoice.created"
	ours.Set("tenant", "acme")
	ours.Set("city", "Zürich")
	if err := c.Publish(ctx, topic, ours); err != nil {
		t.Fatal(err)
	}
	m0 := testenv.Await(t, atWatermill, "msgkit's message at the watermill-amqp handler")
	if m0.UUID != ours.ID || string(m0.Payload) != string(ours.Payload) || m0.Metadata.Get("tenant") != "acme" || m0.Metadata.Get("city") != "Zürich" ||
		m0.Metadata.Get(sdk.KeyEventType) != "invoice.created" {
		t.Fatalf("watermill-amqp got id %q payload %q metadata %v; want id %q", m0.UUID, m0.Payload, m0.Metadata, ours.ID)
	}

	// watermill-amqp -> msgkit
	got := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(ctx, topic, "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	theirs := message.NewMessage(watermill.NewUUID(), []byte{0, 0xfe, 'w'})
	theirs.Metadata.Set("tenant", "acme")
	theirs.Metadata.Set("city", "Zürich")
	if err := wmPub.Publish(topic, theirs); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, got, "watermill-amqp's message")
	if m.ID != theirs.UUID || string(m.Payload) != string(theirs.Payload) || m.Get("tenant") != "acme" || m.Get("city") != "Zürich" {
		t.Fatalf("msgkit got id %q payload %q tenant %q; want id %q", m.ID, m.Payload, m.Get("tenant"), theirs.UUID)
	}
}
