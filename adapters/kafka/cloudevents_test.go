package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	c, err := sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: url, Options: fastGroups})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	got := make(chan *sdk.Message, 1)
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
	defer raw.Close()
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
	c, err := sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: url, Options: fastGroups})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	got := make(chan *sdk.Message, 1)
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
	defer raw.Close()
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
