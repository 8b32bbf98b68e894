package redis_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A service on the stock watermill-redisstream adapter, run through
// Watermill's router, and one on msgkit exchange messages both ways with
// id, binary payload and non-ASCII metadata intact: msgkit reads the
// Watermill layout always, and writes it with wire_format: watermill.
func TestWatermillRedisStreamInterop(t *testing.T) {
	url := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "ct-wm-" + uuid.NewString()[:8]
	rc := rawClient(t, url)
	wmSub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: rc, ConsumerGroup: "wm-billing", OldestId: "0"}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	wmPub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rc}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer wmPub.Close()
	atWatermill := testenv.RunRouter(t, wmSub, topic)

	binary := []byte{0, 0xff, 'w', '\n'}
	writer, err := sdk.Open(ctx, sdk.Config{Driver: "redis", URL: url, Options: map[string]string{"wire_format": "watermill"}})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	ours := sdk.NewMessage(binary)
	ours.EventType = "invoice.created"
	ours.Set("city", "Zürich")
	if err := writer.Publish(ctx, topic, ours); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, atWatermill, "msgkit's message (wire_format: watermill) at the watermill-redisstream handler")
	if m.UUID != ours.ID || !bytes.Equal(m.Payload, binary) || m.Metadata.Get("city") != "Zürich" || m.Metadata.Get(sdk.KeyEventType) != "invoice.created" {
		t.Fatalf("watermill-redisstream got id %q payload %q metadata %v; want id %s, the binary payload, city and ce-type", m.UUID, m.Payload, m.Metadata, ours.ID)
	}

	// watermill-redisstream -> msgkit, with msgkit's default wire format.
	reader, err := sdk.Open(ctx, sdk.Config{Driver: "redis", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	got := make(chan *sdk.Message, 2)
	if _, err := reader.Subscribe(ctx, topic, "msgkit-billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil },
		sdk.StartAt(sdk.GroupStartLatest)); err != nil {
		t.Fatal(err)
	}
	theirs := message.NewMessage(watermill.NewUUID(), binary)
	theirs.Metadata.Set("city", "Zürich")
	theirs.Metadata.Set(sdk.KeyEventType, "invoice.paid")
	if err := wmPub.Publish(topic, theirs); err != nil {
		t.Fatal(err)
	}
	r := testenv.Await(t, got, "watermill-redisstream's message at msgkit")
	if r.ID != theirs.UUID || !bytes.Equal(r.Payload, binary) || r.Get("city") != "Zürich" || r.EventType != "invoice.paid" {
		t.Fatalf("msgkit got id %q payload %q metadata %v type %q; want id %s, the binary payload, city and the event type", r.ID, r.Payload, r.Metadata, r.EventType, theirs.UUID)
	}
	if _, ok := r.Metadata["_watermill_message_uuid"]; ok {
		t.Fatal("the Watermill id field must become the message id, not metadata")
	}
}
