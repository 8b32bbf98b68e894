package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// With a shared topic exchange a group may subscribe to a pattern; each
// message then says the topic it was published to, and the pattern stays
// available.
func TestPatternSubscriptionSeesTheConcreteTopic(t *testing.T) {
	url := testenv.RabbitMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := uuid.NewString()[:8]
	exchange, order := "ct-pattern-"+id, "ct-order-"+id
	c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"exchange": exchange}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	type seen struct{ topic, subscribed string }
	got := make(chan seen, 2)
	if _, err := c.Subscribe(ctx, order+".*", "billing", func(_ context.Context, m *sdk.Message) error {
		got <- seen{m.Topic(), m.SubscribedTopic()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{order + ".created", order + ".paid"} {
		if err := c.Publish(ctx, topic, sdk.NewMessage([]byte(topic))); err != nil {
			t.Fatal(err)
		}
	}
	topics := map[string]bool{}
	for range 2 {
		s := testenv.Await(t, got, "a message matching order.*")
		if s.subscribed != order+".*" {
			t.Errorf("SubscribedTopic() = %q, want the pattern %s.*", s.subscribed, order)
		}
		topics[s.topic] = true
	}
	if !topics[order+".created"] || !topics[order+".paid"] {
		t.Fatalf("Topic() must be the topic each message was published to, got %v", topics)
	}
}
