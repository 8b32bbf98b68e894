package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// An event a producer writes in the CloudEvents AMQP binding (binary mode:
// cloudEvents:* application properties, or cloudEvents_* where the client
// cannot use ':') reaches a handler with its type and source.
func TestCloudEventsAMQPBindingIsRead(t *testing.T) {
	url := testenv.RabbitMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	topic := "ct-cloudevents-" + uuid.NewString()[:8]
	got := make(chan *sdk.Message, 2)
	if _, err := c.Subscribe(ctx, topic, "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, sep := range []string{":", "_"} {
		h := amqp.Table{"cloudEvents" + sep + "specversion": "1.0", "cloudEvents" + sep + "type": "com.example.order.created",
			"cloudEvents" + sep + "source": "/shop", "cloudEvents" + sep + "id": "evt" + sep}
		if err := ch.PublishWithContext(ctx, topic, "", false, false, amqp.Publishing{Headers: h, ContentType: "application/json", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		m := testenv.Await(t, got, "the CloudEvents message ("+sep+")")
		if m.EventType != "com.example.order.created" || m.Source != "/shop" || m.ContentType != "application/json" || m.Get("ce-id") != "evt"+sep {
			t.Fatalf("separator %q: got type %q source %q content type %q ce-id %q", sep, m.EventType, m.Source, m.ContentType, m.Get("ce-id"))
		}
	}
}
