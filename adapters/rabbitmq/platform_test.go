package rabbitmq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// platformTopology declares, as a platform team would with its own tool,
// a topic exchange with an alternate exchange, and the queue of group
// billing for topic bound to it. It removes them when the test ends.
func platformTopology(t *testing.T, url, exchange, topic string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	unrouted := exchange + ".unrouted"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare(unrouted, amqp.ExchangeFanout, true, false, false, false, nil))
	must(ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, amqp.Table{"alternate-exchange": unrouted}))
	_, err = ch.QueueDeclare(topic+".billing", true, false, false, false, amqp.Table{"x-max-length": int32(10000)})
	must(err)
	must(ch.QueueBind(topic+".billing", topic, exchange, false, nil))
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(topic+".billing", false, false, false)
		_ = ch.ExchangeDelete(exchange, false, false)
		_ = ch.ExchangeDelete(unrouted, false, false)
		_ = conn.Close()
	})
}

// On topology the platform declared with arguments msgkit does not set,
// declaring fails with the argument named; declare: false uses it as it
// is, and says what is missing when it is not there.
func TestPlatformOwnedTopology(t *testing.T) {
	url := testenv.RabbitMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := uuid.NewString()[:8]
	exchange, topic := "ct-platform-"+id, "ct-platform.orders-"+id
	platformTopology(t, url, exchange, topic)

	declaring, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"exchange": exchange}})
	if err != nil {
		t.Fatal(err)
	}
	defer declaring.Close(context.Background())
	_, err = declaring.Subscribe(ctx, topic, "billing", func(context.Context, *sdk.Message) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `"alternate-exchange"`) || !strings.Contains(err.Error(), "declare: false") ||
		strings.Contains(err.Error(), "queue_type, dead_letter") {
		t.Fatalf("declaring over the platform's exchange must name the argument that differs (alternate-exchange) and offer declare: false, got %v", err)
	}

	c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"exchange": exchange, "declare": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if c.Capabilities().RemovesGroups {
		t.Fatal("with declare: false the driver must not claim it removes groups: the queues are the platform's")
	}
	got := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(ctx, topic, "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatalf("declare: false must use the platform's exchange and queue: %v", err)
	}
	sent := sdk.NewMessage([]byte("through the platform's topology"))
	if err := c.Publish(ctx, topic, sent); err != nil {
		t.Fatal(err)
	}
	if m := testenv.Await(t, got, "the message through the platform's queue"); m.ID != sent.ID {
		t.Fatalf("got %s, want %s", m.ID, sent.ID)
	}
	if err := c.RemoveGroup(ctx, topic, "billing"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("RemoveGroup with declare: false must refuse, got %v", err)
	}

	_, err = c.Subscribe(ctx, topic, "shipping", func(context.Context, *sdk.Message) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `queue "`+topic+`.shipping"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a queue the platform did not declare must be named as missing, got %v", err)
	}
	if err := c.Publish(ctx, "ct-platform.nowhere-"+id, sdk.NewMessage(nil)); err != nil {
		t.Fatalf("with a shared exchange a publish routes by key and needs no queue: %v", err)
	}
	other, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"declare": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	pubCtx, pubCancel := context.WithTimeout(ctx, 10*time.Second)
	defer pubCancel()
	err = other.Publish(pubCtx, "ct-platform.missing-"+id, sdk.NewMessage(nil))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "declare") {
		t.Fatalf("publishing to an exchange the platform did not declare must say so, got %v", err)
	}
	if pubCtx.Err() != nil {
		t.Fatalf("a missing exchange with declare: false is a refusal: the publish must fail at once, not retry until its deadline (%v)", err)
	}

	_, err = sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"declare": "false", "queue_type": "quorum"}})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "options.queue_type" {
		t.Fatalf("queue_type with declare: false must be a config error on options.queue_type, got %v", err)
	}
}

// A basic.nack means the broker did not store the message, and passes (a
// quorum queue electing a leader, a full queue with x-overflow:
// reject-publish): the publish is retried until its deadline, so it
// succeeds once the queue has room.
func TestNackedPublishIsRetriedUntilThereIsRoom(t *testing.T) {
	url := testenv.RabbitMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "ct-full-" + uuid.NewString()[:8]
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(topic, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(topic+".billing", true, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(topic+".billing", "", topic, false, nil); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = ch.QueueDelete(topic+".billing", false, false, false)
		_ = ch.ExchangeDelete(topic, false, false)
	}()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"declare": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.Publish(ctx, topic, sdk.NewMessage([]byte("first"))); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	err = c.Publish(short, topic, sdk.NewMessage([]byte("no room")))
	cancelShort()
	if err == nil || !strings.Contains(err.Error(), "basic.nack") {
		t.Fatalf("a publish to a full reject-publish queue must fail at its deadline saying the broker nacked it, got %v", err)
	}
	second := sdk.NewMessage([]byte("second"))
	published := make(chan error, 1)
	go func() { published <- c.Publish(ctx, topic, second) }()
	got := make(chan string, 4)
	if _, err := c.Subscribe(ctx, topic, "billing", func(_ context.Context, m *sdk.Message) error { got <- string(m.Payload); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Await(t, published, "the nacked publish to be retried into the room the consumer made"); err != nil {
		t.Fatalf("the publish must be retried until the queue has room, got %v", err)
	}
	seen := map[string]bool{}
	for !seen["second"] {
		seen[testenv.Await(t, got, "the retried message")] = true
	}
}
