package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// An event a producer writes in the CloudEvents Kafka binding (binary
// mode: ce_* headers) reaches a handler with its type, source and time.
func TestCloudEventsKafkaBindingIsRead(t *testing.T) {
	url := testenv.Kafka(t)
	topic, group := names("cloudevents")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, raw := consumeRaw(t, ctx, url, topic, group)
	rec := &kgo.Record{Topic: topic, Value: []byte(`{"order":1}`), Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_type", Value: []byte("com.example.order.created")},
		{Key: "ce_source", Value: []byte("/shop")}, {Key: "ce_id", Value: []byte("evt-1")},
		{Key: "ce_time", Value: []byte("2026-12-05T10:00:00Z")}, {Key: "content-type", Value: []byte("application/json")},
	}}
	if err := raw.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, got, "the CloudEvents record")
	if m.EventType != "com.example.order.created" || m.Source != "/shop" || m.ContentType != "application/json" ||
		!m.Time.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) || m.Get("ce-id") != "evt-1" {
		t.Fatalf("got type %q source %q content type %q time %v ce-id %q", m.EventType, m.Source, m.ContentType, m.Time, m.Get("ce-id"))
	}
}

// A plain Kafka producer's record, with a key and no headers, reaches a
// handler with the key as its ordering key and a stable id made of topic,
// partition and offset.
func TestPlainRecordKeyIsTheOrderingKey(t *testing.T) {
	url := testenv.Kafka(t)
	topic, group := names("plainkey")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, raw := consumeRaw(t, ctx, url, topic, group)
	rec := &kgo.Record{Topic: topic, Key: []byte("customer-7"), Value: []byte("plain")}
	if err := raw.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, got, "the plain record")
	wantID := fmt.Sprintf("%s-%d-%d", topic, rec.Partition, rec.Offset)
	if m.OrderingKey != "customer-7" || m.ID != wantID || string(m.Payload) != "plain" {
		t.Fatalf("got ordering key %q id %q payload %q; want customer-7, %s, plain", m.OrderingKey, m.ID, m.Payload, wantID)
	}
}

// consumeRaw subscribes a msgkit client to topic in group and returns what
// its handler gets, with a plain franz-go client to produce records with.
// Both close when the test ends.
func consumeRaw(t *testing.T, ctx context.Context, url, topic, group string) (<-chan *sdk.Message, *kgo.Client) {
	t.Helper()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: url, Options: fastGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	got := make(chan *sdk.Message, 16)
	if err := c.EnsureGroup(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	raw, err := kgo.NewClient(kgo.SeedBrokers(strings.TrimPrefix(url, "kafka://")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	return got, raw
}

// The CloudEvents SDK for Go, on its Kafka binding (kafka_sarama), sends
// an event msgkit reads whole, and reads as a valid event what msgkit
// writes with wire_format: cloudevents.
func TestCloudEventsSDKBothWays(t *testing.T) {
	url := testenv.Kafka(t)
	broker := strings.TrimPrefix(url, "kafka://")
	topic, group := names("ce-sdk")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: url, Options: map[string]string{"session_timeout": "6s", "heartbeat_interval": "1s", "wire_format": "cloudevents"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.EnsureGroup(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	got := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}

	// CloudEvents SDK -> msgkit
	scfg := sarama.NewConfig()
	scfg.Version = sarama.V2_8_0_0
	sender, err := kafka_sarama.NewSender([]string{broker}, scfg, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	ceClient, err := cloudevents.NewClient(sender, cloudevents.WithTimeNow(), cloudevents.WithUUIDs())
	if err != nil {
		t.Fatal(err)
	}
	ev := cloudevents.NewEvent()
	ev.SetID("evt-" + uuid.NewString()[:8])
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
	out := sdk.NewMessage([]byte(`{"invoice":8}`))
	out.EventType, out.Source, out.ContentType = "com.example.invoice.sent", "/msgkit", "application/json"
	out.Set("ce-tenant", "acme")
	out.Set("city", "Zürich")
	if err := c.Publish(ctx, topic, out); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, got, "msgkit's own event at msgkit") // also read back as msgkit
	raw, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var rec *kgo.Record
	for rec == nil {
		fetches := raw.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("msgkit's record never arrived")
		}
		fetches.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ce_id" && string(h.Value) == out.ID {
					rec = r
				}
			}
		})
	}
	cm := &sarama.ConsumerMessage{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value}
	for _, h := range rec.Headers {
		cm.Headers = append(cm.Headers, &sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	read, err := binding.ToEvent(ctx, kafka_sarama.NewMessageFromConsumerMessage(cm))
	if err != nil {
		t.Fatalf("the CloudEvents SDK cannot read msgkit's record: %v", err)
	}
	if err := read.Validate(); err != nil {
		t.Fatalf("msgkit's record is not a valid CloudEvent: %v", err)
	}
	if read.ID() != out.ID || read.Type() != out.EventType || read.Source() != out.Source || read.DataContentType() != "application/json" ||
		string(read.Data()) != `{"invoice":8}` || read.Extensions()["tenant"] != "acme" {
		t.Fatalf("the CloudEvents SDK read %v", read)
	}

	// CloudEvents requires a type and a source: a message without is
	// refused at once, and only it.
	bare := sdk.NewMessage([]byte("x"))
	if err := c.Publish(ctx, topic, bare); err == nil || !strings.Contains(err.Error(), "CloudEvents requires") {
		t.Fatalf("a message without EventType or Source must be refused with wire_format: cloudevents, got %v", err)
	}

	// A key named in the binding's own namespace (ce_) would come back as
	// the attribute, beside msgkit's ce-tenant: refused, naming it, and
	// only that message.
	clash := sdk.NewMessage([]byte("clash"))
	clash.EventType, clash.Source = "com.example.invoice.sent", "/msgkit"
	clash.Set("ce-tenant", "acme")
	clash.Set("ce_tenant", "globex")
	// Metadata ce-id other than the message id would be sent beside ce_id
	// for a consumer to choose between: refused too, naming it.
	otherID := sdk.NewMessage([]byte("other id"))
	otherID.EventType, otherID.Source = "com.example.invoice.sent", "/msgkit"
	otherID.Set("ce-id", "evt-7")
	next := sdk.NewMessage([]byte("next"))
	next.EventType, next.Source = "com.example.invoice.sent", "/msgkit"
	if err := c.Publish(ctx, topic, otherID); err == nil || !strings.Contains(err.Error(), `metadata key "ce-id" holds "evt-7"`) {
		t.Fatalf("metadata ce-id other than the message id must be refused naming it, got %v", err)
	}
	if err := c.Publish(ctx, topic, clash, next); err == nil || !strings.Contains(err.Error(), `metadata key "ce_tenant"`) {
		t.Fatalf("a key in the ce_ namespace must be refused naming it, got %v", err)
	}
	if m := testenv.Await(t, got, "the message sent beside the refused one"); string(m.Payload) != "next" {
		t.Fatalf("got %q, want the message sent beside the refused one", m.Payload)
	}
}
