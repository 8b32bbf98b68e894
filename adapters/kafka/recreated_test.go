package kafka_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A topic deleted and created again under a running subscription (the next
// publish creates it) is read anew: franz-go stops at the new topic's id
// (UNKNOWN_TOPIC_ID) until the subscription has it purge and add the topic,
// and says so in the log; what is published to the new topic arrives.
func TestRecreatedTopicIsReadAgain(t *testing.T) {
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
	if p := testenv.Await(t, got, "the message published after the topic was created again"); p != "after" {
		t.Fatalf("got %q after the recreation, want \"after\"", p)
	}
	if len(logs.Lines("kafka: the topic was deleted and created again", topic)) == 0 {
		t.Fatalf("the subscription did not say it read the topic anew; the log:\n%s", logs.String())
	}
}
