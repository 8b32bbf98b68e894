package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A topic deleted and created again under a running subscription (the next
// publish creates it) is not followed, as franz-go refuses to; the
// subscription says so, and what to do, instead of repeating the broker's
// bare UNKNOWN_TOPIC_ID.
func TestRecreatedTopicIsReportedByItsSubscription(t *testing.T) {
	url := testenv.Kafka(t)
	logs := testenv.DefaultLog(t)
	topic, group := names("recreated")
	ctx, cancel := context.WithTimeout(context.Background(), 4*testenv.WaitLimit)
	defer cancel()
	c := sdk.NewClient(mustOpen(t, url, fastGroups))
	defer c.Close(context.Background())
	got := make(chan string, 10)
	sub, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	if err := c.Publish(ctx, topic, sdk.NewMessage([]byte("before"))); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, got, "the message published before the deletion")

	admin, err := kgo.NewClient(kgo.SeedBrokers(url[len("kafka://"):]))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, sdk.NewMessage([]byte("after"))); err != nil {
		t.Fatalf("a publish after the deletion must create the topic again: %v", err)
	}
	deadline := time.Now().Add(testenv.WaitLimit)
	for len(logs.Lines("receiving failed", topic, "deleted and created again", "subscribe again")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the subscription did not report the recreated topic within %v; the log:\n%s", testenv.WaitLimit, logs.String())
		}
		time.Sleep(50 * time.Millisecond) // the report is a log line, which signals nothing
	}
}
