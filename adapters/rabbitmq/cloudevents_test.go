package rabbitmq_test

import (
	"context"
	"strings"
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
		if m.EventType != "com.example.order.created" || m.Source != "/shop" || m.ContentType != "application/json" || m.Get("ce-id") != "evt"+sep || m.ID != "evt"+sep {
			t.Fatalf("separator %q: got id %q type %q source %q content type %q ce-id %q (the event id is the message id)", sep, m.ID, m.EventType, m.Source, m.ContentType, m.Get("ce-id"))
		}
	}
}

// With wire_format: cloudevents the headers follow the CloudEvents AMQP
// binding (the spec's binary-mode names), which another client reads as
// an event and msgkit reads back whole; a message without a type or
// source is refused alone.
func TestCloudEventsAMQPBindingIsWritten(t *testing.T) {
	url := testenv.RabbitMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"wire_format": "cloudevents"}})
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
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "", topic, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := sdk.NewMessage([]byte(`{"invoice":9}`))
	sent.EventType, sent.Source, sent.ContentType = "com.example.invoice.sent", "/msgkit", "application/json"
	sent.Time = time.Date(2026, 12, 6, 4, 8, 41, 301918865, time.UTC)
	sent.Set("ce-tenant", "acme")
	sent.Set("city", "Zürich")
	bare := sdk.NewMessage([]byte("no type"))
	err = c.Publish(ctx, topic, sent, bare)
	if err == nil || !strings.Contains(err.Error(), "CloudEvents requires") {
		t.Fatalf("a message without EventType or Source must be refused with wire_format: cloudevents, got %v", err)
	}
	d := testenv.Await(t, deliveries, "the event at a plain AMQP consumer")
	want := map[string]string{"cloudEvents:specversion": "1.0", "cloudEvents:id": sent.ID, "cloudEvents:type": sent.EventType,
		"cloudEvents:source": sent.Source, "cloudEvents:tenant": "acme", "city": "Zürich"}
	for k, v := range want {
		if d.Headers[k] != v {
			t.Errorf("header %q = %v, want %q (headers %v)", k, d.Headers[k], v, d.Headers)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, d.Headers["cloudEvents:time"].(string)); err != nil || d.ContentType != "application/json" {
		t.Errorf("cloudEvents:time %v must be RFC 3339 and content_type the data content type, got %q", d.Headers["cloudEvents:time"], d.ContentType)
	}
	if _, ok := d.Headers["ce-type"]; ok {
		t.Error("with wire_format: cloudevents the ce-* names must not be written too")
	}
	m := testenv.Await(t, got, "the event read back by msgkit")
	if m.ID != sent.ID || m.EventType != sent.EventType || m.Source != sent.Source || m.Get("ce-tenant") != "acme" || m.Get("city") != "Zürich" {
		t.Fatalf("msgkit read back id %q type %q source %q metadata %v", m.ID, m.EventType, m.Source, m.Metadata)
	}
	if !m.Time.Equal(sent.Time) {
		t.Errorf("the time must come back to the nanosecond (cloudEvents:time), not the timestamp property's whole seconds: sent %v, got %v", sent.Time, m.Time)
	}
	for k := range m.Metadata {
		if strings.HasPrefix(k, "cloudEvents") {
			t.Errorf("metadata %q must be read as msgkit's own name, not kept beside it: %q", k, m.Metadata)
		}
	}
	// A key named in the binding's own namespace would come back as the
	// attribute (beside ce-tenant, one value would be lost): refused,
	// naming it, and only that message.
	clash := sdk.NewMessage([]byte("clash"))
	clash.EventType, clash.Source = "com.example.invoice.sent", "/msgkit"
	clash.Set("ce-tenant", "acme")
	clash.Set("cloudEvents:tenant", "globex")
	// Metadata ce-id other than the message id would be overwritten by
	// cloudEvents:id: refused too, naming it.
	otherID := sdk.NewMessage([]byte("other id"))
	otherID.EventType, otherID.Source = "com.example.invoice.sent", "/msgkit"
	otherID.Set("ce-id", "evt-7")
	next := sdk.NewMessage([]byte("next"))
	next.EventType, next.Source = "com.example.invoice.sent", "/msgkit"
	if err := c.Publish(ctx, topic, otherID); err == nil || !strings.Contains(err.Error(), `metadata key "ce-id" holds "evt-7"`) {
		t.Fatalf("metadata ce-id other than the message id must be refused naming it, got %v", err)
	}
	err = c.Publish(ctx, topic, clash, next)
	if err == nil || !strings.Contains(err.Error(), `metadata key "cloudEvents:tenant"`) {
		t.Fatalf("a key in the cloudEvents: namespace must be refused naming it, got %v", err)
	}
	if m := testenv.Await(t, got, "the message sent beside the refused one"); string(m.Payload) != "next" {
		t.Fatalf("got %q, want the message sent beside the refused one", m.Payload)
	}
	select {
	case m := <-got:
		t.Fatalf("a refused message arrived: %q", m.Payload)
	case <-time.After(300 * time.Millisecond): // a window for a wrongly sent message
	}
}
