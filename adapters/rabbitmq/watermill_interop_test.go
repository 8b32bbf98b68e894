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

// A service on the stock watermill-amqp adapter (durable pub/sub config)
// and one on msgkit exchange messages both ways with id, payload and
// metadata intact.
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
	defer wmSub.Close()
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

	// msgkit -> watermill-amqp
	wmCh, err := wmSub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ours := sdk.NewMessage([]byte("from msgkit"))
	ours.Set("tenant", "acme")
	if err := c.Publish(ctx, topic, ours); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-wmCh:
		m.Ack()
		if m.UUID != ours.ID || string(m.Payload) != "from msgkit" || m.Metadata.Get("tenant") != "acme" {
			t.Fatalf("watermill-amqp got id %q payload %q tenant %q; want id %q", m.UUID, m.Payload, m.Metadata.Get("tenant"), ours.ID)
		}
	case <-ctx.Done():
		t.Fatal("watermill-amqp never got msgkit's message")
	}

	// watermill-amqp -> msgkit
	got := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(ctx, topic, "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	theirs := message.NewMessage(watermill.NewUUID(), []byte("from watermill"))
	theirs.Metadata.Set("tenant", "acme")
	if err := wmPub.Publish(topic, theirs); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, got, "watermill-amqp's message")
	if m.ID != theirs.UUID || string(m.Payload) != "from watermill" || m.Get("tenant") != "acme" {
		t.Fatalf("msgkit got id %q payload %q tenant %q; want id %q", m.ID, m.Payload, m.Get("tenant"), theirs.UUID)
	}
}
