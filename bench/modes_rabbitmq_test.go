package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func init() { modeBrokers["rabbitmq"] = rabbitModes }

// rabbitModes: raw amqp091-go, msgkit, and watermill-amqp stock and tuned,
// all durable and persistent.
func rabbitModes(b *testing.B) *broker {
	url := testenv.RabbitMQ(b)
	admin := rawAMQP(b, url)
	stock := wmamqp.NewDurablePubSubConfig(url, wmamqp.GenerateQueueNameTopicNameWithSuffix("g"))
	tuned := wmamqp.NewDurablePubSubConfig(url, wmamqp.GenerateQueueNameTopicNameWithSuffix("g"))
	tuned.Publish.ChannelPoolSize = 64
	tuned.Publish.ConfirmDelivery = true
	tuned.Consume.Qos.PrefetchCount = 100
	return &broker{
		name: "RabbitMQ",
		newTopic: removedTopics(b, "rabbit-modes", func(t string) {
			for _, q := range []string{t + ".g", t + "_g"} {
				_, _ = admin.QueueDelete(q, false, false, false)
			}
			_ = admin.ExchangeDelete(t, false, false)
		}),
		systems: []*system{
			amqpSystem(b, url),
			msgkitSystem("msgkit", rabbitClient(b, url)),
			watermillAMQP(b, "watermill-amqp", stock, 1),
			watermillAMQP(b, "watermill tuned", tuned, 8),
		},
		ceiling: func(*testing.B) (float64, string) {
			return 0, "the raw client's batches are the limit here (no broker tool to measure it on this machine)"
		},
	}
}

// watermillAMQP: its publisher, and consumers subscribers of the group's
// queue. Stock is NewDurablePubSubConfig as documented: no publisher
// confirms, one publishing channel, prefetch 1. Tuned: confirms (the
// guarantee the others give), 64 channels, prefetch 100, 8 consumers.
func watermillAMQP(b *testing.B, name string, cfg wmamqp.Config, consumers int) *system {
	pub, err := wmamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	closeLater(b, pub)
	return watermillSystem(name, pub, func(_, _ string) (message.Subscriber, error) {
		return wmamqp.NewSubscriber(cfg, watermill.NopLogger{})
	}, consumers)
}

// amqpSystem: a connection with a pool of confirm-mode channels, one per
// publishing goroutine; a batch is published, then its confirms awaited.
// The consumer takes prefetch 100 and acks each message. Messages carry
// what the SDK writes for a message with only a payload.
func amqpSystem(b *testing.B, url string) *system {
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	closeLater(b, conn)
	pool := make(chan *amqp.Channel, 64)
	channel := func() (*amqp.Channel, error) {
		select {
		case ch := <-pool:
			return ch, nil
		default:
		}
		ch, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		return ch, ch.Confirm(false)
	}
	declare := func(topic, group string) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		q := topic + "." + group
		if err := ch.ExchangeDeclare(topic, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return err
		}
		return ch.QueueBind(q, "", topic, false, nil)
	}
	return &system{
		name: "amqp091-go",
		publish: func(ctx context.Context, topic string, payloads [][]byte) error {
			ch, err := channel()
			if err != nil {
				return err
			}
			dcs := make([]*amqp.DeferredConfirmation, len(payloads))
			for i, p := range payloads {
				now := time.Now()
				dcs[i], err = ch.PublishWithDeferredConfirmWithContext(ctx, topic, "", false, false, amqp.Publishing{
					MessageId: uuid.NewString(), DeliveryMode: amqp.Persistent, Body: p, Timestamp: now,
					Headers: amqp.Table{sdk.KeyTime: now.UTC().Format(time.RFC3339Nano)},
				})
				if err != nil {
					return err
				}
			}
			for _, dc := range dcs {
				ok, err := dc.WaitContext(ctx)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("nacked")
				}
			}
			select {
			case pool <- ch:
			default:
				ch.Close()
			}
			return nil
		},
		prepare: func(_ context.Context, topic, group string) error { return declare(topic, group) },
		consume: func(_ context.Context, topic, group string, got func([]byte)) (func(), error) {
			if err := declare(topic, group); err != nil {
				return nil, err
			}
			ch, err := conn.Channel()
			if err != nil {
				return nil, err
			}
			if err := ch.Qos(100, 0, false); err != nil {
				return nil, err
			}
			deliveries, err := ch.Consume(topic+"."+group, "", false, false, false, false, nil)
			if err != nil {
				return nil, err
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for d := range deliveries {
					got(d.Body)
					_ = d.Ack(false)
				}
			}()
			return func() { ch.Close(); <-done }, nil
		},
	}
}
