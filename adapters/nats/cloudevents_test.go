package nats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// ceSession opens a Client with options, subscribes it to a new topic
// (its handled messages go to got), and returns a NATS connection and a
// CloudEvents SDK client that sends to the stream msgkit made for the
// topic. Everything is closed when the test ends.
func ceSession(ctx context.Context, t *testing.T, prefix string, options map[string]string) (
	c *sdk.Client, got chan *sdk.Message, nc *nats.Conn, ceClient cloudevents.Client, topic string) {
	t.Helper()
	url := testenv.NATS(t)
	topic, group := names(prefix)
	c, err := sdk.Open(ctx, sdk.Config{Driver: "nats", URL: url, Options: options})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	got = make(chan *sdk.Message, 2)
	if _, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	if nc, err = nats.Connect(url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sender, err := cejs.NewSenderFromConn(nc, topic, topic, nil) // the stream msgkit made for the topic
	if err != nil {
		t.Fatal(err)
	}
	if ceClient, err = cloudevents.NewClient(sender, cloudevents.WithTimeNow()); err != nil {
		t.Fatal(err)
	}
	return c, got, nc, ceClient, topic
}

// The CloudEvents SDK for Go, on its NATS JetStream binding, sends an
// event msgkit reads whole, and reads as a valid event what msgkit writes
// with wire_format: cloudevents.
func TestCloudEventsSDKBothWays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, got, nc, ceClient, topic := ceSession(ctx, t, "cesdk", map[string]string{"wire_format": "cloudevents"})

	// CloudEvents SDK -> msgkit
	ev := cloudevents.NewEvent()
	ev.SetID("evt-" + topic)
	ev.SetType("com.example.invoice.paid")
	ev.SetSource("/billing")
	ev.SetExtension("tenant", "acme")
	if err := ev.SetData(cloudevents.ApplicationJSON, map[string]int{"invoice": 7}); err != nil {
		t.Fatal(err)
	}
	if res := ceClient.Send(ctx, ev); cloudevents.IsUndelivered(res) {
		t.Fatalf("the CloudEvents SDK could not send: %v", res)
	}
	m := testenv.Await(t, got, "the CloudEvents SDK's event")
	if m.ID != ev.ID() || m.EventType != ev.Type() || m.Source != ev.Source() || m.ContentType != "application/json" ||
		string(m.Payload) != `{"invoice":7}` || m.Get("ce-tenant") != "acme" || m.Time.IsZero() {
		t.Fatalf("msgkit got id %q type %q source %q content type %q payload %q tenant %q time %v; want the event %v",
			m.ID, m.EventType, m.Source, m.ContentType, m.Payload, m.Get("ce-tenant"), m.Time, ev)
	}

	// msgkit (wire_format: cloudevents) -> CloudEvents SDK
	raw, err := nc.SubscribeSync(topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	out := sdk.NewMessage([]byte(`{"invoice":8}`))
	out.EventType, out.Source, out.ContentType = "com.example.invoice.sent", "/msgkit", "application/json"
	out.Set("ce-tenant", "acme")
	if err := c.Publish(ctx, topic, out); err != nil {
		t.Fatal(err)
	}
	nm, err := raw.NextMsgWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	read, err := binding.ToEvent(ctx, cejs.NewMessage(nm))
	if err != nil {
		t.Fatalf("the CloudEvents SDK cannot read msgkit's message: %v", err)
	}
	if err := read.Validate(); err != nil {
		t.Fatalf("msgkit's message is not a valid CloudEvent: %v", err)
	}
	if read.ID() != out.ID || read.Type() != out.EventType || read.Source() != out.Source || read.DataContentType() != "application/json" ||
		string(read.Data()) != `{"invoice":8}` || read.Extensions()["tenant"] != "acme" {
		t.Fatalf("the CloudEvents SDK read %v", read)
	}

	bare := sdk.NewMessage([]byte("x"))
	if err := c.Publish(ctx, topic, bare); err == nil || !strings.Contains(err.Error(), "CloudEvents requires") {
		t.Fatalf("a message without EventType or Source must be refused with wire_format: cloudevents, got %v", err)
	}
	// Metadata ce-id is the header the event id goes in: another value
	// than the message id would be overwritten, so it is refused.
	otherID := sdk.NewMessage([]byte("x"))
	otherID.EventType, otherID.Source = "com.example.invoice.sent", "/msgkit"
	otherID.Set("ce-id", "evt-7")
	if err := c.Publish(ctx, topic, otherID); err == nil || !strings.Contains(err.Error(), `metadata key "ce-id" holds "evt-7"`) {
		t.Fatalf("metadata ce-id other than the message id must be refused naming it, got %v", err)
	}
}

// The CloudEvents SDK for Go sends an event in structured mode as the bare
// payload, with no header at all (its NATS binding's readers take a message
// without ce-specversion for one): msgkit unpacks it and handles it under
// the event's id. A header-less payload that is not an event (JSON without
// the attributes every event has) arrives as it was sent.
func TestCloudEventsSDKStructuredModeWithoutHeaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, got, nc, ceClient, topic := ceSession(ctx, t, "cestruct", nil)
	ev := cloudevents.NewEvent()
	ev.SetID("evt-" + topic)
	ev.SetType("com.example.invoice.paid")
	ev.SetSource("/billing")
	if err := ev.SetData(cloudevents.ApplicationJSON, map[string]int{"invoice": 9}); err != nil {
		t.Fatal(err)
	}
	if res := ceClient.Send(binding.WithForceStructured(ctx), ev); cloudevents.IsUndelivered(res) {
		t.Fatalf("the CloudEvents SDK could not send: %v", res)
	}
	m := testenv.Await(t, got, "the CloudEvents SDK's structured event")
	if m.ID != ev.ID() || m.EventType != ev.Type() || m.Source != ev.Source() || m.ContentType != "application/json" ||
		string(m.Payload) != `{"invoice":9}` || m.Time.IsZero() {
		t.Fatalf("msgkit got id %q type %q source %q content type %q payload %q time %v; want the event %v",
			m.ID, m.EventType, m.Source, m.ContentType, m.Payload, m.Time, ev)
	}

	plain := `{"specversion":"1.0","id":"not-all-attributes"}`
	if err := nc.Publish(topic, []byte(plain)); err != nil {
		t.Fatal(err)
	}
	m = testenv.Await(t, got, "a header-less JSON payload that is not an event")
	if string(m.Payload) != plain || m.ContentType != "" || m.ID == "not-all-attributes" {
		t.Fatalf("a payload that is not an event must arrive as it was sent: id %q payload %q content type %q", m.ID, m.Payload, m.ContentType)
	}
}
