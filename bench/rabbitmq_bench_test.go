package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	_ "github.com/msgkit/msgkit/adapters/rabbitmq"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func rabbitClient(b *testing.B, url string) *sdk.Client {
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: url}, sdk.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func rawAMQP(b *testing.B, url string) *amqp.Channel {
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	return ch
}

// declare makes the exchange and queue the SDK would (fanout exchange per
// topic, durable queue <topic>.<group>) and deletes them after the run.
func declare(b *testing.B, url, topic, group string) string {
	ch := rawAMQP(b, url)
	queue := topic + "." + group
	if err := ch.ExchangeDeclare(topic, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(queue, "", topic, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = ch.QueueDelete(queue, false, false, false)
		_ = ch.ExchangeDelete(topic, false, false)
	})
	return queue
}

// rawPublish publishes n persistent messages with confirms, batchSize at a
// time: publish the batch, then wait for its confirms (the SDK's window).
// Each message is what the SDK puts on the wire for a message with only an
// ID and a payload: the message-id and timestamp properties and the ce-time
// header, so that both sides ask the same work of the broker.
func rawPublish(b *testing.B, ch *amqp.Channel, exchange string, n int) {
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	dcs := make([]*amqp.DeferredConfirmation, 0, batchSize)
	for sent := 0; sent < n; {
		dcs = dcs[:0]
		for i := 0; i < batchSize && sent < n; i++ {
			now := time.Now()
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "", false, false, amqp.Publishing{
				MessageId: uuid.NewString(), DeliveryMode: amqp.Persistent, Body: payload, Timestamp: now,
				Headers: amqp.Table{sdk.KeyTime: now.UTC().Format(time.RFC3339Nano)},
			})
			if err != nil {
				b.Fatal(err)
			}
			dcs = append(dcs, dc)
			sent++
		}
		for _, dc := range dcs {
			if !dc.Wait() {
				b.Fatal("nack")
			}
		}
	}
}

func BenchmarkRabbitMQPublish(b *testing.B) {
	url := testenv.RabbitMQ(b)
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		topic := uniqueTopic("rmq-pub")
		declare(b, url, topic, "g")
		ch := rawAMQP(b, url)
		b.ResetTimer()
		rawPublish(b, ch, topic, b.N)
	})
	r.run(b, "sdk", func(b *testing.B) {
		topic := uniqueTopic("rmq-pub")
		declare(b, url, topic, "g")
		c := rabbitClient(b, url)
		b.ResetTimer()
		publishSDK(b, c, topic)
	})
	r.run(b, "watermill-amqp", func(b *testing.B) {
		topic := uniqueTopic("rmq-pub")
		declare(b, url, topic, "g")
		cfg := wmamqp.NewDurablePubSubConfig(url, wmamqp.GenerateQueueNameTopicNameWithSuffix("g"))
		cfg.Publish.ConfirmDelivery = true
		cfg.Exchange.Type = "fanout"
		pub, err := wmamqp.NewPublisher(cfg, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		defer pub.Close()
		b.ResetTimer()
		for sent := 0; sent < b.N; {
			n := min(batchSize, b.N-sent)
			msgs := make([]*message.Message, n)
			for i := range msgs {
				msgs[i] = message.NewMessage(uuid.NewString(), payload)
			}
			if err := pub.Publish(topic, msgs...); err != nil {
				b.Fatal(err)
			}
			sent += n
		}
	})
	r.report(b, "rabbitmq publish")
}

func BenchmarkRabbitMQConsume(b *testing.B) {
	url := testenv.RabbitMQ(b)
	var r rates
	// Each variant drains a queue prefilled (untimed) with b.N messages.
	prefill := func(b *testing.B) (topic, group, queue string) {
		topic, group = uniqueTopic("rmq-sub"), "g"
		queue = declare(b, url, topic, group)
		rawPublish(b, rawAMQP(b, url), topic, b.N)
		return topic, group, queue
	}
	r.run(b, "raw", func(b *testing.B) {
		_, _, queue := prefill(b)
		ch := rawAMQP(b, url)
		if err := ch.Qos(100, 0, false); err != nil { // the SDK's default prefetch
			b.Fatal(err)
		}
		b.ResetTimer()
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			d := <-deliveries
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		}
	})
	r.run(b, "sdk", func(b *testing.B) {
		topic, group, _ := prefill(b)
		c := rabbitClient(b, url)
		b.ResetTimer()
		consumeSDK(b, c, topic, group, b.N)
	})
	r.run(b, "sdk+middleware", func(b *testing.B) {
		topic, group, _ := prefill(b)
		c := rabbitClient(b, url)
		b.ResetTimer()
		consumeSDKWith(b, c, topic, group, b.N, fullStack(b, c))
	})
	r.report(b, "rabbitmq consume")
}
